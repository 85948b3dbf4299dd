"""A throwaway PostgreSQL server for tests and local trials: Debian's binaries, a temporary data directory,
listening on 127.0.0.1 only, stopped and deleted on `stop()`.

PostgreSQL refuses to run as root; under root the server runs as the `postgres` user (or `nobody`) via runuser.
Every step has a timeout.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from allsuse.store.errors import StoreError

BINARIES = ("initdb", "pg_ctl", "postgres")


def find_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres: $ALLSUSE_PG_BINDIR, the newest
    /usr/lib/postgresql/<version>/bin, or where initdb is on PATH. None if there is none."""
    candidates: list[Path] = []
    if os.environ.get("ALLSUSE_PG_BINDIR"):
        candidates.append(Path(os.environ["ALLSUSE_PG_BINDIR"]))
    versions = Path("/usr/lib/postgresql")
    if versions.is_dir():
        numbered = [p for p in versions.iterdir() if re.fullmatch(r"\d+", p.name)]
        candidates += [p / "bin" for p in sorted(numbered, key=lambda p: int(p.name), reverse=True)]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if all(os.access(bindir / b, os.X_OK) for b in BINARIES):
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_user() -> str | None:
    """The unprivileged user to run the server as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise StoreError("running as root and neither the postgres nor the nobody user exists")


class TemporaryPostgres:
    """Starts a private PostgreSQL server; `dsn(dbname)` connects to it, `create_database` makes a fresh DB."""

    USER = "allsuse"

    def __init__(self, bindir: Path | None = None, timeout_s: float = 60.0) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise StoreError("PostgreSQL binaries (initdb, pg_ctl, postgres) not found; `make setup` installs them")
        self.bindir = found
        self.timeout_s = timeout_s
        self.port = 0
        self.root: Path | None = None
        self._user = _run_user()

    def _cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self._user, "--"] if self._user else []
        return [*prefix, *args]

    def _run(self, *args: str) -> None:
        proc = subprocess.run(
            self._cmd(*args), capture_output=True, text=True, timeout=self.timeout_s, check=False, cwd="/"
        )
        if proc.returncode != 0:
            log = ""
            if self.root is not None and (self.root / "server.log").exists():
                log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise StoreError(f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip()}\n{log}")

    def start(self) -> TemporaryPostgres:
        """Creates the cluster in a temporary directory and starts the server on a free port."""
        self.root = Path(tempfile.mkdtemp(prefix="allsuse-pg-"))
        data = self.root / "data"
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            self.USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        self.port = _free_port()
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\nmax_connections = 100\nshared_buffers = 32MB\n"
                "fsync = on\nsynchronous_commit = on\n"
            )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            str(int(self.timeout_s)),
            "start",
        )
        return self

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq URL for database `dbname` on this server (TCP on 127.0.0.1, 10 s connect timeout)."""
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{dbname}?connect_timeout=10"

    def create_database(self, name: str) -> str:
        """Creates an empty database and returns its DSN."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise StoreError(f"bad database name {name!r}")
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drops a database, disconnecting any sessions still on it."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise StoreError(f"bad database name {name!r}")
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Stops the server (fast shutdown) and deletes its directory."""
        if self.root is None:
            return
        try:
            if (self.root / "data" / "postmaster.pid").exists():
                self._run(
                    str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "-t", "60", "stop"
                )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> TemporaryPostgres:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
