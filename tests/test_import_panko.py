"""Moving a Panko 10 database onto Annals (``annals import-panko``)."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from annals.models import Trait, TraitType
from annals.panko_import import PankoSource, PankoSourceError, panko_metadata
from annals.query import EventQuery
from annals.storage.base import StorageDriver
from annals.storage.sql.driver import normalise_url
from tests.conftest import IN_CI
from tests.test_cli import run

pytestmark = pytest.mark.db
T0 = dt.datetime(2021, 3, 1, 8, 0, 0, 250000)
PANKO_VENV = Path(os.environ.get("ANNALS_PANKO_VENV", "/work/panko-ref"))


def fill_panko(url: str, count: int, start: int = 0) -> None:
    """Write ``count`` events the way Panko's SQL driver lays them out."""
    engine = sa.create_engine(normalise_url(url))
    mysql = engine.dialect.name in ("mysql", "mariadb")
    md, tables = panko_metadata(mysql)
    md.create_all(engine)

    def stamp(value: dt.datetime) -> Any:
        if mysql:  # DECIMAL(20,6) seconds since the epoch
            return decimal.Decimal((value - dt.datetime(1970, 1, 1)).total_seconds()).quantize(
                decimal.Decimal("0.000001")
            )
        return value

    with engine.begin() as conn:
        for type_id, name in ((1, "compute.instance.create.end"), (2, "volume.delete.end")):
            exists = conn.execute(
                sa.select(tables["event_type"].c.id).where(tables["event_type"].c.id == type_id)
            ).first()
            if not exists:
                conn.execute(tables["event_type"].insert(), {"id": type_id, "desc": name})
        events, texts, ints, floats, dates = [], [], [], [], []
        for n in range(start, start + count):
            event_id = n + 1
            events.append(
                {
                    "id": event_id,
                    "message_id": f"panko-{n:06d}",
                    "generated": stamp(T0 + dt.timedelta(seconds=n, microseconds=n)),
                    "raw": json.dumps({"payload": {"n": n, "name": "vm-ü"}}),
                    "event_type_id": 1 + n % 2,
                }
            )
            texts += [
                {"event_id": event_id, "key": "project_id", "value": f"project-{n % 3}"},
                {"event_id": event_id, "key": "user_id", "value": "user-1"},
            ]
            ints.append({"event_id": event_id, "key": "memory_mb", "value": 2**40 + n})
            floats.append({"event_id": event_id, "key": "load", "value": n / 8})
            dates.append(
                {
                    "event_id": event_id,
                    "key": "launched_at",
                    "value": stamp(T0 - dt.timedelta(microseconds=n)),
                }
            )
        conn.execute(tables["event"].insert(), events)
        conn.execute(tables["trait_text"].insert(), texts)
        conn.execute(tables["trait_int"].insert(), ints)
        conn.execute(tables["trait_float"].insert(), floats)
        conn.execute(tables["trait_datetime"].insert(), dates)
    engine.dispose()


def import_panko(
    driver: StorageDriver,
    source: str,
    conf_factory: Callable[..., Path],
    tmp_path: Path,
    *extra: str,
) -> subprocess.CompletedProcess[str]:
    conf = conf_factory({"database": {"connection": driver.url, "data_dir": tmp_path}})
    return run("import-panko", "--config-file", str(conf), "--from", source, *extra)


