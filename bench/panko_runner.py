"""Reference Panko 10.0.0, driven by the benchmark. Runs ONLY in the Panko virtualenv.

``/work/panko-ref/bin/python bench/panko_runner.py load|serve ...`` (see ``--help``). It
imports nothing from Annals or from the rest of ``bench``: only the standard library, Panko
and what Panko's virtualenv holds (gunicorn, installed there by ``bench/README.md``).

* ``load``: creates Panko's schema and records a JSON-lines data set through Panko's own
  storage driver (``record_events``, as Ceilometer's ``panko://`` publisher did), in batches,
  timing only the ``record_events`` calls; writes ``{"events", "seconds", "rate"}`` as JSON.
* ``serve``: serves ``panko.api.app.load_app(conf, appname='panko+noauth')`` over real HTTP
  with gunicorn (same worker model as ``annals serve``: gthread workers, 4 threads each).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

# Run as a script, this folder is sys.path[0]: keep its modules from shadowing the stdlib's.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]


def _prepare(conf_file: str) -> Any:
    warnings.simplefilter("ignore")
    service = importlib.import_module("panko.service")
    return service.prepare_service(argv=[], config_files=[conf_file])


def _events(lines: list[bytes]) -> list[Any]:
    timeutils = importlib.import_module("oslo_utils.timeutils")
    models = importlib.import_module("panko.storage.models")

    out = []
    for line in lines:
        doc = json.loads(line)
        traits = [
            models.Trait(name, dtype, models.Trait.convert_value(dtype, value))
            for name, dtype, value in doc.get("traits", [])
        ]
        generated = timeutils.normalize_time(timeutils.parse_isotime(doc["generated"]))
        out.append(
            models.Event(
                doc["message_id"], doc["event_type"], generated, traits, doc.get("raw", {})
            )
        )
    return out


def load(args: argparse.Namespace) -> int:
    storage = importlib.import_module("panko.storage")

    logging.disable(logging.CRITICAL)
    conf = _prepare(args.config_file)
    conn = storage.get_connection_from_config(conf)
    conn.upgrade()
    stored = 0
    busy = 0.0
    started = time.perf_counter()
    last_report = started
    with open(args.data, "rb") as stream:
        batch: list[bytes] = []
        for line in stream:
            if line.strip():
                batch.append(line)
            if len(batch) == args.batch_size:
                busy += _record(conn, batch)
                stored += len(batch)
                batch = []
                now = time.perf_counter()
                if now - last_report > 10:
                    last_report = now
                    print(
                        f"panko load: {stored:,} events, {stored / busy:.0f} events/s",
                        file=sys.stderr,
                        flush=True,
                    )
            if args.limit and stored >= args.limit:
                break
        if batch:
            busy += _record(conn, batch)
            stored += len(batch)
    result = {
        "events": stored,
        "seconds": busy,
        "rate": stored / busy if busy else 0.0,
        "wall_seconds": time.perf_counter() - started,
        "batch_size": args.batch_size,
    }
    Path(args.out).write_text(json.dumps(result) + "\n")
    print(json.dumps(result))
    return 0


def bulk(args: argparse.Namespace) -> int:
    """Write the rows record_events would write, one transaction per batch (fast set-up).

    Same tables, same values, same insertion order as ``load``: Panko's query performance on
    the result is the same, only without its one-transaction-per-event write path. Used to
    prepare large Panko databases quickly; ``load`` (a sample of it) is what gets timed.
    """
    storage = importlib.import_module("panko.storage")
    impl = importlib.import_module("panko.storage.impl_sqlalchemy")
    logging.disable(logging.CRITICAL)
    conf = _prepare(args.config_file)
    conn = storage.get_connection_from_config(conf)
    conn.upgrade()
    event_table = impl.models.Event.__table__
    session = conn._engine_facade.get_session()
    next_id = 1
    stored = 0
    started = time.perf_counter()
    with open(args.data, "rb") as stream:
        batch: list[bytes] = []
        for line in stream:
            if line.strip():
                batch.append(line)
            if len(batch) == args.batch_size:
                next_id = _bulk_batch(
                    session, conn, impl=impl, event_table=event_table, lines=batch, next_id=next_id
                )
                stored += len(batch)
                batch = []
        if batch:
            next_id = _bulk_batch(
                session, conn, impl=impl, event_table=event_table, lines=batch, next_id=next_id
            )
            stored += len(batch)
    if session.bind.dialect.name == "postgresql":
        with session.begin():
            session.execute("SELECT setval('event_id_seq', (SELECT max(id) FROM event))")
    result = {"events": stored, "bulk": True, "wall_seconds": time.perf_counter() - started}
    Path(args.out).write_text(json.dumps(result) + "\n")
    print(json.dumps(result))
    return 0


def _bulk_batch(
    session: Any, conn: Any, *, impl: Any, event_table: Any, lines: list[bytes], next_id: int
) -> int:
    events = _events(lines)
    with session.begin():
        rows = []
        traits: dict[int, list[dict[str, Any]]] = {}
        for ev in events:
            event_type = conn._get_or_create_event_type(ev.event_type, session=session)
            rows.append(
                {
                    "id": next_id,
                    "message_id": ev.message_id,
                    "generated": ev.generated,
                    "raw": ev.raw,
                    "event_type_id": event_type.id,
                }
            )
            for trait in ev.traits:
                traits.setdefault(trait.dtype, []).append(
                    {"event_id": next_id, "key": trait.name, "value": trait.value}
                )
            next_id += 1
        session.execute(event_table.insert(), rows)
        for dtype, values in traits.items():
            session.execute(impl.TRAIT_ID_TO_MODEL[dtype].__table__.insert(), values)
    return next_id


def _record(conn: Any, lines: list[bytes]) -> float:
    events = _events(lines)
    start = time.perf_counter()
    conn.record_events(events)
    return time.perf_counter() - start


def serve(args: argparse.Namespace) -> int:
    base_application: Any = importlib.import_module("gunicorn.app.base").BaseApplication

    class PankoApplication(base_application):  # type: ignore[misc]
        def __init__(self, options: dict[str, Any]) -> None:
            self.options = options
            super().__init__()

        def load_config(self) -> None:
            for key, value in self.options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            panko_app = importlib.import_module("panko.api.app")
            logging.disable(logging.WARNING)
            conf = _prepare(args.config_file)
            return panko_app.load_app(conf, appname="panko+noauth")

    options = {
        "bind": f"127.0.0.1:{args.port}",
        "workers": args.workers,
        "worker_class": "gthread",
        "threads": 4,
        "timeout": 300,
        "graceful_timeout": 30,
        "keepalive": 5,
        "accesslog": "-",
        "errorlog": "-",
        "proc_name": "panko-api",
    }
    PankoApplication(options).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="panko_runner",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config-file", required=True, help="panko.conf to use")
    sub = parser.add_subparsers(dest="command", required=True)
    p_load = sub.add_parser("load", help="create the schema and record a JSON-lines data set")
    p_load.add_argument("--data", required=True, help="JSON-lines file (POST /v2/events format)")
    p_load.add_argument("--batch-size", type=int, default=1000)
    p_load.add_argument("--limit", type=int, default=0, help="stop after this many events")
    p_load.add_argument("--out", required=True, help="where to write the result JSON")
    p_bulk = sub.add_parser("bulk", help="the rows of load, one transaction per batch")
    p_bulk.add_argument("--data", required=True)
    p_bulk.add_argument("--batch-size", type=int, default=1000)
    p_bulk.add_argument("--out", required=True)
    p_serve = sub.add_parser("serve", help="serve the panko+noauth API with gunicorn")
    p_serve.add_argument("--port", type=int, required=True)
    p_serve.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    commands = {"load": load, "bulk": bulk, "serve": serve}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
