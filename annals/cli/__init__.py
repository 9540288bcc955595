"""The ``annals`` command. One module per subcommand, imported only when it runs."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from oslo_config import cfg

from annals import __version__
from annals.errors import AnnalsError

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("annals.cli.serve", "serve the Panko V2 API with gunicorn"),
    "dbsync": ("annals.cli.dbsync", "create or upgrade the database schema"),
    "import": ("annals.cli.importer", "bulk-load events from JSON lines"),
    "consume": ("annals.cli.consume", "store OpenStack notifications read from RabbitMQ"),
    "expirer": ("annals.cli.expirer", "delete events older than [database] event_time_to_live"),
    "import-panko": ("annals.cli.import_panko", "copy every event of a Panko database"),
    "policy-sample": ("annals.cli.policy", "print the default policy rules as policy.yaml"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="annals", description="Annals: the OpenStack event store (Panko V2 API)."
    )
    parser.add_argument("--version", action="version", version=f"annals {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.add_argument(
            "--config-file",
            action="append",
            default=[],
            metavar="FILE",
            help="oslo.config INI file (repeatable; later files win)",
        )
        sp.add_argument("--debug", action="store_true", help="log at DEBUG level")
        sp.set_defaults(module=module_name)
        importlib.import_module(module_name).add_arguments(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    module = importlib.import_module(args.module)
    try:
        code: int = module.run(args)
    except cfg.Error as exc:
        print(f"annals {args.command}: configuration error: {exc}", file=sys.stderr)
        return 2
    except AnnalsError as exc:
        print(f"annals {args.command}: {exc.message}", file=sys.stderr)
        return 1
    return code
