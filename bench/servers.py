"""Databases and servers: a fresh database per run, ``annals serve`` and Panko as subprocesses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from bench.httpdriver import Client, Request

ENGINES = ("sqlite", "postgresql", "mysql")
PG_URL = os.environ.get("ANNALS_BENCH_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/")
MYSQL_URL = os.environ.get("ANNALS_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/")
#: Database Annals is loaded into (PostgreSQL/MariaDB); dropped and created by every load.
ANNALS_DB = os.environ.get("ANNALS_BENCH_DB", "annals_bench")
PANKO_DB = "panko_bench"
PANKO_PYTHON = Path(os.environ.get("ANNALS_BENCH_PANKO_PYTHON", "/work/panko-ref/bin/python"))
PANKO_PASTE_INI = Path(
    os.environ.get("ANNALS_BENCH_PANKO_PASTE_INI", "/work/panko-ref/etc/panko/api_paste.ini")
)
PANKO_RUNNER = Path(__file__).resolve().parent / "panko_runner.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _admin_engine(engine: str) -> sa.Engine:
    if engine == "postgresql":
        url = sa.make_url(PG_URL).set(drivername="postgresql+psycopg", database="postgres")
    else:
        url = sa.make_url(MYSQL_URL).set(drivername="mysql+pymysql", database=None)
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


def fresh_database(engine: str, name: str, workdir: Path) -> str:
    """Drop and create database ``name`` (a file for SQLite); its URL for SQLAlchemy 2."""
    if engine == "sqlite":
        path = workdir / f"{name}.sqlite"
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    admin = _admin_engine(engine)
    try:
        with admin.connect() as conn:
            if engine == "postgresql":
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
            else:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
                conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    finally:
        admin.dispose()
    return database_url(engine, name, workdir)


def database_url(engine: str, name: str, workdir: Path) -> str:
    if engine == "sqlite":
        return f"sqlite:///{workdir / f'{name}.sqlite'}"
    base = PG_URL if engine == "postgresql" else MYSQL_URL
    return sa.make_url(base).set(database=name).render_as_string(hide_password=False)


def drop_database(engine: str, name: str, workdir: Path) -> None:
    if engine == "sqlite":
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{workdir / name}.sqlite{suffix}").unlink(missing_ok=True)
        return
    admin = _admin_engine(engine)
    try:
        with admin.connect() as conn:
            force = " WITH (FORCE)" if engine == "postgresql" else ""
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
    finally:
        admin.dispose()


def server_version(engine: str) -> str:
    if engine == "sqlite":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    admin = _admin_engine(engine)
    try:
        with admin.connect() as conn:
            return str(conn.exec_driver_sql("SELECT version()").scalar())
    finally:
        admin.dispose()


def write_ini(path: Path, sections: dict[str, dict[str, object]]) -> Path:
    lines: list[str] = []
    for group, options in sections.items():
        lines.append(f"[{group}]")
        lines.extend(f"{key} = {value}" for key, value in options.items())
    path.write_text("\n".join(lines) + "\n")
    return path


def annals_config(workdir: Path, url: str, port: int, workers: int) -> Path:
    return write_ini(
        workdir / "annals-bench.conf",
        {
            "database": {"connection": url},
            "api": {"host": "127.0.0.1", "port": port, "workers": workers},
        },
    )


def annals_for_new_database(engine: str, workdir: Path, url: str, workers: int) -> tuple[Path, int]:
    """The configuration and free port of an ``annals serve`` on the empty database ``url``,
    whose schema is created first where the server does not create it (``annals dbsync``:
    PostgreSQL, MySQL/MariaDB; ``serve`` creates a SQLite one itself)."""
    port = free_port()
    conf = annals_config(workdir, url, port, workers)
    if engine != "sqlite":
        annals("dbsync", "--config-file", str(conf))
    return conf, port


def annals(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    """Run an ``annals`` subcommand in this interpreter's environment."""
    return subprocess.run(
        [sys.executable, "-m", "annals", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def panko_url(engine: str, workdir: Path, name: str) -> str:
    """The SQLAlchemy 1.3 URL Panko uses (psycopg2 / PyMySQL in Panko's virtualenv)."""
    if engine == "sqlite":
        return f"sqlite:///{workdir / f'{name}.sqlite'}"
    if engine == "postgresql":
        return (
            sa.make_url(PG_URL)
            .set(drivername="postgresql", database=name)
            .render_as_string(hide_password=False)
        )
    return (
        sa.make_url(MYSQL_URL)
        .set(drivername="mysql+pymysql", database=name)
        .update_query_dict({"charset": "utf8"})
        .render_as_string(hide_password=False)
    )


def panko_config(path: Path, url: str) -> Path:
    return write_ini(
        path,
        {
            "DEFAULT": {
                "api_paste_config": PANKO_PASTE_INI,
                "debug": "false",
                "use_stderr": "false",
            },
            "database": {"connection": url, "max_retries": 0},
        },
    )


@dataclass
class Server:
    """A server subprocess answering HTTP on ``url``; stop() sends SIGTERM and waits."""

    argv: list[str]
    port: int
    log: Path
    health: str = "/healthcheck"
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60) -> Server:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)
        client = Client(self.url, timeout=2)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
                try:
                    status, _ = client.request("GET", self.health, {})
                    if status == 200:
                        return self
                except OSError:
                    pass
                client.close()
                time.sleep(0.2)
        finally:
            client.close()
        self.stop()
        raise RuntimeError(f"server did not come up: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def annals_server(config: Path, port: int, log: Path) -> Server:
    return Server(
        [sys.executable, "-m", "annals", "serve", "--config-file", str(config)], port, log
    )


def panko_server(config: Path, port: int, log: Path, workers: int) -> Server:
    return Server(
        [
            str(PANKO_PYTHON),
            str(PANKO_RUNNER),
            "--config-file",
            str(config),
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        port,
        log,
    )


def check_request(url: str, req: Request) -> bytes:
    client = Client(url)
    try:
        return client.get(req)[0]
    finally:
        client.close()
