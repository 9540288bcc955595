"""The load test, short: 30 s of writers and readers at concurrency 16 against ``annals serve``
on PostgreSQL. No 5xx, no failed request, every acknowledged event stored, no batch
half-stored. The 10-minute run is ``python -m tests.reliability.load``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.reliability.load import run_load

DURATION = int(os.environ.get("ANNALS_LOAD_SECONDS", "30"))


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.backends("postgresql")
def test_load_holds_and_loses_nothing(database_url: str, tmp_path: Path) -> None:
    result = run_load(
        database_url, duration=DURATION, users=16, writers=4, seed_events=5000, workdir=tmp_path
    )
    print(result.table())  # shown with -s or on failure
    assert result.server_errors == 0, result.statuses
    total = result.total
    assert total.requests > 500, result.table()
    assert total.failures == 0, (result.statuses, (tmp_path / "locust_failures.csv").read_text())
    kinds = {k.name for k in result.kinds}
    assert {"POST batch", "get by id", "marker paging", "member-scoped list"} <= kinds
    assert result.acknowledged > 0
    assert not result.lost, result.lost[:5]
    assert not result.unexplained, result.unexplained[:5]
    assert not result.partial_batches, result.partial_batches[:5]
    assert result.stored == result.acknowledged  # nothing was in doubt in a clean run
    assert result.duplicates_reported == 0
    assert "Traceback" not in result.server_log
