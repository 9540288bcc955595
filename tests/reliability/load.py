"""Load test: writers and readers at once against ``annals serve``, then an account of every
event acknowledged.

    python -m tests.reliability.load --duration 600 --users 16        # the 10-minute run
    python -m tests.reliability.load --database-url postgresql://... --keep

It seeds a database (a fresh PostgreSQL schema by default) with OpenStack-shaped events,
starts ``annals serve`` on it, runs locust headless (tests/reliability/locustfile.py: 1 writer
in 4 posting batches, the others running the benchmark's query set, no think time), then
compares the message_ids the writers got a 201 for with those in the database, read directly.
The 30-second version runs in the test suite (test_load.py).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from annals.models import Event, Trait, TraitType
from annals.storage import get_driver
from annals.storage.sql.driver import normalise_url
from tests.conftest import free_port
from tests.reliability.conftest import stored_ids
from tests.servers import serve_settings, spawn_serve, wait_healthy, write_ini

HERE = Path(__file__).parent
DEFAULT_PG = os.environ.get(
    "ANNALS_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
EVENT_TYPES = [
    "compute.instance.create.end",
    "compute.instance.delete.end",
    "compute.instance.update",
    "compute.instance.power_off.end",
    "volume.create.end",
    "volume.delete.end",
    "network.create.end",
    "port.update.end",
    "identity.authenticate",
    "image.upload",
]
MEMORY = [512, 1024, 2048, 4096, 8192, 16384]
LAST_DAY = dt.date(2026, 11, 24)


@dataclass
class Plan:
    """What the seeded data looks like, for the readers to ask about it."""

    run: str
    batch_size: int
    projects: list[str]
    users: dict[str, list[str]]
    instances: list[str]
    days: list[str]
    message_ids: list[str]
    event_types: list[str] = field(default_factory=lambda: list(EVENT_TYPES))
    memory: list[int] = field(default_factory=lambda: list(MEMORY))


def make_plan(seed_events: int, batch_size: int, days: int = 30) -> tuple[Plan, list[Event]]:
    rng = random.Random(42)
    projects = [f"project-{n:02d}" for n in range(20)]
    users = {p: [f"{p}-user-{n}" for n in range(5)] for p in projects}
    instances = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(500)]
    day_list = [(LAST_DAY - dt.timedelta(days=n)).isoformat() for n in range(days)]
    events = []
    for n in range(seed_events):
        project = rng.choice(projects)
        generated = dt.datetime.combine(
            dt.date.fromisoformat(rng.choice(day_list)), dt.time()
        ) + dt.timedelta(seconds=rng.randrange(86_400), microseconds=rng.randrange(1_000_000))
        traits = (
            Trait("project_id", TraitType.STRING, project),
            Trait("user_id", TraitType.STRING, rng.choice(users[project])),
            Trait("instance_id", TraitType.STRING, rng.choice(instances)),
            Trait("memory_mb", TraitType.INTEGER, rng.choice(MEMORY)),
            Trait("host", TraitType.STRING, f"compute-{rng.randrange(40):02d}"),
            Trait("launched_at", TraitType.DATETIME, generated - dt.timedelta(seconds=3)),
        )
        events.append(
            Event(f"seed-{n:08d}", rng.choice(EVENT_TYPES), generated, traits, {"seq": n})
        )
    plan = Plan(
        run=uuid.uuid4().hex[:6],
        batch_size=batch_size,
        projects=projects,
        users=users,
        instances=instances,
        days=day_list,
        message_ids=[e.message_id for e in rng.sample(events, min(2000, len(events)))],
    )
    return plan, events


@contextlib.contextmanager
def postgresql_schema(base_url: str) -> Iterator[str]:
    """A fresh schema in the PostgreSQL database of ``base_url``, dropped afterwards."""
    name = f"annals_load_{uuid.uuid4().hex[:10]}"
    # No pool: a connection kept from the start may not survive a long run (or a restart).
    admin = sa.create_engine(
        normalise_url(base_url), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {name}")
    try:
        url = sa.make_url(base_url).update_query_dict({"options": f"-csearch_path={name}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        admin.dispose()


@dataclass
class KindStats:
    name: str
    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float
    max: float


@dataclass
class LoadResult:
    duration_s: float
    users: int
    writers: int
    kinds: list[KindStats]
    statuses: dict[str, int]
    acknowledged: int
    stored: int
    lost: list[str]
    unexplained: list[str]
    unacknowledged: int
    duplicates_reported: int
    partial_batches: list[str]
    server_errors: int
    server_log: str

    @property
    def total(self) -> KindStats:
        return next(k for k in self.kinds if k.name == "Aggregated")

    def table(self) -> str:
        lines = [
            f"{'kind':<22}{'requests':>10}{'fail':>6}{'req/s':>9}{'p50 ms':>9}"
            f"{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        ]
        for k in self.kinds:
            lines.append(
                f"{k.name:<22}{k.requests:>10}{k.failures:>6}{k.rps:>9.1f}{k.p50:>9.0f}"
                f"{k.p95:>9.0f}{k.p99:>9.0f}{k.max:>9.0f}"
            )
        lines += [
            "",
            f"duration {self.duration_s:.0f} s, {self.users} users ({self.writers} writers)",
            f"5xx responses: {self.server_errors}",
            f"events acknowledged (201): {self.acknowledged}; stored: {self.stored}; "
            f"lost: {len(self.lost)}; stored without a 201: {self.stored - self.acknowledged} "
            f"(of {self.unacknowledged} sent without one); unexplained: {len(self.unexplained)}",
            f"batches half-stored: {len(self.partial_batches)}; duplicates reported: "
            f"{self.duplicates_reported}",
        ]
        return "\n".join(lines)


def _ms(row: dict[str, str], column: str) -> float:
    text = row.get(column) or "0"
    return float(text) if text != "N/A" else 0.0


def read_stats(path: Path) -> list[KindStats]:
    with path.open() as handle:
        return [
            KindStats(
                name=row["Name"],
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                rps=float(row["Requests/s"]),
                p50=_ms(row, "50%"),
                p95=_ms(row, "95%"),
                p99=_ms(row, "99%"),
                max=_ms(row, "Max Response Time"),
            )
            for row in csv.DictReader(handle)
        ]


def start_server(
    database_url: str, workdir: Path, workers: int
) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    conf = write_ini(workdir / "annals.conf", serve_settings(database_url, port, workers))
    log = workdir / "serve.log"
    process = spawn_serve(conf, log, new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, process, log)
    return process, url, log


def run_load(
    database_url: str,
    *,
    duration: int,
    users: int,
    writers: int,
    seed_events: int,
    batch_size: int = 50,
    server_workers: int = 2,
    workdir: Path | None = None,
) -> LoadResult:
    """Seed ``database_url`` (an empty database), serve it, load it, account for every event."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="annals-load-"))
    plan, seed = make_plan(seed_events, batch_size)
    driver = get_driver(database_url)
    try:
        driver.upgrade()
        for start in range(0, len(seed), 1000):
            driver.record_events(seed[start : start + 1000])
        driver.refresh_statistics()
    finally:
        driver.close()
    plan_file = workdir / "plan.json"
    plan_file.write_text(json.dumps(plan.__dict__))
    report_file = workdir / "report.json"
    process, url, log = start_server(database_url, workdir, server_workers)
    try:
        env = {
            **os.environ,
            "ANNALS_LOAD_PLAN": str(plan_file),
            "ANNALS_LOAD_REPORT": str(report_file),
            "ANNALS_LOAD_WRITERS": str(writers),
            "ANNALS_LOAD_READERS": str(users - writers),
        }
        locust = Path(sys.executable).with_name("locust")
        started = time.monotonic()
        subprocess.run(
            [
                str(locust),
                "-f",
                str(HERE / "locustfile.py"),
                "--headless",
                "--only-summary",
                "--users",
                str(users),
                "--spawn-rate",
                str(users),
                "--run-time",
                f"{duration}s",
                "--stop-timeout",
                "30",
                "--host",
                url,
                "--csv",
                str(workdir / "locust"),
                "--loglevel",
                "WARNING",
                "--exit-code-on-error",
                "0",
            ],
            env=env,
            check=True,
            timeout=duration + 120,
            stdout=(workdir / "locust.out").open("wb"),
            stderr=subprocess.STDOUT,
        )
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    report = json.loads(report_file.read_text())
    acked: set[str] = set(report["acknowledged"])
    unacked: set[str] = set(report["unacknowledged"])
    stored = stored_ids(database_url, f"load-{plan.run}")
    batches: dict[str, int] = {}
    for message_id in stored:
        batch = message_id.rsplit("-", 1)[0]
        batches[batch] = batches.get(batch, 0) + 1
    statuses: dict[str, int] = report["statuses"]
    server_log = log.read_text(errors="replace")
    return LoadResult(
        duration_s=elapsed,
        users=users,
        writers=writers,
        kinds=read_stats(workdir / "locust_stats.csv"),
        statuses=statuses,
        acknowledged=len(acked),
        stored=len(stored),
        lost=sorted(acked - stored),
        unexplained=sorted(stored - acked - unacked),
        unacknowledged=len(unacked),
        duplicates_reported=int(report["duplicates_reported"]),
        partial_batches=sorted(b for b, n in batches.items() if n != batch_size),
        server_errors=sum(n for key, n in statuses.items() if key.rsplit(" ", 1)[1][0] == "5"),
        server_log=server_log,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--duration", type=int, default=600, help="seconds (default 600)")
    parser.add_argument("--users", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument("--writers", type=int, default=4, help="of which writers (4)")
    parser.add_argument("--seed-events", type=int, default=100_000, help="seeded first")
    parser.add_argument("--batch-size", type=int, default=50, help="events per POST (50)")
    parser.add_argument("--server-workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--database-url", help="an empty database (default: a new PG schema)")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        url = args.database_url or stack.enter_context(postgresql_schema(DEFAULT_PG))
        result = run_load(
            url,
            duration=args.duration,
            users=args.users,
            writers=args.writers,
            seed_events=args.seed_events,
            batch_size=args.batch_size,
            server_workers=args.server_workers,
        )
        print(result.table(), flush=True)
        if args.out:
            doc = {k: v for k, v in result.__dict__.items() if k != "server_log"}
            doc["kinds"] = [k.__dict__ for k in result.kinds]
            args.out.write_text(json.dumps(doc, indent=1, default=str))
    ok = not result.lost and not result.unexplained and not result.partial_batches
    return 0 if ok and result.server_errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
