"""The comparison chart: latency per query line and ingest rate, Annals vs Panko, log scale."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.lines import LINES
from bench.report import ENGINE_TITLES, size_label

COLOURS = {
    ("annals", "sqlite"): "#1f77b4",
    ("annals", "postgresql"): "#2ca02c",
    ("annals", "mysql"): "#9467bd",
    ("panko", "sqlite"): "#ff7f0e",
    ("panko", "postgresql"): "#d62728",
    ("panko", "mysql"): "#8c564b",
}


def _series(docs: Sequence[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, colour key, system result) for every system in every document, by engine."""
    found: list[tuple[tuple[int, int, int], str, str, dict[str, Any]]] = []
    engines = list(ENGINE_TITLES)
    for doc in docs:
        for rank, key in enumerate(("annals", "panko")):
            system = doc.get(key)
            if system:
                engine = ENGINE_TITLES.get(system["engine"], system["engine"])
                name = "Annals" if key == "annals" else "Panko 10"
                events = doc["dataset"]["events"]
                order = (
                    engines.index(system["engine"]) if system["engine"] in engines else 9,
                    events,
                    rank,
                )
                found.append(
                    (
                        order,
                        f"{name} {engine} {size_label(events)}",
                        f"{key}:{system['engine']}:{events}",
                        system,
                    )
                )
    return [(label, key, system) for _, label, key, system in sorted(found, key=lambda f: f[0])]


def draw(docs: Sequence[dict[str, Any]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = _series(docs)
    lines = [line for line in LINES if line.target] + [line for line in LINES if not line.target]
    fig, (ax_lat, ax_ing) = plt.subplots(
        1,
        2,
        figsize=(15, 0.42 * len(lines) * max(1, len(series)) / 2 + 3),
        gridspec_kw={"width_ratios": [3, 1.3]},
    )
    height = 0.8 / max(1, len(series))
    sizes = sorted({d["dataset"]["events"] for d in docs})
    for i, (label, key, system) in enumerate(series):
        kind, engine, events = key.split(":")
        colour = COLOURS.get((kind, engine), "#7f7f7f")
        alpha = 1.0 if int(events) == sizes[0] else 0.55
        hatch = "" if int(events) == sizes[0] else "//"
        ys = [n + i * height for n in range(len(lines))]
        values = [system["lines"].get(line.name, {}).get("median_ms", 0) for line in lines]
        ax_lat.barh(ys, values, height=height, color=colour, alpha=alpha, hatch=hatch, label=label)
        ingest = system.get("ingest", {})
        method = next((m for m in ("http_1000", "storage_api") if m in ingest), None)
        if method is not None:
            rate = ingest[method]["median"]
            ax_ing.barh(i, rate, color=colour, alpha=alpha, hatch=hatch, height=0.8)
            ax_ing.text(rate, i, f" {rate:,.0f}", va="center", fontsize=8)
    ax_lat.set_xscale("log")
    ax_lat.set_yticks([n + 0.4 - height / 2 for n in range(len(lines))])
    ax_lat.set_yticklabels([line.title for line in lines], fontsize=9)
    ax_lat.invert_yaxis()
    ax_lat.set_xlabel("median latency, ms (log scale; shorter is better)")
    ax_lat.axvline(50, color="grey", linestyle=":", linewidth=1)
    ax_lat.grid(axis="x", which="both", alpha=0.25)
    ax_lat.legend(fontsize=8, loc="lower right")
    ax_lat.set_title("Query latency over real HTTP")
    ax_ing.set_xscale("log")
    left, right = ax_ing.get_xlim()
    ax_ing.set_xlim(left, right * 4)
    ax_ing.set_yticks(range(len(series)))
    ax_ing.set_yticklabels([label for label, _, _ in series], fontsize=8)
    ax_ing.invert_yaxis()
    ax_ing.set_xlabel("events/s (log scale; longer is better)")
    ax_ing.set_title("Ingest (Annals: POST batches of 1,000;\nPanko: storage API)")
    ax_ing.grid(axis="x", which="both", alpha=0.25)
    fig.suptitle("Annals vs Panko 10.0.0, same data, same machine (2 cores)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
