"""A PostgreSQL server of the test's own (initdb in a temporary folder), to restart at will.

The database-restart fault test restarts the server under running services. Restarting the
machine's shared cluster would cut every other test's connections (the suite runs in parallel
workers), so that test gets a private server: same binaries, its own port and data folder.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from avisa.broker import free_port

_BIN_ROOT = Path("/usr/lib/postgresql")


def _bin(name: str) -> str:
    versions = sorted(_BIN_ROOT.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 0)
    return str(versions[-1] / "bin" / name)


def _as_postgres(*args: str) -> list[str]:
    # initdb and postgres refuse to run as root; CI and sessions run as root.
    return ["runuser", "-u", "postgres", "--", *args]


class PrivateServer:
    """One PostgreSQL server on a free loopback port, trust auth, user postgres."""

    def __init__(self) -> None:
        self.port = free_port()
        self._root = Path(tempfile.mkdtemp(prefix="avisa-pg-"))
        shutil.chown(self._root, user="postgres")
        self._data = self._root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self._root} -c listen_addresses=127.0.0.1"
        subprocess.run(
            _as_postgres(
                _bin("pg_ctl"),
                "-D",
                str(self._data),
                "-w",
                "-o",
                options,
                "-l",
                str(self._root / "log"),
                *args,
            ),
            check=True,
            timeout=120,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> PrivateServer:
        subprocess.run(
            _as_postgres(
                _bin("initdb"),
                "-D",
                str(self._data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ),
            check=True,
            timeout=120,
            stdout=subprocess.DEVNULL,
        )
        self._ctl("start")
        return self

    def restart(self) -> None:
        """What `pg_ctlcluster ... restart` does: a fast shutdown, then start again."""
        self._ctl("-m", "fast", "restart")

    def stop(self) -> None:
        try:
            self._ctl("-m", "immediate", "stop")
        finally:
            shutil.rmtree(self._root, ignore_errors=True)
