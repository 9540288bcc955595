"""Start-up shared by the commands: configuration, then the storage driver."""

from __future__ import annotations

import argparse

from oslo_config import cfg

from annals import config
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
