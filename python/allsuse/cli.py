"""The `allsuse` command line: `allsuse serve [--config ENV] [--host H] [--port P]`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from collections.abc import Sequence

from allsuse import build_profile, config
from allsuse.errors import AllsuseError


def _serve(args: argparse.Namespace) -> int:
    cfg = config.load(args.config)
    server_cfg = cfg.server
    if args.host is not None:
        server_cfg = dataclasses.replace(server_cfg, host=args.host)
    if args.port is not None:
        server_cfg = dataclasses.replace(server_cfg, port=args.port)
    from allsuse.server.app import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("allsuse").info("core build profile: %s", build_profile())
    asyncio.run(serve(server_cfg))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="allsuse", description="ALL-USE decision engine")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gRPC server until SIGTERM/SIGINT")
    serve.add_argument("--config", default="development", help="environment: development or production")
    serve.add_argument("--host", default=None, help="override server.host")
    serve.add_argument("--port", type=int, default=None, help="override server.port")
    serve.set_defaults(func=_serve)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except AllsuseError as exc:
        print(f"allsuse: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
