"""``annals dbsync``: create or upgrade the schema (idempotent)."""

from __future__ import annotations

import argparse
import logging

from annals.cli.common import load_conf, open_driver

LOG = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options beyond the common ones."""


def run(args: argparse.Namespace) -> int:
    driver = open_driver(load_conf(args))
    try:
        driver.upgrade()
        LOG.info("schema is current (%s)", driver.url.split("://")[0])
    finally:
        driver.close()
    return 0
