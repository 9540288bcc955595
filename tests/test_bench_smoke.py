"""CI smoke run of the benchmark (``python -m bench``) on a tiny data set, so it cannot rot.

No timing is asserted: only that every step runs against a real ``annals serve`` over real
HTTP, and that every query line, ingest method, throughput and memory figure is a number.
Reference Panko is not part of it (it lives in a separate virtualenv, see bench/README.md).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.chart import draw
from bench.data import Generator, ensure_dataset
from bench.lines import LINES
from bench.report import full_report, size_label, summary
from bench.run import INGEST_METHODS

EVENTS = 1200


def _number(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value >= 0


def test_dataset_is_deterministic(tmp_path: Path) -> None:
    first = [json.dumps(doc) for doc in Generator(300, seed=7).events()]
    again = [json.dumps(doc) for doc in Generator(300, seed=7).events()]
    other = [json.dumps(doc) for doc in Generator(300, seed=8).events()]
    assert first == again
    assert first != other
    data, plan = ensure_dataset(tmp_path, 300, seed=7, log=lambda _: None)
    assert data.read_text().splitlines() == [
        json.dumps(json.loads(line), separators=(",", ":")) for line in first
    ]
    assert (
        plan.instance_ids
        and plan.members
        and plan.events_by_id
        and plan.page10_marker
        and plan.deep_marker
    )
    doc = json.loads(first[0])
    names = {name for name, _, _ in doc["traits"]}
    assert {"tenant_id", "project_id", "user_id", "host", "service", "state"} <= names
    assert 700 < len(json.dumps(doc["raw"])) < 1400


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m bench ARGS`` from the project root; it must succeed."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.backends("sqlite")
def test_bench_smoke(database_url: str, tmp_path: Path) -> None:
    # The bench creates its own database per run; the fixture only selects the engine.
    engine = database_url.split(":", 1)[0]
    results = tmp_path / "results"
    options = (
        f"--engine {engine} --events {EVENTS} --repeat 1 --requests 3 --warmup 1 "
        "--throughput-seconds 1 --concurrency 2 --workers 1 --page-limits 10,100 "
        f"--page-requests 2 --results-dir {results} --quiet"
    )
    proc = _bench("run", *options.split())
    files = sorted(results.glob(f"*-{engine}-{EVENTS}.json"))
    assert len(files) == 1
    doc = json.loads(files[0].read_text())
    annals = doc["annals"]
    assert set(annals["ingest"]) == set(INGEST_METHODS)
    for entry in annals["ingest"].values():
        assert _number(entry["median"]) and entry["median"] > 0
    assert set(annals["lines"]) == {line.name for line in LINES}
    for name, entry in annals["lines"].items():
        assert _number(entry["median_ms"]) and _number(entry["p95_ms"]), name
        assert entry["items"] > 0, f"{name} found nothing"
    assert annals["throughput"]["median"] > 0
    assert annals["rss_baseline_mb"] > 0 and annals["rss_queries_peak_mb"] > 0
    assert [p["limit"] for p in annals["pages"]] == [10, 100]
    assert all(p["bytes"] > 0 and p["peak_rss_mb"] > 0 for p in annals["pages"])
    assert annals["pages_concurrent"]["peak_rss_mb"] > 0
    # The printed table and the report/chart commands work on the result.
    assert "string trait eq (instance_id)" in proc.stdout
    assert "string trait eq (instance_id)" in full_report([doc])
    table = summary([doc]).splitlines()
    assert table[0].startswith(f"| {size_label(EVENTS)} events, median ms | Annals SQLite |")
    assert len(table) == 2 + len(LINES) + 1 + 3  # header, lines, throughput, ingest methods
    chart = draw([doc], tmp_path / "chart.png")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Migration timing on the database the run left: down to 0001 and up again, data kept.
    proc = _bench("migrations", "--engine", engine, "--results-dir", str(results))
    [timing] = results.glob("migrations/*.json")
    steps = json.loads(timing.read_text())
    assert steps["events"] == EVENTS
    assert [s["step"] for s in steps["steps"]][:2] == ["downgrade to 0001", "upgrade to 0002"]
    assert all(_number(s["seconds"]) for s in steps["steps"])
    assert "| upgrade to 0002 |" in proc.stdout


def test_panko_runner_invocation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line bench/run.py gives panko_runner.py, its result and its log, with a
    stand-in runner (the real one needs Panko's own virtualenv)."""
    from bench import run, servers

    fake = tmp_path / "runner.py"
    fake.write_text(
        "import json, sys\n"
        "argv = sys.argv[1:]\n"
        "out = argv[argv.index('--out') + 1]\n"
        "print('progress', file=sys.stderr)\n"
        "open(out, 'w').write(json.dumps({'argv': argv, 'rate': 12.5}))\n"
    )
    monkeypatch.setattr(servers, "PANKO_PYTHON", Path(sys.executable))
    monkeypatch.setattr(servers, "PANKO_RUNNER", fake)
    out = tmp_path / "x.load.json"
    conf, data = tmp_path / "p.conf", tmp_path / "d.jsonl"
    got = run._panko_runner(conf, "load", data, 1000, out, limit=5000)
    assert got["rate"] == 12.5
    assert got["argv"] == [
        "--config-file", str(conf), "load", "--data", str(data), "--batch-size", "1000",
        "--out", str(out), "--limit", "5000",
    ]  # fmt: skip
    assert (tmp_path / "x.load.log").read_text() == "progress\n"
    got = run._panko_runner(conf, "bulk", data, 500, out)
    assert "--limit" not in got["argv"] and got["argv"][2] == "bulk"
    fake.write_text("import sys; sys.exit(3)\n")
    with pytest.raises(subprocess.CalledProcessError):
        run._panko_runner(conf, "load", data, 1000, out)


