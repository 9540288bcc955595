"""Where one HTTP load's CPU time goes (``python -m bench cpusplit``).

Loads the data set into a fresh database through ``annals serve`` (POST batches, as the
``http_*`` ingest methods do) and reads, before and after, the CPU time of the API server's
processes (gunicorn's master and workers), of the database server's processes (PostgreSQL's
backends and helpers, MariaDB's server; none for SQLite, which runs in the API workers) and
of this process (the client). Per batch and against the wall time, that says which of them
sets the pace: with one client, a worker and a PostgreSQL backend take turns more than they
overlap, and the sum over both cores shows how much of the machine stood idle.

The database server's figure counts every process of that server on the machine: run it on
a quiet one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import lines, servers
from bench.run import post_batches

#: Process names of each engine's server (psutil's ``name()``).
DATABASE_PROCESSES: dict[str, tuple[str, ...]] = {
    "sqlite": (),
    "postgresql": ("postgres",),
    "mysql": ("mariadbd", "mysqld"),
}
DATABASE = "annals_cpusplit"


def _cpu_seconds(procs: list[psutil.Process]) -> dict[int, float]:
    """pid -> user + system CPU seconds, for those still running."""
    seconds: dict[int, float] = {}
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        seconds[proc.pid] = times.user + times.system
    return seconds


def _server_tree(pid: int, workers: int, timeout: float = 60) -> list[psutil.Process]:
    """gunicorn's master and its ``workers`` workers, once they have all started (the
    server answers as soon as one of them has)."""
    root = psutil.Process(pid)
    deadline = time.monotonic() + timeout
    while True:
        children = root.children(recursive=True)
        if len(children) >= workers or time.monotonic() > deadline:
            return [root, *children]
        time.sleep(0.1)


def _database_processes(engine: str) -> list[psutil.Process]:
    names = DATABASE_PROCESSES[engine]
    if not names:
        return []
    found = []
    for proc in psutil.process_iter(["name"]):
        name = proc.info["name"] or ""
        if name.startswith(names):
            found.append(proc)
    return found


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two readings; a process started in between counts whole."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


@dataclass(frozen=True)
class Split:
    events: int
    batches: int
    wall: float
    api: float
    database: float
    client: float

    @property
    def rate(self) -> float:
        return self.events / self.wall if self.wall else 0.0

    def lines(self, engine: str, cores: int) -> list[str]:
        per = 1000 / self.batches if self.batches else 0.0
        busy = self.api + self.database + self.client
        idle = max(0.0, cores * self.wall - busy)
        rows = [
            ("wall", self.wall),
            ("API server (master and workers)", self.api),
            (f"database server ({engine})", self.database),
            ("client (this process)", self.client),
            (f"idle, of {cores} cores x wall", idle),
        ]
        out = [
            f"{engine}: {self.events:,} events in {self.batches} batches, {self.wall:.2f} s, "
            f"{self.rate:,.0f} events/s",
            f"| {'':34} | {'seconds':>8} | {'ms per batch':>12} |",
            f"|{'-' * 36}|{'-' * 9}:|{'-' * 13}:|",
        ]
        out += [f"| {name:34} | {value:8.2f} | {value * per:12.1f} |" for name, value in rows]
        return out


def measure(
    engine: str,
    data_file: Path,
    *,
    workdir: Path,
    batch_size: int,
    clients: int,
    workers: int,
    log: Callable[[str], None] = print,
) -> Split:
    workdir.mkdir(parents=True, exist_ok=True)
    url = servers.fresh_database(engine, DATABASE, workdir)
    try:
        conf, port = servers.annals_for_new_database(engine, workdir, url, workers)
        admin = dict(lines.admin("bench"))
        with servers.annals_server(conf, port, workdir / "annals-cpusplit.log") as srv:
            api = _server_tree(srv.pid, workers)
            time.sleep(1)  # the last worker's start-up, not counted
            database = _database_processes(engine)
            log(f"{engine}: {len(api)} API processes, {len(database)} database processes")
            api0, db0, me0 = _cpu_seconds(api), _cpu_seconds(database), os.times()
            stored, wall = post_batches(srv.url, data_file, batch_size, clients, admin)
            # Backends started during the load (a second client's connection) count too.
            database = _database_processes(engine)
            api1, db1, me1 = _cpu_seconds(api), _cpu_seconds(database), os.times()
    finally:
        servers.drop_database(engine, DATABASE, workdir)
    return Split(
        events=stored,
        batches=-(-stored // batch_size),
        wall=wall,
        api=_spent(api0, api1),
        database=_spent(db0, db1),
        client=(me1.user + me1.system) - (me0.user + me0.system),
    )


def main(
    engine: str, data_file: Path, *, workdir: Path, batch_size: int, clients: int, workers: int
) -> int:
    split = measure(
        engine,
        data_file,
        workdir=workdir,
        batch_size=batch_size,
        clients=clients,
        workers=workers,
    )
    print("\n".join(split.lines(engine, psutil.cpu_count() or 1)))
    return 0
