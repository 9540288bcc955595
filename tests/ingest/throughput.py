# mypy: disallow-untyped-calls=False
# (kombu ships py.typed but leaves most of its API unannotated)
"""Throughput of ``annals consume``: notifications/s from RabbitMQ to committed events.

    python -m tests.ingest.throughput [--count 20000] [--batch-size 200] [--workers 1]
        [--database postgresql://postgres@127.0.0.1:5432/postgres]

Publishes ``count`` real-shaped notifications (nova, cinder, neutron, keystone, heat, glance;
27 traits on average) into a queue of its own, starts ``annals consume`` as a real process
on a fresh PostgreSQL schema, and times from the moment it consumes (start-up excluded) to
the last commit. The
queue, exchanges and schema are removed afterwards.
"""

from __future__ import annotations

import argparse
import itertools
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from kombu.connection import Connection

from annals.ingest.transport import parse_transport_url
from annals.storage import get_driver
from tests.ingest import samples
from tests.ingest.helpers import RABBIT_URL, Rabbit, count_events

MAKERS = [
    samples.instance_create_end,
    samples.instance_delete_end,
    samples.volume_create_end,
    samples.port_create_end,
    samples.identity_authenticate,
    samples.stack_create_end,
    samples.image_upload,
]
SERVICE = {
    "compute": "nova",
    "volume": "cinder",
    "port": "neutron",
    "identity": "keystone",
    "orchestration": "heat",
    "image": "glance",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--profile", metavar="FILE", help="run the consumer under cProfile")
    args = parser.parse_args()

    broker = parse_transport_url(RABBIT_URL)
    connection = Connection(broker.urls[0])
    connection.connect()
    rabbit = Rabbit(broker, f"annals-bench-{uuid.uuid4().hex[:8]}-", connection)
    schema = f"annals_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(
        sa.make_url(args.database).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = sa.make_url(args.database).update_query_dict({"options": f"-csearch_path={schema}"})
    db_url = url.render_as_string(hide_password=False)
    process = None
    try:
        driver = get_driver(db_url)
        driver.upgrade()
        driver.close()
        rabbit.declare()
        by_service: dict[str, list[object]] = {}
        for make in itertools.islice(itertools.cycle(MAKERS), args.count):
            message = make()
            service = SERVICE[str(message["event_type"]).split(".")[0]]
            by_service.setdefault(service, []).append(samples.envelope(message))
        for service, bodies in by_service.items():
            rabbit.publish(service, bodies)
        while rabbit.queue_depth()[0] < args.count:
            time.sleep(0.1)
        sections = rabbit.conf_sections()
        sections["database"] = {"connection": db_url}
        sections["notification"].update({"batch_size": args.batch_size, "workers": args.workers})
        with tempfile.TemporaryDirectory() as tmp:
            conf = Path(tmp) / "annals.conf"
            conf.write_text(
                "".join(
                    f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in options.items())
                    for group, options in sections.items()
                )
            )
            profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
            process = subprocess.Popen(
                [sys.executable, *profile, "-m", "annals", "consume", "--config-file", str(conf)],
                stderr=subprocess.DEVNULL,
            )
            while rabbit.queue_depth()[1] < args.workers:  # start-up is not throughput
                if process.poll() is not None:
                    print("annals consume exited early", file=sys.stderr)
                    return 1
                time.sleep(0.01)
            started = time.monotonic()
            while count_events(db_url)[0] < args.count:
                if process.poll() is not None:
                    print("annals consume exited early", file=sys.stderr)
                    return 1
                time.sleep(0.05)
            elapsed = time.monotonic() - started
        print(
            f"{args.count} notifications in {elapsed:.2f} s from the first delivery: "
            f"{args.count / elapsed:.0f} notifications/s, batch_size {args.batch_size}, "
            f"workers {args.workers}, PostgreSQL"
        )
        return 0
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        rabbit.cleanup()
        connection.release()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