def test_import_copies_every_event(
    driver: StorageDriver,
    second_database_url: str,
    conf_factory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    fill_panko(second_database_url, 250)
    result = import_panko(driver, second_database_url, conf_factory, tmp_path, "--batch-size", "40")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stored: 250" in result.stdout
    assert "compute.instance.create.end: 125 / 125 ok" in result.stdout
    assert "verification passed" in result.stdout
    [first] = driver.get_events(EventQuery(message_id="panko-000007"))
    assert first.event_type == "volume.delete.end"
    assert first.generated == T0 + dt.timedelta(seconds=7, microseconds=7)
    assert first.raw == {"payload": {"n": 7, "name": "vm-ü"}}
    assert set(first.traits) == {
        Trait("project_id", TraitType.STRING, "project-1"),
        Trait("user_id", TraitType.STRING, "user-1"),
        Trait("memory_mb", TraitType.INTEGER, 2**40 + 7),
        Trait("load", TraitType.FLOAT, 7 / 8),
        Trait("launched_at", TraitType.DATETIME, T0 - dt.timedelta(microseconds=7)),
    }
    # a second run finds nothing new; --restart re-reads everything and skips duplicates
    again = import_panko(driver, second_database_url, conf_factory, tmp_path)
    assert "stored: 0" in again.stdout and again.returncode == 0
    restart = import_panko(driver, second_database_url, conf_factory, tmp_path, "--restart")
    assert "duplicates (already in Annals): 250" in restart.stdout
    assert restart.returncode == 0


@pytest.mark.slow
@pytest.mark.backends("sqlite", "postgresql")
def test_import_resumes_after_being_killed(
    driver: StorageDriver,
    second_database_url: str,
    conf_factory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    fill_panko(second_database_url, 6000)
    conf = conf_factory({"database": {"connection": driver.url, "data_dir": tmp_path}})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "annals",
            "import-panko",
            "--config-file",
            str(conf),
            "--from",
            second_database_url,
            "--batch-size",
            "100",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    state = next(tmp_path.glob("import-panko-*.json"), None)
    deadline = time.monotonic() + 60
    while state is None and time.monotonic() < deadline:
        time.sleep(0.05)
        state = next(tmp_path.glob("import-panko-*.json"), None)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state is not None
    stopped_at = json.loads(state.read_text())["last_panko_event_id"]
    assert 0 < stopped_at < 6000
    result = import_panko(driver, second_database_url, conf_factory, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verification passed" in result.stdout
    assert len(driver.get_events(EventQuery(limit=10_000))) == 6000


def test_bad_sources_are_clear_errors(
    driver: StorageDriver,
    second_database_url: str,
    conf_factory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    result = import_panko(driver, "postgresql://nobody@127.0.0.1:1/panko", conf_factory, tmp_path)
    assert result.returncode == 1
    assert "cannot connect to the Panko database" in result.stderr
    assert "Traceback" not in result.stderr
    result = import_panko(driver, second_database_url, conf_factory, tmp_path)  # empty db
    assert result.returncode == 1
    assert "not a Panko database: table(s)" in result.stderr
    result = import_panko(driver, "nonsense://", conf_factory, tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    with pytest.raises(PankoSourceError):
        PankoSource("sqlite:////nonexistent/dir/panko.db")


@pytest.mark.slow
@pytest.mark.backends("sqlite")
def test_import_from_a_database_made_by_real_panko(
    driver: StorageDriver, tmp_path: Path, conf_factory: Callable[..., Path]
) -> None:
    """Optional: needs panko==10.0.0 in its own venv (tools/panko_reference/README.md)."""
    python = PANKO_VENV / "bin" / "python"
    if not python.exists():
        if IN_CI and os.environ.get("ANNALS_PANKO_VENV"):
            pytest.fail(f"ANNALS_PANKO_VENV={PANKO_VENV} has no bin/python")
        pytest.skip("optional: no reference Panko venv")
    panko_db = tmp_path / "panko.sqlite"
    script = Path(__file__).parent / "golden" / "make_panko_db.py"
    subprocess.run([str(python), str(script), str(panko_db)], check=True, timeout=300)
    result = import_panko(driver, f"sqlite:///{panko_db}", conf_factory, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verification passed" in result.stdout
    golden = (Path(__file__).parent / "golden" / "panko10_events.jsonl").read_text().splitlines()
    assert len(driver.get_events(EventQuery(limit=1000))) == len([g for g in golden if g])
