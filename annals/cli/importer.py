"""``annals import FILE|-``: bulk-load events, one JSON document per line.

Lines are parsed and validated one by one; invalid lines are rejected (reported with their
line number) without stopping the import, and valid events are written one transaction per
batch of ``[import] batch_size``. Duplicates of stored events are counted, never an error.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from tqdm import tqdm

from annals import gctune
from annals.cli.common import load_conf, open_driver
from annals.errors import InvalidEvent
from annals.ingest.events import parse_event
from annals.models import Event
from annals.storage.base import StorageDriver

#: How many rejected lines the summary prints in full.
SHOWN_REJECTIONS = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE|-", help="JSON lines file, or - for stdin")
    parser.add_argument(
        "--batch-size", type=int, help="events per transaction (default: [import] batch_size)"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar even on a terminal"
    )


@dataclass
class Summary:
    stored: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


def import_stream(
    driver: StorageDriver, stream: IO[bytes], batch_size: int, progress: tqdm[Any] | None = None
) -> Summary:
    summary = Summary()
    batch: list[Event] = []

    def flush() -> None:
        if batch:
            result = driver.record_events(batch)
            summary.stored += result.stored
            summary.duplicates += len(result.duplicates)
            batch.clear()

    for number, line in enumerate(stream, start=1):
        if progress is not None:
            progress.update(len(line))
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            summary.rejected.append((number, f"not valid JSON: {exc}"))
            continue
        try:
            batch.append(parse_event(doc, "event"))
        except InvalidEvent as exc:
            summary.rejected.append((number, exc.message.removeprefix("event: ")))
            continue
        if len(batch) >= batch_size:
            flush()
            if progress is not None:
                progress.set_postfix(
                    stored=summary.stored,
                    dup=summary.duplicates,
                    rejected=len(summary.rejected),
                    refresh=False,
                )
    flush()
    return summary


def run(args: argparse.Namespace) -> int:
    conf = load_conf(args)
    batch_size = args.batch_size or conf["import"].batch_size
    if batch_size < 1:
        print("annals import: --batch-size must be at least 1", file=sys.stderr)
        return 2
    driver = open_driver(conf)
    gctune.tune()
    try:
        if driver.url.startswith("sqlite"):
            driver.upgrade()
        if args.file == "-":
            stream: IO[bytes] = sys.stdin.buffer
            total = None
        else:
            try:
                stream = open(args.file, "rb")  # noqa: SIM115 - closed below
            except OSError as exc:
                print(f"annals import: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
                return 2
            total = _size(stream)
        show = not args.no_progress and sys.stderr.isatty()
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            disable=not show,
            desc="importing",
            file=sys.stderr,
        ) as bar:
            try:
                summary = import_stream(driver, stream, batch_size, bar if show else None)
            finally:
                if stream is not sys.stdin.buffer:
                    stream.close()
        if summary.stored:
            driver.refresh_statistics()
    finally:
        driver.close()
    print(f"stored: {summary.stored}")
    print(f"duplicates: {summary.duplicates}")
    print(f"rejected: {len(summary.rejected)}")
    for number, reason in summary.rejected[:SHOWN_REJECTIONS]:
        print(f"  line {number}: {reason}")
    if len(summary.rejected) > SHOWN_REJECTIONS:
        print(f"  ... and {len(summary.rejected) - SHOWN_REJECTIONS} more")
    return 1 if summary.rejected else 0


def _size(stream: IO[bytes]) -> int | None:
    """Size in bytes for the progress bar; None for pipes and other unseekable files."""
    try:
        size = stream.seek(0, 2)
        stream.seek(0)
    except OSError:
        return None
    return size or None
