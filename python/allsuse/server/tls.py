"""TLS credentials from PEM files: the server's certificate chain and key, a client's trusted CA.

The key is read from its file when the server is built and kept only inside gRPC's credentials object; it is
never logged. Without both files the server listens in plaintext (on loopback only, see allsuse.config).
"""

from __future__ import annotations

from pathlib import Path

import grpc

from allsuse.config import TlsConfig
from allsuse.errors import InvalidInputError


def _read(field: str, path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInputError.of(field, f"cannot read {path}: {exc.strerror}") from None
    if b"-----BEGIN " not in data:
        raise InvalidInputError.of(field, f"{path} is not a PEM file")
    return data


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """Server credentials for `tls` (which must be enabled)."""
    if not tls.enabled:
        raise InvalidInputError.of("tls", "cert_file and key_file are not configured")
    chain = _read("tls.cert_file", tls.cert_file)
    key = _read("tls.key_file", tls.key_file)
    return grpc.ssl_server_credentials([(key, chain)])


def channel_credentials(ca_file: str | None) -> grpc.ChannelCredentials:
    """Client credentials trusting `ca_file` (PEM), or the system roots when None."""
    roots = None if ca_file is None else _read("tls_ca", ca_file)
    return grpc.ssl_channel_credentials(root_certificates=roots)


__all__ = ["channel_credentials", "server_credentials"]
