"""``annals import-panko --from URL``: copy every event of a Panko 10 database into Annals.

Streams Panko's events in id order, ``--batch-size`` per transaction, skipping message_ids
Annals already has. After each committed batch the last Panko event id is written to a state
file, so an interrupted run resumes where it stopped (``--restart`` ignores the state). Ends by
comparing the number of events per event type on both sides.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from annals import config
from annals.cli.common import load_conf, open_driver
from annals.panko_import import PankoSource

LOG = logging.getLogger("annals.import_panko")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="URL",
        help="SQLAlchemy URL of the Panko database (read only)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="events per transaction (default 1000)"
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        help="where progress is kept for resuming (default: in the data "
        "directory, one file per source URL)",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="ignore saved progress and start from the first event",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _state_path(args: argparse.Namespace, data_dir: Path) -> Path:
    if args.state_file:
        return Path(args.state_file)
    digest = hashlib.sha256(args.source.encode()).hexdigest()[:16]
    return data_dir / f"import-panko-{digest}.json"


def _load_state(path: Path) -> int:
    try:
        return int(json.loads(path.read_text())["last_panko_event_id"])
    except FileNotFoundError:
        return 0
    except (ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"annals import-panko: unreadable state file {path}: {exc}") from None


def _save_state(path: Path, last_id: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"last_panko_event_id": last_id}))
    tmp.replace(path)  # atomic: a crash leaves the old or the new state, never half of one


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        print("annals import-panko: --batch-size must be at least 1", file=sys.stderr)
        return 2
    conf = load_conf(args)
    data_dir = (
        Path(conf.database.data_dir) if conf.database.data_dir else (config.default_data_dir())
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    state = _state_path(args, data_dir)
    start = 0 if args.restart else _load_state(state)
    source = PankoSource(args.source)
    driver = open_driver(conf)
    stored = duplicates = 0
    rejected: list[tuple[int, str]] = []
    try:
        if driver.url.startswith("sqlite"):
            driver.upgrade()
        total = source.count(after_id=start)
        if start:
            LOG.info("resuming after Panko event id %d (%d events left)", start, total)
        show = not args.no_progress and sys.stderr.isatty()
        with tqdm(
            total=total, unit="ev", disable=not show, desc="importing", file=sys.stderr
        ) as bar:
            for page in source.pages(start, args.batch_size):
                result = driver.record_events(page.events)
                stored += result.stored
                duplicates += len(result.duplicates)
                rejected.extend(page.rejected)
                _save_state(state, page.last_id)
                bar.update(len(page.events) + len(page.rejected))
        panko_counts = source.counts_by_type()
        if stored:
            driver.refresh_statistics()
        annals_counts = driver.event_type_counts()
    finally:
        source.close()
        driver.close()
    print(f"stored: {stored}")
    print(f"duplicates (already in Annals): {duplicates}")
    print(f"rejected: {len(rejected)}")
    for _panko_id, reason in rejected[:50]:
        print(f"  {reason}")
    return _verify(panko_counts, annals_counts, len(rejected))


def _verify(panko: dict[str, int], annals: dict[str, int], rejected: int) -> int:
    """Print per-type counts; fail when Annals has fewer events of a type than Panko."""
    print("verification (events per type: panko / annals):")
    short = 0
    for name in sorted(set(panko) | set(annals)):
        theirs, ours = panko.get(name, 0), annals.get(name, 0)
        mark = "ok" if ours >= theirs else f"MISSING {theirs - ours}"
        if ours < theirs:
            short += theirs - ours
        print(f"  {name}: {theirs} / {ours} {mark}")
    if short > rejected:
        print(f"verification FAILED: {short} events missing in Annals", file=sys.stderr)
        return 1
    if short:
        print(f"verification: {short} events missing, all of them rejected above", file=sys.stderr)
        return 1
    print("verification passed")
    return 0
