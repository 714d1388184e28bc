"""Starts a throwaway PostgreSQL server on loopback for the tests, from the Debian package's binaries."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    pass


def _binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    bin_dir: Path
    data_dir: Path
    port: int
    run_as: list[str]

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self) -> str:
        """A new empty database for one test; returns its SQLAlchemy URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run([*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                        "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """Initialise and start a server with trust authentication on 127.0.0.1; raise PostgresUnavailable if not possible."""
    bin_dir = _binaries()
    if bin_dir is None:
        raise PostgresUnavailable("no PostgreSQL server binaries (initdb) found; install Debian's postgresql")
    root = Path(tempfile.mkdtemp(prefix="readerstudy-pg-"))
    data = root / "data"
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root: run the server as the package's postgres user.
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root and there is no 'postgres' user to run the server") from None
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    init = subprocess.run([*run_as, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                           "--no-sync", "-E", "UTF8"], capture_output=True, text=True, timeout=120)
    if init.returncode != 0:
        raise PostgresUnavailable(f"initdb failed: {init.stderr.strip()[:300]}")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    start = subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                            str(root / "server.log"), "-w", "-t", "60", "start"], capture_output=True, text=True,
                           timeout=90)
    if start.returncode != 0:
        log = (root / "server.log").read_text()[-500:] if (root / "server.log").exists() else ""
        raise PostgresUnavailable(f"pg_ctl start failed: {start.stderr.strip()[:300]} {log}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    return PostgresServer(bin_dir=bin_dir, data_dir=data, port=port, run_as=run_as)
