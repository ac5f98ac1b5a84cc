"""A throw-away PostgreSQL server for tests: its own cluster in a temporary folder, on a free port.

Tests that need a database start a real server here (Debian's ``postgresql`` package, which
``.ci/services`` installs) instead of sharing the packaged one, so a test may stop and restart
its server, and two copies of the suite can run side by side. PostgreSQL refuses to run as root;
under root the server runs as the ``postgres`` user the package creates.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

SERVICES_HINT = "install the server with `bash .ci/services` (Debian's postgresql package)"


def server_binary(name: str) -> str:
    """Path of a PostgreSQL server program (``initdb``, ``pg_ctl``): on PATH, or Debian's newest version."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda path: int(path.split("/")[4]) if path.split("/")[4].isdigit() else 0)
    if not candidates:
        raise RuntimeError(f"PostgreSQL's {name} was not found on PATH nor in /usr/lib/postgresql/*/bin; "
                           f"{SERVICES_HINT}")
    return candidates[-1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """A PostgreSQL cluster in a new temporary folder, trusting local connections of user ``postgres``.

    ``start()`` and ``stop()`` may be called again (the port stays the same, so URLs stay valid);
    ``close()`` stops it and removes the folder.
    """

    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="neuromancer-pg-")
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "server.log")
        self.as_server_user: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as error:
                raise RuntimeError(f"running as root, the server needs the 'postgres' user; {SERVICES_HINT}") from error
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_server_user = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self._run(server_binary("initdb"), "-D", self.data, "--auth=trust", "--username=postgres",
                  "--encoding=UTF8", "--no-sync")

    @property
    def url(self) -> str:
        """A SQLAlchemy URL of the server's ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server and wait until it accepts connections (another port if this one is taken)."""
        for attempt in range(5):
            options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                       f"-c synchronous_commit=off -c full_page_writes=off")
            result = self._run(server_binary("pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60",
                               "-o", options, "start", check=False)
            if result.returncode == 0:
                return
            if attempt < 4 and "could not bind" in self.server_log():
                self.port = free_port()
                continue
            raise RuntimeError(f"PostgreSQL did not start:\n{result.stdout}{result.stderr}\n{self.server_log()}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: end sessions, roll back open transactions, shut down cleanly)."""
        self._run(server_binary("pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop")

    def close(self) -> None:
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run(server_binary("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def server_log(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as log:
                return log.read()
        except OSError:
            return ""

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.as_server_user, *command], capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
        return result
