"""``annals expirer``: delete events older than ``[database] event_time_to_live``.

Run it from cron (once) or as a service (``--interval SECONDS``). Deletion happens in bounded
batches (``[database] events_delete_batch_size``), so it is safe while the API serves and
events are being recorded.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from oslo_config import cfg

from annals.cli.common import load_conf, open_driver
from annals.errors import StorageError, StorageUnavailable
from annals.storage.base import StorageDriver

LOG = logging.getLogger("annals.expirer")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interval",
        type=float,
        metavar="SECONDS",
        help="keep running, expiring every SECONDS (default: run once)",
    )


def expire_once(driver: StorageDriver, conf: cfg.ConfigOpts) -> int:
    ttl = conf.database.event_time_to_live
    if ttl <= 0:
        LOG.info("event_time_to_live is %d: events are kept forever, nothing to do", ttl)
        return 0
    result = driver.clear_expired_data(ttl, conf.database.events_delete_batch_size)
    if result.deleted:
        driver.refresh_statistics()
    LOG.info(
        "expired %d events generated before %s in %d batches",
        result.deleted,
        result.cutoff.isoformat() if result.cutoff else "-",
        result.batches,
    )
    if result.removed_event_types:
        LOG.info("removed event types without events: %s", ", ".join(result.removed_event_types))
    if result.removed_trait_types:
        LOG.info(
            "removed trait descriptions without traits: %s", ", ".join(result.removed_trait_types)
        )
    return result.deleted


def run(args: argparse.Namespace) -> int:
    conf = load_conf(args)
    driver = open_driver(conf)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        LOG.info("signal %d: stopping after the current batch", signum)
        stop.set()

    try:
        if args.interval is None:
            expire_once(driver, conf)
            return 0
        if args.interval <= 0:
            LOG.error("--interval must be positive")
            return 2
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not stop.is_set():
            try:
                expire_once(driver, conf)
            except (StorageUnavailable, StorageError) as exc:
                # A loop that dies with the database would need a babysitter: log and retry.
                LOG.error("expiry failed, retrying in %.0f s: %s", args.interval, exc.message)
            stop.wait(args.interval)
        return 0
    finally:
        driver.close()
