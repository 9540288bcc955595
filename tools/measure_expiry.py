"""Measure ``annals expirer`` on a large store: load N events, expire them, print timings.

    python tools/measure_expiry.py postgresql://postgres@127.0.0.1/annals_expiry 1000000
    python tools/measure_expiry.py URL 0 [BATCH]   # expire what an earlier load left, no load

The database is emptied first, then N events older than the 30-day TTL (to be expired) and
N/10 recent ones (to be kept) are loaded; each has 10 traits like a compute notification and
a 1 KB raw payload.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
import uuid

from annals import timeutil
from annals.models import Event, Trait, TraitType
from annals.storage import get_driver

BATCH = 5000


def make(n: int, now: dt.datetime) -> Event:
    age = dt.timedelta(days=1 if n % 11 == 0 else 40, seconds=n % 86400)
    return Event(
        message_id=str(uuid.UUID(int=n)),
        event_type=f"compute.instance.{('create', 'delete', 'update')[n % 3]}.end",
        generated=now - age,
        traits=(
            Trait("project_id", TraitType.STRING, f"project-{n % 50}"),
            Trait("user_id", TraitType.STRING, f"user-{n % 500}"),
            Trait("instance_id", TraitType.STRING, str(uuid.UUID(int=n * 7))),
            Trait("host", TraitType.STRING, f"compute-{n % 40}"),
            Trait("state", TraitType.STRING, "active"),
            Trait("memory_mb", TraitType.INTEGER, 512 * (1 + n % 16)),
            Trait("disk_gb", TraitType.INTEGER, 20),
            Trait("vcpus", TraitType.INTEGER, 1 + n % 8),
            Trait("load", TraitType.FLOAT, n / 1000),
            Trait("launched_at", TraitType.DATETIME, now - age),
        ),
        raw={"payload": {"n": n, "pad": "x" * 900}},
    )


def main() -> None:
    url, expired = sys.argv[1], int(sys.argv[2])
    total = expired + expired // 10  # every 11th event is recent
    batch_size = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    driver = get_driver(url)
    driver.upgrade()
    now = timeutil.utcnow()
    if total:
        driver.clear()
        started = time.perf_counter()
        for start in range(0, total, BATCH):
            driver.record_events([make(n, now) for n in range(start, min(total, start + BATCH))])
        load = time.perf_counter() - started
        print(f"loaded {total} events in {load:.1f} s ({total / load:.0f} events/s)", flush=True)
    print(f"stored: {sum(driver.event_type_counts().values())} events", flush=True)
    started = time.perf_counter()
    result = driver.clear_expired_data(30 * 86400, batch_size, now=now)
    took = time.perf_counter() - started
    print(
        f"expired {result.deleted} events in {result.batches} batches of {batch_size} "
        f"in {took:.1f} s ({result.deleted / took:.0f} events/s)"
    )
    print(f"left: {sum(driver.event_type_counts().values())} events")
    driver.close()


if __name__ == "__main__":
    main()
