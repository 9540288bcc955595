"""How long each schema migration takes on a loaded database (``python -m bench migrations``).

Takes the database the last ``python -m bench run`` loaded (it is left at the head
revision), downgrades it to ``--base`` and upgrades it again one revision at a time, timing
each step: what ``annals dbsync`` costs an operator upgrading a store of that size. The data
are kept (every downgrade and upgrade keeps rows; see the migrations), but the database is
rebuilt in the process: run it after the measurements, not before.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from annals.storage import get_driver
from annals.storage.sql.driver import SQLDriver
from bench import servers
from bench.run import machine


def _count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM event")).scalar_one())


def time_migrations(engine_name: str, workdir: Path, base: str) -> dict[str, Any]:
    url = servers.database_url(engine_name, servers.ANNALS_DB, workdir)
    driver = get_driver(url)
    assert isinstance(driver, SQLDriver)
    try:
        events = _count(driver.engine)
        with driver.engine.connect() as conn:
            script = ScriptDirectory.from_config(driver._alembic_config(conn))
        chain = [rev.revision for rev in script.walk_revisions(base="base", head="heads")]
        chain.reverse()  # oldest first
        later = chain[chain.index(base) + 1 :]
        steps: list[dict[str, Any]] = []
        start = time.perf_counter()
        with driver.engine.begin() as conn:
            command.downgrade(driver._alembic_config(conn), base)
        steps.append({"step": f"downgrade to {base}", "seconds": time.perf_counter() - start})
        for revision in later:
            start = time.perf_counter()
            with driver.engine.begin() as conn:
                command.upgrade(driver._alembic_config(conn), revision)
            steps.append({"step": f"upgrade to {revision}", "seconds": time.perf_counter() - start})
        if _count(driver.engine) != events:
            raise RuntimeError("the number of events changed during the migrations")
        return {
            "engine": engine_name,
            "engine_version": servers.server_version(engine_name),
            "events": events,
            "steps": steps,
            "machine": machine(),
        }
    finally:
        driver.close()


def report(result: dict[str, Any]) -> str:
    lines = [
        f"{result['engine_version']}: {result['events']:,} events",
        "",
        "| step | seconds |",
        "|---|---:|",
    ]
    lines += [f"| {s['step']} | {s['seconds']:,.1f} |" for s in result["steps"]]
    return "\n".join(lines)


def main(engine_name: str, results_dir: Path, base: str) -> int:
    result = time_migrations(engine_name, results_dir / "work", base)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    folder = results_dir / "migrations"  # not beside the run results that `report` reads
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{stamp}-{engine_name}-{result['events']}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(report(result))
    print(f"\nresults: {out}")
    return 0
