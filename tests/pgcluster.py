"""A throwaway PostgreSQL cluster for tests that stop the database mid-test (readiness).

``initdb`` into a fresh temporary directory, ``pg_ctl start`` on a free port (trust auth, TCP
on 127.0.0.1 only), ``stop()`` whenever the test wants the database gone. PostgreSQL refuses
to run as root: as root the cluster belongs to the ``postgres`` user (``runuser``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deployments.stack import free_port

PG_BIN = Path(os.environ.get("AF_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


@dataclass
class Cluster:
    """A running cluster: its directory, port and SQLAlchemy URL of the ``postgres`` db."""

    root: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        subprocess.run(
            _as_owner([str(PG_BIN / argv[0]), *argv[1:]]),
            check=True,
            timeout=120,
            capture_output=True,
        )

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.root / "data"),
            "-l",
            str(self.root / "log"),
            "-o",
            opts,
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        subprocess.run(
            _as_owner(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"]
            ),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def start_cluster() -> Cluster:
    """initdb + start on a free port; the caller calls ``remove()`` at the end."""
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"no PostgreSQL server binaries in {PG_BIN} (AF_TEST_PG_BIN)")
    root = Path(tempfile.mkdtemp(prefix="af-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
    cluster = Cluster(root, free_port())
    try:
        cluster._run(
            "initdb", "-D", str(root / "data"), "-U", "postgres", "-A", "trust", "--no-sync"
        )
        cluster.start()
    except BaseException:
        cluster.remove()
        raise
    return cluster
