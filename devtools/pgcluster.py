"""A throwaway PostgreSQL cluster (``initdb`` + ``pg_ctl``) for tests and ``bench_workers``.

The cluster lives in a fresh temporary folder (data, log and unix socket), listens on a free
loopback port, trusts local connections and runs with ``fsync=off`` (it is thrown away). As root,
PostgreSQL refuses to run, so every server command runs as the ``postgres`` user (``runuser``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SUPERUSER = "codesign"


class PgUnavailable(RuntimeError):
    """PostgreSQL server binaries (or a user to run them as root) are not available here."""


def find_pg_bin() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres`` (PATH first, then Debian's)."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).parent] if on_path else []
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name or 0), reverse=True
    )
    candidates += [Path(p) for p in versions]
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise PgUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or under "
        "/usr/lib/postgresql/*/bin (apt-get install postgresql)"
    )


def _driver_url(url: str) -> str:
    from codesign.search.storage import sqlalchemy_url

    return sqlalchemy_url(url)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> list[str]:
    """Command prefix that drops root to the ``postgres`` user (empty when not root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PgUnavailable("running as root and there is no 'postgres' user to run the server as") from None
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    if Path(runuser).is_file():
        return [runuser, "-u", "postgres", "--"]
    raise PgUnavailable("running as root and runuser is missing (util-linux)")


@dataclass
class PgCluster:
    """A running throwaway cluster; :meth:`stop` shuts it down and deletes its folder."""

    root: Path
    port: int
    bin_dir: Path
    prefix: list[str] = field(default_factory=list)
    running: bool = True

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        import sqlalchemy as sa

        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name must be alphanumeric/underscore: {name!r}")
        engine = sa.create_engine(_driver_url(self.url()), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        if self.running:
            subprocess.run(
                [
                    *self.prefix,
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.root / "data"),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                capture_output=True,
                check=False,
                timeout=60,
            )
            self.running = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_cluster() -> PgCluster:
    """initdb + pg_ctl start in a new temporary folder; raises :class:`PgUnavailable`."""
    bin_dir = find_pg_bin()
    prefix = _run_as()
    root = Path(tempfile.mkdtemp(prefix="codesign-pg-"))
    (root / "sock").mkdir()
    if prefix:
        pw = pwd.getpwnam("postgres")
        for p in (root, root / "sock"):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    try:
        _check(
            [
                *prefix,
                str(bin_dir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            env,
            "initdb",
        )
        for attempt in range(3):
            port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {port} -k {root / 'sock'} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
            )
            proc = subprocess.run(
                [
                    *prefix,
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(root / "data"),
                    "-l",
                    str(root / "server.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                capture_output=True,
                text=True,
                env=env,
                check=False,
                timeout=90,
            )
            if proc.returncode == 0:
                return PgCluster(root=root, port=port, bin_dir=bin_dir, prefix=prefix)
            if attempt == 2:
                log = (root / "server.log").read_text(errors="replace")[-400:]
                raise PgUnavailable(f"pg_ctl start failed: {proc.stderr.strip()[-300:]} {log}")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    raise AssertionError("unreachable")


def _check(cmd: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=120)
    if proc.returncode != 0:
        raise PgUnavailable(
            f"{what} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-400:]}"
        )
