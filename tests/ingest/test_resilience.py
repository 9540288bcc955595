"""At-least-once delivery, as an operator's accidents test it: ``annals consume`` as a real
process, SIGKILLed halfway through 10,000 notifications, and PostgreSQL stopped under it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from annals.storage.base import StorageDriver
from tests.ingest import samples
from tests.ingest.helpers import Rabbit, count_events, wait_for

pytestmark = [pytest.mark.db, pytest.mark.slow, pytest.mark.backends("postgresql")]

PG_VERSION = os.environ.get("ANNALS_TEST_PG_CLUSTER_VERSION", "15")


class ConsumeProcess:
    def __init__(self, conf: Path, log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "annals", "consume", "--config-file", str(conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def consume(
    driver: StorageDriver, rabbit: Rabbit, conf_factory: Callable[..., Path], tmp_path: Path
) -> Iterator[Callable[..., ConsumeProcess]]:
    started: list[ConsumeProcess] = []
    sections = rabbit.conf_sections()
    sections["database"] = {"connection": driver.url}
    sections["notification"].update({"batch_size": 200, "batch_timeout": 0.2})
    conf = conf_factory(sections)
    log = tmp_path / "consume.log"

    def start() -> ConsumeProcess:
        process = ConsumeProcess(conf, log)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.alive():
            process.kill()
    if log.exists():
        print(log.read_text()[-5000:])  # shown by pytest when the test failed


def publish_stream(rabbit: Rabbit, count: int) -> list[str]:
    """``count`` create notifications in oslo envelopes; the queue exists beforehand."""
    rabbit.declare()
    messages = [samples.instance_create_end() for _ in range(count)]
    rabbit.publish("nova", [samples.envelope(m) for m in messages])
    return [m["message_id"] for m in messages]


def test_sigkill_mid_stream_loses_and_duplicates_nothing(
    driver: StorageDriver, rabbit: Rabbit, consume: Callable[..., ConsumeProcess]
) -> None:
    total = 10_000
    publish_stream(rabbit, total)
    first = consume()
    wait_for(
        lambda: count_events(driver.url)[0] >= 2_000, timeout=60, what="the first 2,000 events"
    )
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=10)
    stored_at_kill = count_events(driver.url)[0]
    assert stored_at_kill < total, "the consumer finished before it was killed"
    second = consume()
    wait_for(lambda: count_events(driver.url)[0] >= total, timeout=120, what="10,000 events")
    wait_for(lambda: rabbit.queue_depth()[0] == 0, what="an empty queue")
    assert second.terminate() == 0
    rows, distinct = count_events(driver.url)
    assert (rows, distinct) == (total, total)
    assert rabbit.queue_depth()[0] == 0


def pg_ready() -> bool:
    return (
        subprocess.run(
            ["pg_isready", "-h", "127.0.0.1", "-p", "5432"], capture_output=True, check=False
        ).returncode
        == 0
    )


def pg_ctl(action: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "main", action],
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_postgresql_stopped_during_consumption_loses_nothing(
    driver: StorageDriver, rabbit: Rabbit, consume: Callable[..., ConsumeProcess]
) -> None:
    if shutil.which("pg_ctlcluster") is None:
        pytest.fail("pg_ctlcluster is needed to stop and start the local PostgreSQL")
    total = 4_000
    ids = publish_stream(rabbit, total // 2)
    process = consume()
    wait_for(lambda: count_events(driver.url)[0] >= 200, timeout=60, what="the first events")
    try:
        pg_ctl("stop")
        ids += publish_stream(rabbit, total // 2)  # notifications keep coming meanwhile
        time.sleep(3)
        assert process.alive(), "the consumer died with the database"
    finally:
        if not pg_ready():
            pg_ctl("start")
        wait_for(pg_ready, timeout=60, what="PostgreSQL to come back")
    wait_for(lambda: count_events(driver.url)[0] >= total, timeout=90, what="every event")
    wait_for(lambda: rabbit.queue_depth()[0] == 0, what="an empty queue")
    assert process.terminate() == 0
    assert count_events(driver.url) == (total, total)
    assert "database not writable" in process.log.read_text()
