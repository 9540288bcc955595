"""Start-up shared by the commands: configuration, then the storage driver."""

from __future__ import annotations

import argparse

from oslo_config import cfg

from annals import config
from annals.errors import AnnalsError
from annals.storage import get_driver
from annals.storage.base import StorageDriver


def load_conf(args: argparse.Namespace) -> cfg.ConfigOpts:
    return config.load(args.config_file)


def open_driver(conf: cfg.ConfigOpts) -> StorageDriver:
    return get_driver(
        config.database_url(conf),
        pool_size=conf.database.max_pool_size,
        pool_timeout=conf.database.pool_timeout,
    )


def prepare_schema(conf: cfg.ConfigOpts) -> None:
    """Before serving or consuming: create/upgrade an SQLite schema (zero set-up); refuse a
    PostgreSQL/MySQL schema that is missing or old (operators run ``annals dbsync``)."""
    driver = open_driver(conf)
    try:
        if driver.url.startswith("sqlite"):
            driver.upgrade()
        elif not driver.schema_is_current():
            raise AnnalsError(
                "the database schema is missing or out of date: run 'annals dbsync' first"
            )
    finally:
        driver.close()
