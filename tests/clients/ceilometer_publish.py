"""Publish events with Ceilometer's own ``http://`` event publisher; run as a subprocess.

Input (stdin), JSON::

    {"steps": [{"url": "http://user:pass@127.0.0.1:PORT/v2/events?batch=False",
                "events": [{"message_id", "event_type", "generated", "raw",
                            "traits": [[name, dtype, value], ...]}, ...]}, ...]}

For each step this builds real ``ceilometer.event.models.Event``/``Trait`` objects (values
of dtype 4 and ``generated`` as ``datetime``, as Ceilometer's event converter makes them),
loads the publisher the way the notification agent's pipeline does (stevedore namespace
``ceilometer.event.publisher``, scheme ``http``) and calls ``publish_events``.

Output (stdout), JSON: ``{"steps": [{"target", "batch", "logged": [[level, message]]}]}``
where ``logged`` holds what the publisher logged at WARNING or above (a refused POST is
only logged by the publisher, never raised).

A separate process keeps Ceilometer's configuration, logging and its eventlet import out
of the test process.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import sys
import warnings
from typing import Any


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[list[str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append([record.levelname, record.getMessage()])


def ceilometer_conf() -> Any:
    """The notification agent's configuration (all Ceilometer options, defaults only)."""
    cfg = importlib.import_module("oslo_config.cfg")
    opts = importlib.import_module("ceilometer.opts")
    conf = cfg.ConfigOpts()
    for group, options in opts.list_opts():
        conf.register_opts(list(options), group=None if group == "DEFAULT" else group)
    conf([], project="ceilometer", validate_default_values=True, default_config_files=[])
    return conf


def trait_value(dtype: int, value: Any) -> Any:
    if dtype == 4:
        return dt.datetime.fromisoformat(value)
    return value


def build_events(specs: list[dict[str, Any]]) -> list[Any]:
    models = importlib.import_module("ceilometer.event.models")
    return [
        models.Event(
            spec["message_id"],
            spec["event_type"],
            dt.datetime.fromisoformat(spec["generated"]),
            [
                models.Trait(name, dtype, trait_value(dtype, value))
                for name, dtype, value in spec["traits"]
            ],
            spec["raw"],
        )
        for spec in specs
    ]


def main() -> int:
    warnings.simplefilter("ignore")  # eventlet/oslo deprecation noise on import
    plan = json.load(sys.stdin)
    conf = ceilometer_conf()
    publisher = importlib.import_module("ceilometer.publisher")
    collect = Collect()
    logging.getLogger("ceilometer").addHandler(collect)
    out = []
    for step in plan["steps"]:
        collect.records = []
        pub = publisher.get_publisher(conf, step["url"], "ceilometer.event.publisher")
        pub.publish_events(build_events(step["events"]))
        out.append(
            {
                "target": pub.target,
                "batch": pub.poster.__name__ == "_batch_post",
                "logged": collect.records,
            }
        )
    json.dump({"steps": out}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
