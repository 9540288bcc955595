"""``annals consume``: store OpenStack notifications read straight from RabbitMQ.

Start-up checks everything that can be wrong before the first message is read: the event
definitions (a syntax error, an unknown plugin or type, a bad JSONPath stops it, naming the
file and line), the transport URLs and the database schema. Then one consumer runs per
``[notification] workers`` and broker URL: in this process when there is one, else in child
processes that are restarted when they die. SIGTERM or SIGINT finish the batch in hand.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType

from oslo_config import cfg

from annals import gctune
from annals.cli.common import load_conf, open_driver, prepare_schema
from annals.ingest import definitions
from annals.ingest.consumer import Consumer, ConsumerError
from annals.ingest.notifications import Converter
from annals.ingest.transport import Broker, Topology, brokers

LOG = logging.getLogger(__name__)

#: Exit status of a worker that cannot run as configured: the supervisor gives up.
EXIT_CONFIG = 3
RESTART_DELAY = 1.0
STOP_GRACE = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=int,
        help="consumer processes per broker URL (default: [notification] workers)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="load the configuration and event definitions, report, and exit",
    )


@dataclass(frozen=True)
class Plan:
    conf: cfg.ConfigOpts
    converter: Converter
    brokers: list[Broker]
    topology: Topology


def prepare(conf: cfg.ConfigOpts) -> Plan:
    """Everything a consumer needs, checked; AnnalsError names what is wrong."""
    defs = definitions.from_conf(conf)
    store_raw = [p.lower() for p in conf.event.store_raw]
    unknown = sorted(set(store_raw) - {"info", "error"})
    if unknown:
        LOG.warning(
            "[event] store_raw: only info and error notifications become events; ignoring %s",
            ", ".join(unknown),
        )
    return Plan(conf, Converter(defs, store_raw), brokers(conf), Topology.from_conf(conf))


def consume(plan: Plan, broker: Broker) -> int:
    """Run one consumer in this process until SIGTERM/SIGINT."""
    driver = open_driver(plan.conf)
    gctune.tune()
    n = plan.conf.notification
    consumer = Consumer(
        broker,
        plan.topology,
        plan.converter,
        driver,
        batch_size=n.batch_size,
        batch_timeout=n.batch_timeout,
    )

    def stop(signum: int, _frame: FrameType | None) -> None:
        LOG.info("%s: finishing the batch in hand", signal.Signals(signum).name)
        consumer.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        consumer.run()
    finally:
        driver.close()
    return 0


def _worker(plan: Plan, broker: Broker) -> None:
    try:
        code = consume(plan, broker)
    except ConsumerError as exc:
        LOG.error("%s", exc.message)
        code = EXIT_CONFIG
    sys.exit(code)


def supervise(plan: Plan, workers: int) -> int:
    """Run ``workers`` consumers per broker in child processes; restart those that die."""
    context = multiprocessing.get_context("fork")
    stopping = threading.Event()
    children: dict[tuple[int, int], BaseProcess] = {}

    def start(slot: tuple[int, int]) -> None:
        broker = plan.brokers[slot[0]]
        process = context.Process(
            target=_worker, args=(plan, broker), name=f"annals-consume-{slot[0]}-{slot[1]}"
        )
        process.start()
        children[slot] = process
        LOG.info("worker %d for %s started (pid %s)", slot[1], broker.display, process.pid)

    def stop(signum: int, _frame: FrameType | None) -> None:
        LOG.info("%s: stopping the workers", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(len(plan.brokers)):
        for number in range(workers):
            start((index, number))
    code = 0
    while not stopping.is_set():
        stopping.wait(RESTART_DELAY)
        for slot, process in list(children.items()):
            if process.is_alive() or stopping.is_set():
                continue
            if process.exitcode == EXIT_CONFIG:
                LOG.error("worker %s cannot run as configured; stopping", process.name)
                stopping.set()
                code = 1
                break
            LOG.warning(
                "worker %s (pid %s) exited with %s; restarting it",
                process.name,
                process.pid,
                process.exitcode,
            )
            start(slot)
    for process in children.values():
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for process in children.values():
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            LOG.warning("worker %s did not stop in %.0f s; killing it", process.name, STOP_GRACE)
            process.kill()
            process.join()
    return code


def run(args: argparse.Namespace) -> int:
    conf = load_conf(args)
    plan = prepare(conf)
    if args.check:
        n = conf.notification
        print(
            f"event definitions: {definitions.find_definitions_file(conf)} "
            f"({len(plan.converter.definitions.definitions)} with the catch-all)"
        )
        for broker in plan.brokers:
            print(f"broker: {broker.display}")
        print(
            f"queue: {n.queue_name}, bound to {', '.join(plan.topology.routing_keys)} on "
            f"{', '.join(plan.topology.exchanges)}"
        )
        return 0
    prepare_schema(conf)
    workers = args.workers if args.workers is not None else conf.notification.workers
    if workers < 1:
        print("annals consume: --workers must be at least 1", file=sys.stderr)
        return 2
    if workers == 1 and len(plan.brokers) == 1:
        return consume(plan, plan.brokers[0])
    return supervise(plan, workers)
