# mypy: disallow-untyped-calls=False
# (kombu ships py.typed but leaves most of its API unannotated)
"""``annals consume`` as an operator starts it: what stops it before it reads anything, and a
graceful stop with several workers."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from annals.storage.base import StorageDriver
from tests.ingest import samples
from tests.ingest.helpers import Rabbit, count_events, wait_for

ANNALS = [sys.executable, "-m", "annals", "consume"]


def consume(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ANNALS, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_help() -> None:
    result = consume("--help")
    assert result.returncode == 0
    assert "usage: annals consume" in result.stdout
    assert "--workers" in result.stdout


def test_check_reports_the_plan(conf_factory: Callable[..., Path]) -> None:
    conf = conf_factory(
        {
            "DEFAULT": {"transport_url": "rabbit://u:secret@mq1:5672,u:secret@mq2/os"},
            "notification": {
                "notification_control_exchanges": "nova,cinder",
                "topics": "notifications,monitor",
            },
        }
    )
    result = consume("--config-file", str(conf), "--check")
    assert result.returncode == 0, result.stderr
    assert "broker: rabbit://u@mq1:5672,u@mq2:5672/os" in result.stdout
    assert "secret" not in result.stdout + result.stderr
    assert (
        "queue: annals.notifications, bound to notifications.info, notifications.error, "
        "monitor.info, monitor.error on nova, cinder"
    ) in result.stdout
    assert "event_definitions.yaml" in result.stdout


def test_definitions_error_stops_start_up_naming_the_line(
    tmp_path: Path, conf_factory: Callable[..., Path]
) -> None:
    defs = tmp_path / "defs.yaml"
    defs.write_text(
        "- event_type: compute.*\n  traits:\n    host:\n      fields: payload.host\n"
        "      plugin: splitter\n"
    )
    conf = conf_factory({"event": {"definitions_cfg_file": str(defs)}})
    result = consume("--config-file", str(conf))
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        f"annals consume: {defs}, line 5: trait 'host': unknown plugin 'splitter' (available: "
        "bitfield, map, split, timedelta)"
    )
    assert "Traceback" not in result.stderr
    defs.write_text("- event_type: compute.*\n  traits:\n    host: [payload.host\n")
    result = consume("--config-file", str(conf))
    assert result.returncode == 1
    assert f"annals consume: {defs}, line 4, column 1: invalid YAML" in result.stderr


def test_bad_transport_url_is_a_clear_error(conf_factory: Callable[..., Path]) -> None:
    conf = conf_factory({"DEFAULT": {"transport_url": "kafka://broker:9092/"}})
    result = consume("--config-file", str(conf))
    assert result.returncode == 1
    assert "annals consume: unsupported transport 'kafka'" in result.stderr


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.backends("postgresql")
def test_workers_share_the_queue_and_stop_on_sigterm(
    driver: StorageDriver, rabbit: Rabbit, conf_factory: Callable[..., Path], tmp_path: Path
) -> None:
    sections = rabbit.conf_sections()
    sections["database"] = {"connection": driver.url}
    sections["notification"]["workers"] = 2
    log = tmp_path / "consume.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*ANNALS, "--config-file", str(conf_factory(sections))],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: _consumers(rabbit) == 2, what="two workers on the queue")
        rabbit.publish(
            "cinder", [samples.envelope(samples.volume_create_end()) for _ in range(500)]
        )
        wait_for(lambda: count_events(driver.url)[0] == 500, what="500 events")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text()
    assert text.count("consumer stopped: received") == 2, text
    assert rabbit.queue_depth() == (0, 0)


def _consumers(rabbit: Rabbit) -> int:
    try:
        return rabbit.queue_depth()[1]
    except Exception:  # not declared yet
        return 0


@pytest.mark.db
@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("problem", ["credentials", "queue"])
def test_broker_refusing_the_set_up_stops_start_up(
    problem: str, driver: StorageDriver, rabbit: Rabbit, conf_factory: Callable[..., Path]
) -> None:
    sections = rabbit.conf_sections()
    sections["database"] = {"connection": driver.url}
    if problem == "credentials":
        sections["DEFAULT"]["transport_url"] = "rabbit://guest:wrong@127.0.0.1:5672/"
        expected = "ACCESS_REFUSED"
    else:  # a queue of that name exists, declared differently (not durable)
        channel = rabbit.connection.channel()
        channel.queue_declare(queue=rabbit.topology.queue, durable=False, auto_delete=False)
        channel.close()
        expected = "PRECONDITION_FAILED - inequivalent arg 'durable'"
    result = consume("--config-file", str(conf_factory(sections)))
    assert result.returncode == 1
    assert "refused the set-up" in result.stderr
    assert expected in result.stderr
