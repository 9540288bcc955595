"""Which B-trees one SQLite write batch changes (``python -m bench walpages``).

SQLite's commit writes every page a transaction changed to the WAL, so the pages a batch
touches, per index, are what an index layout costs a write. This loads ``--before`` batches
of the data set in-process (no background checkpoints), checkpoints the WAL away, records one
more batch, then maps that batch's WAL frames to their B-trees with the ``dbstat`` table.
Deterministic: the same data and schema give the same counts on any machine.
"""

from __future__ import annotations

import collections
import sqlite3
import struct
from pathlib import Path

import orjson

from annals.ingest.events import parse_batch
from annals.storage import get_driver
from annals.storage.sql import sqlite_wal

WAL_HEADER = 32
FRAME_HEADER = 24


def wal_pages(wal: bytes) -> set[int]:
    """Page numbers of the frames in a WAL file's contents."""
    page_size = struct.unpack(">I", wal[8:12])[0]
    pages: set[int] = set()
    offset = WAL_HEADER
    while offset + FRAME_HEADER <= len(wal):
        pages.add(struct.unpack(">I", wal[offset : offset + 4])[0])
        offset += FRAME_HEADER + page_size
    return pages


def batch_pages(data_file: Path, db: Path, before: int, batch_size: int = 1000) -> dict[str, int]:
    """B-tree name -> pages the batch after ``before`` batches of ``data_file`` changed."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    lines = data_file.read_bytes().splitlines()
    batches = [
        b"[" + b",".join(lines[i : i + batch_size]) + b"]" for i in range(0, len(lines), batch_size)
    ]
    if before >= len(batches):
        raise SystemExit(f"the data set has {len(batches)} batches of {batch_size}")
    every, pause = sqlite_wal.CHECKPOINT_EVERY, sqlite_wal.PAUSE_SECONDS
    sqlite_wal.CHECKPOINT_EVERY, sqlite_wal.PAUSE_SECONDS = 2**62, 1e9  # none in the background
    driver = get_driver(f"sqlite:///{db}")
    try:
        driver.upgrade()
        for batch in batches[:before]:
            driver.record_events(parse_batch(orjson.loads(batch)))
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            driver.record_events(parse_batch(orjson.loads(batches[before])))
            pages = wal_pages(Path(f"{db}-wal").read_bytes())
            owners = dict(conn.execute("SELECT pageno, name FROM dbstat"))
        finally:
            conn.close()
    finally:
        driver.close()
        sqlite_wal.CHECKPOINT_EVERY, sqlite_wal.PAUSE_SECONDS = every, pause
    return dict(collections.Counter(str(owners.get(page, "?")) for page in pages).most_common())


def main(data_file: Path, workdir: Path, before: int) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    counts = batch_pages(data_file, workdir / "walpages.sqlite", before)
    print(f"pages written to the WAL by batch {before + 1} of {data_file.name}:")
    for name, count in counts.items():
        print(f"{count:7,d}  {name}")
    print(f"{sum(counts.values()):7,d}  all")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{workdir / 'walpages.sqlite'}{suffix}").unlink(missing_ok=True)
    return 0