def test_walpages_maps_one_batch_to_its_btrees(tmp_path: Path) -> None:
    """``python -m bench walpages``: the WAL pages of one SQLite batch, per B-tree."""
    proc = _bench("walpages", "--events", "2500", "--before", "1", "--results-dir", str(tmp_path))
    rows = [line.split() for line in proc.stdout.splitlines()]
    counts = {
        row[-1]: int(row[0].replace(",", ""))
        for row in rows
        if len(row) == 2 and row[0].replace(",", "").isdigit()
    }
    # A batch writes event rows, the message_id index, trait rows and their value indexes.
    for btree in ("event", "sqlite_autoindex_event_1", "trait_string"):
        assert counts.get(btree, 0) > 0, proc.stdout
    assert counts["all"] == sum(v for k, v in counts.items() if k != "all")


@pytest.mark.db
@pytest.mark.slow
def test_cpusplit_smoke(database_url: str, tmp_path: Path) -> None:
    """``bench cpusplit`` loads a tiny data set over HTTP and splits its CPU time; on a
    client-server engine it finds the database server's processes and their work."""
    engine = database_url.split(":", 1)[0].split("+", maxsplit=1)[0]
    results = tmp_path / "results"
    proc = _bench(
        "cpusplit", "--engine", engine, "--events", str(EVENTS), "--batch", "300",
        "--workers", "2", "--results-dir", str(results),
    )  # fmt: skip
    # Read once both workers run (the server answers as soon as one does): master + 2.
    assert f"{engine}: 3 API processes" in proc.stdout
    assert f"{engine}: {EVENTS:,} events in 4 batches" in proc.stdout
    rows = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[1].replace(".", "").isdigit():
            rows[cells[0]] = (float(cells[1]), float(cells[2]))
    idle = [name for name in rows if name.startswith("idle, of ")]
    assert len(idle) == 1
    assert set(rows) - set(idle) == {
        "wall",
        "API server (master and workers)",
        f"database server ({engine})",
        "client (this process)",
    }
    assert rows["wall"][0] > 0 and rows["API server (master and workers)"][0] > 0
    database = rows[f"database server ({engine})"][0]
    assert database == 0 if engine == "sqlite" else database > 0
    # The load's database is dropped afterwards.
    assert not list((results / "work").glob("annals_cpusplit.sqlite*"))
