"""Tables from result files: Annals vs Panko per line, engines side by side, growth, memory."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.lines import LINE_TITLES, LINES

INGEST_TITLES = {
    "http_1000": "ingest, POST /v2/events, batches of 1,000",
    "http_100": "ingest, POST /v2/events, batches of 100",
    "import": "ingest, annals import (batches of 1,000)",
    "storage_api": "ingest, Panko storage API record_events",
    "storage_api_full_load": "ingest, Panko record_events, whole data set",
}
DASH = "-"
ENGINE_TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB"}


def load(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Result files, merged per (engine, size): see :func:`merge`."""
    docs = []
    for path in paths:
        doc = json.loads(path.read_text())
        doc.setdefault("sources", [str(path)])
        docs.append(doc)
    return merge(docs)


def merge(docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One document per (engine, size): the latest query lines, plus the ingest figures (per
    method) and the Panko measurement of earlier runs on the same data set where the latest run
    has none (a run with ``--reuse-db`` measures no ingest; one without ``--panko`` has no
    Panko)."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for doc in docs:
        key = (doc["annals"]["engine"], doc["dataset"]["events"], doc["dataset"]["sha256"])
        groups.setdefault(key, []).append(doc)
    out = []
    for group in groups.values():
        group.sort(key=lambda d: d["started"])
        merged = json.loads(json.dumps(group[-1]))
        for older in reversed(group[:-1]):
            earlier = {
                method: entry
                for method, entry in older["annals"].get("ingest", {}).items()
                if method not in merged["annals"].get("ingest", {})
            }
            if earlier:  # methods the later run did not measure
                merged["annals"].setdefault("ingest", {}).update(earlier)
                merged["sources"] += older.get("sources", [])
            if "panko" not in merged and "panko" in older:
                merged["panko"] = older["panko"]
                merged["sources"] += older.get("sources", [])
        out.append(merged)
    return out


def _ms(value: float | None) -> str:
    if value is None:
        return DASH
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _rate(value: float | None) -> str:
    return DASH if value is None else f"{value:,.0f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def size_label(events: int) -> str:
    if events >= 1_000_000 and events % 1_000_000 == 0:
        return f"{events // 1_000_000}M"
    if events >= 1000 and events % 1000 == 0:
        return f"{events // 1000}k"
    return str(events)


def _line(system: dict[str, Any], name: str, key: str = "median_ms") -> float | None:
    entry = system.get("lines", {}).get(name)
    return None if entry is None else float(entry[key])


def comparison(doc: dict[str, Any]) -> str:
    """One run: Annals vs Panko (when measured) per line, with the ratio Annals/Panko."""
    annals, panko = doc["annals"], doc.get("panko")
    engine = ENGINE_TITLES.get(annals["engine"], annals["engine"])
    runs = f"{annals['repeat']} runs" + (
        f" (Panko {panko['repeat']})" if panko and panko["repeat"] != annals["repeat"] else ""
    )
    title = (
        f"### {engine}, {doc['dataset']['events']:,} events: median of {runs} of "
        f"{annals['requests']} requests per line; ms"
    )
    host = doc.get("machine", {})
    if "calibration_ms" in host:  # result files before 2026-11-27 afternoon lack it
        title += (
            f"\n\nMachine: {host['cpus']} x {host['cpu_model']}, Python loop calibration "
            f"{host['calibration_ms']} ms (lower is faster), commit {host['git_commit']}"
        )
    header = ["line", "Annals median", "Annals p95"]
    if panko:
        header += ["Panko median", "Panko p95", "Annals/Panko", "speed-up"]
    rows: list[list[str]] = []
    for line in LINES:
        a, ap = _line(annals, line.name), _line(annals, line.name, "p95_ms")
        row = [line.title, _ms(a), _ms(ap)]
        if panko:
            p, pp = _line(panko, line.name), _line(panko, line.name, "p95_ms")
            ratio = a / p if a is not None and p else None
            broken = line.name in panko.get("failed_lines", {})  # a 500 of Panko's own
            row += [
                "fails (HTTP 500)" if broken else _ms(p),
                _ms(pp),
                DASH if ratio is None else f"{ratio:.3f}",
                DASH if ratio is None else f"{1 / ratio:,.0f}x",
            ]
        rows.append(row)
    tp_a = annals["throughput"]["median"]
    row = [
        f"trait filter, req/s at concurrency {annals['throughput']['concurrency']}",
        f"{tp_a:,.1f} req/s",
        "",
    ]
    if panko:
        tp_p = panko["throughput"]["median"]  # None: the reference could not answer
        row += [
            DASH if tp_p is None else f"{tp_p:,.1f} req/s",
            "",
            f"{tp_a / tp_p:,.1f}x" if tp_p else DASH,
            "",
        ]
    rows.append(row)
    rows += _ingest_rows(annals, panko)
    return title + "\n\n" + _table(header, rows)


def _ingest_rows(annals: dict[str, Any], panko: dict[str, Any] | None) -> list[list[str]]:
    rows = []
    p_rate = panko["ingest"]["storage_api"]["median"] if panko else None
    for method, entry in annals.get("ingest", {}).items():
        rate = entry["median"]
        row = [INGEST_TITLES[method] + " (events/s)", _rate(rate), ""]
        if panko:
            row += [_rate(p_rate), "", f"{rate / p_rate:,.0f}x" if p_rate else DASH, ""]
        rows.append(row)
    if panko and not rows:
        rows.append(
            [INGEST_TITLES["storage_api"] + " (events/s)", DASH, "", _rate(p_rate), "", "", ""]
        )
    return rows


def engines(docs: Sequence[dict[str, Any]]) -> str:
    """Annals on every engine and size measured: one column per (engine, size)."""
    cols = sorted(
        docs,
        key=lambda d: (
            d["dataset"]["events"],
            list(ENGINE_TITLES).index(d["annals"]["engine"])
            if d["annals"]["engine"] in ENGINE_TITLES
            else 9,
        ),
    )
    header = ["line (median ms)"] + [
        f"{ENGINE_TITLES.get(d['annals']['engine'], d['annals']['engine'])} "
        f"{size_label(d['dataset']['events'])}"
        for d in cols
    ]
    rows = [[line.title] + [_ms(_line(d["annals"], line.name)) for d in cols] for line in LINES]
    rows.append(
        ["trait filter req/s, concurrency 8"]
        + [f"{d['annals']['throughput']['median']:,.1f}" for d in cols]
    )
    for method in ("http_1000", "http_100", "import"):
        rows.append(
            [INGEST_TITLES[method] + " (events/s)"]
            + [_rate(d["annals"].get("ingest", {}).get(method, {}).get("median")) for d in cols]
        )
    return _table(header, rows)


def _ratio(annals: float | None, panko: float | None, higher_is_better: bool = False) -> str:
    """How many times better Annals is than Panko: Panko/Annals for latencies."""
    if not annals or not panko:
        return DASH
    return f"{annals / panko if higher_is_better else panko / annals:,.0f}"


def summary(docs: Sequence[dict[str, Any]]) -> str:
    """The README's table: one row per query line, throughput and ingest method; per engine
    at the smallest size Annals, Panko (when measured) and the factor between them, then
    Annals at the larger sizes. Panko's ingest is its full-load rate when the run has it."""
    smallest = min(d["dataset"]["events"] for d in docs)
    order = list(ENGINE_TITLES)

    def key(doc: dict[str, Any]) -> tuple[int, int]:
        engine = doc["annals"]["engine"]
        return (doc["dataset"]["events"], order.index(engine) if engine in order else 9)

    header = [f"{size_label(smallest)} events, median ms"]
    columns: list[tuple[dict[str, Any], str]] = []  # (doc, "annals" | "panko" | "ratio")
    for doc in sorted(docs, key=key):
        engine = ENGINE_TITLES.get(doc["annals"]["engine"], doc["annals"]["engine"])
        size = doc["dataset"]["events"]
        suffix = "" if size == smallest else f" {size_label(size)}"
        header.append(f"Annals {engine}{suffix}")
        columns.append((doc, "annals"))
        if doc.get("panko") and size == smallest:
            header += [f"Panko {engine}", "\u00d7"]  # multiplication sign
            columns += [(doc, "panko"), (doc, "ratio")]

    rows = []
    for line in LINES:
        row = [line.title]
        for doc, kind in columns:
            a = _line(doc["annals"], line.name)
            p = _line(doc["panko"], line.name) if doc.get("panko") else None
            broken = kind == "panko" and line.name in doc["panko"].get("failed_lines", {})
            value = _ratio(a, p) if kind == "ratio" else _ms(a if kind == "annals" else p)
            row.append("fails" if broken else value)
        rows.append(row)
    row = [f"trait filter, req/s at concurrency {docs[0]['annals']['throughput']['concurrency']}"]
    for doc, kind in columns:
        a = doc["annals"]["throughput"]["median"]
        p = doc["panko"]["throughput"]["median"] if doc.get("panko") else None
        row.append(
            _ratio(a, p, higher_is_better=True)
            if kind == "ratio"
            else _rate(a if kind == "annals" else p)
        )
    rows.append(row)
    for method in ("http_1000", "http_100", "import"):
        row = [INGEST_TITLES[method] + ", events/s"]
        for doc, kind in columns:
            a = doc["annals"].get("ingest", {}).get(method, {}).get("median")
            p = doc["panko"]["ingest"]["storage_api"]["median"] if doc.get("panko") else None
            row.append(
                _ratio(a, p, higher_is_better=True)
                if kind == "ratio"
                else _rate(a if kind == "annals" else p)
            )
        rows.append(row)
    return _table(header, rows)


def growth(small: dict[str, Any], large: dict[str, Any]) -> str:
    """Median latency growth from one data-set size to a larger one, same engine."""
    s_n, l_n = size_label(small["dataset"]["events"]), size_label(large["dataset"]["events"])
    engine = ENGINE_TITLES.get(small["annals"]["engine"], small["annals"]["engine"])
    header = ["line", f"{s_n} median ms", f"{l_n} median ms", f"{l_n}/{s_n}"]
    rows = []
    for line in LINES:
        a, b = _line(small["annals"], line.name), _line(large["annals"], line.name)
        rows.append([line.title, _ms(a), _ms(b), f"{b / a:.2f}" if a and b else DASH])
    return f"### Growth {s_n} → {l_n}, Annals on {engine}\n\n" + _table(header, rows)


def memory(docs: Sequence[dict[str, Any]]) -> str:
    """Worker RSS: baseline, query phase, pages of growing size, concurrent big pages."""
    rows = []
    for doc in docs:
        for key in ("annals", "panko"):
            system = doc.get(key)
            if not system:
                continue
            name = (
                f"{'Annals' if key == 'annals' else 'Panko 10'} "
                f"{ENGINE_TITLES.get(system['engine'], system['engine'])} "
                f"{size_label(doc['dataset']['events'])}"
            )
            pages = " / ".join(
                f"{p['limit']}: {p['bytes'] / 1e6:.2f} MB, {_ms(p['median_ms'])} ms, "
                f"{p['peak_rss_mb']:.0f} MB"
                for p in system["pages"]
            )
            conc = system.get("pages_concurrent")
            if conc is None:  # the server could not list events
                rows.append([name, f"{system['rss_baseline_mb']:.0f}", DASH, "fails", DASH])
                continue
            rows.append(
                [
                    name,
                    f"{system['rss_baseline_mb']:.0f}",
                    f"{system['rss_queries_peak_mb']:.0f}",
                    pages,
                    f"{conc['peak_rss_mb']:.0f} ({conc['concurrency']} at once, "
                    f"{_ms(conc['median_ms'])} ms)",
                ]
            )
    header = [
        "server",
        "worker RSS idle (MB)",
        "peak, query lines (MB)",
        "page limit: response size, median latency, worker peak RSS",
        f"peak with limit={max((p['limit'] for p in docs[0]['annals']['pages']), default=0)}"
        " pages in parallel (MB)",
    ]
    return _table(header, rows)


def full_report(docs: Sequence[dict[str, Any]]) -> str:
    parts = [comparison(doc) for doc in docs]
    if len(docs) > 1:
        parts.insert(0, "### Summary (the README's table)\n\n" + summary(docs))
    if len(docs) > 1:
        parts.append("### Annals, every engine and size\n\n" + engines(docs))
    by_engine: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_engine.setdefault(doc["annals"]["engine"], []).append(doc)
    for group in by_engine.values():
        sizes = sorted(group, key=lambda d: d["dataset"]["events"])
        if len(sizes) > 1 and sizes[0]["dataset"]["events"] < sizes[-1]["dataset"]["events"]:
            parts.append(growth(sizes[0], sizes[-1]))
    parts.append("### API worker memory\n\n" + memory(docs))
    return "\n\n".join(parts) + "\n"


def line_titles() -> dict[str, str]:
    return dict(LINE_TITLES)
