"""``python -m bench``: generate, run, report, chart, migrations, walpages, cpusplit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import report
from bench.data import ensure_dataset
from bench.run import INGEST_METHODS, Options, run
from bench.servers import ENGINES

RESULTS = Path("bench/results")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def _size(text: str) -> int:
    text = text.lower().replace("_", "")
    for suffix, factor in (("k", 1000), ("m", 1_000_000)):
        if text.endswith(suffix):
            return int(float(text[:-1]) * factor)
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write a data set (JSON lines) and its query plan")
    gen.add_argument("--events", type=_size, default=100_000, help="size, e.g. 100k, 1M")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--results-dir", type=Path, default=RESULTS)

    r = sub.add_parser("run", help="load a data set and measure (one result file per engine)")
    r.add_argument("--engine", action="append", choices=ENGINES, help="repeatable; default sqlite")
    r.add_argument("--events", type=_size, default=100_000, help="size, e.g. 100k, 1M")
    r.add_argument("--seed", type=int, default=42)
    r.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of every query line and of the throughput (median of them)",
    )
    r.add_argument("--requests", type=int, default=30, help="requests per line and run")
    r.add_argument("--warmup", type=int, default=2, help="unmeasured requests per line first")
    r.add_argument("--concurrency", type=int, default=8, help="clients of the throughput test")
    r.add_argument("--throughput-seconds", type=float, default=10.0)
    r.add_argument(
        "--ingest",
        default=",".join(INGEST_METHODS),
        help=f"ingest methods, in {INGEST_METHODS}; each loads the whole data set "
        "into a fresh database, the last one is queried ('' = none, with "
        "--reuse-db)",
    )
    r.add_argument("--ingest-repeat", type=int, default=1, help="loads per ingest method")
    r.add_argument(
        "--ingest-clients", type=int, default=1, help="concurrent HTTP clients posting batches"
    )
    r.add_argument("--workers", type=int, default=2, help="API worker processes (both servers)")
    r.add_argument("--page-limits", type=_ints, default=(100, 1000, 10000))
    r.add_argument("--page-requests", type=int, default=5)
    r.add_argument(
        "--no-analyze",
        dest="analyze",
        action="store_false",
        help="PostgreSQL: do not ANALYZE after the load (autovacuum would)",
    )
    r.add_argument(
        "--reuse-db",
        action="store_true",
        help="query the database loaded by the previous run, measure no ingest",
    )
    r.add_argument(
        "--panko", action="store_true", help="also measure reference Panko 10.0.0 on the same data"
    )
    r.add_argument(
        "--panko-reload",
        action="store_true",
        help="reload Panko's database even if it holds this data set already",
    )
    r.add_argument("--panko-batch", type=int, default=1000)
    r.add_argument(
        "--panko-rate-sample",
        type=_size,
        default=5000,
        help="measure Panko's ingest rate on this many events into an empty "
        "database (0: the rate of its full load)",
    )
    r.add_argument(
        "--panko-load",
        choices=("bulk", "record"),
        default="bulk",
        help="fill Panko's database with the rows record_events writes, in one "
        "transaction per batch (bulk, fast), or through record_events itself",
    )
    r.add_argument("--panko-repeat", type=int, help="runs against Panko (default: --repeat)")
    r.add_argument("--results-dir", type=Path, default=RESULTS)
    r.add_argument("--label", default="", help="added to the result file name")
    r.add_argument("--quiet", action="store_true")

    rep = sub.add_parser("report", help="Markdown tables from result files")
    rep.add_argument("files", nargs="+", type=Path)

    mig = sub.add_parser(
        "migrations",
        help="time each schema migration on the database the last run loaded (rebuilds it)",
    )
    mig.add_argument("--engine", choices=ENGINES, default="sqlite")
    mig.add_argument("--base", default="0001", help="revision to downgrade to first")
    mig.add_argument("--results-dir", type=Path, default=RESULTS)

    wal = sub.add_parser(
        "walpages", help="SQLite: the pages one batch of 1,000 writes to the WAL, per B-tree"
    )
    wal.add_argument("--events", type=_size, default=100_000, help="data set size, e.g. 100k")
    wal.add_argument("--seed", type=int, default=42)
    wal.add_argument("--before", type=int, default=60, help="batches loaded first")
    wal.add_argument("--results-dir", type=Path, default=RESULTS)

    cpu = sub.add_parser(
        "cpusplit",
        help="CPU time of an HTTP load: API server, database server, client, idle",
    )
    cpu.add_argument("--engine", choices=ENGINES, default="sqlite")
    cpu.add_argument("--events", type=_size, default=100_000, help="data set size, e.g. 100k")
    cpu.add_argument("--seed", type=int, default=42)
    cpu.add_argument("--batch", type=int, default=1000, help="events per POST")
    cpu.add_argument("--clients", type=int, default=1, help="concurrent HTTP clients")
    cpu.add_argument("--workers", type=int, default=2, help="API worker processes")
    cpu.add_argument("--results-dir", type=Path, default=RESULTS)

    ch = sub.add_parser("chart", help="PNG chart from result files")
    ch.add_argument("files", nargs="+", type=Path)
    ch.add_argument("--out", type=Path, default=Path("docs/benchmark.png"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "generate":
        data, plan = ensure_dataset(args.results_dir / "data", args.events, args.seed)
        print(f"{data} ({plan.events:,} events, sha256 {plan.sha256})")
        return 0
    if args.command == "report":
        print(report.full_report(report.load(args.files)), end="")
        return 0
    if args.command == "migrations":
        from bench import migrations

        return migrations.main(args.engine, args.results_dir, args.base)
    if args.command == "walpages":
        from bench import walpages

        data, _plan = ensure_dataset(args.results_dir / "data", args.events, args.seed)
        return walpages.main(data, args.results_dir / "work", args.before)
    if args.command == "cpusplit":
        from bench import cpusplit

        data, _plan = ensure_dataset(args.results_dir / "data", args.events, args.seed)
        return cpusplit.main(
            args.engine,
            data,
            workdir=args.results_dir / "work",
            batch_size=args.batch,
            clients=args.clients,
            workers=args.workers,
        )
    if args.command == "chart":
        from bench.chart import draw

        print(draw(report.load(args.files), args.out))
        return 0
    ingest = tuple(m for m in args.ingest.split(",") if m)
    unknown = set(ingest) - set(INGEST_METHODS)
    if unknown:
        print(f"unknown ingest method(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if not ingest and not args.reuse_db:
        print(
            "no ingest method: give --reuse-db to query the last loaded database", file=sys.stderr
        )
        return 2
    docs = []
    for engine in args.engine or ["sqlite"]:
        opts = Options(
            engine=engine,
            events=args.events,
            seed=args.seed,
            repeat=args.repeat,
            requests=args.requests,
            warmup=args.warmup,
            concurrency=args.concurrency,
            throughput_seconds=args.throughput_seconds,
            ingest=ingest,
            ingest_repeat=args.ingest_repeat,
            ingest_clients=args.ingest_clients,
            workers=args.workers,
            page_limits=args.page_limits,
            page_requests=args.page_requests,
            analyze=args.analyze,
            reuse_db=args.reuse_db,
            panko=args.panko,
            panko_reload=args.panko_reload,
            panko_batch=args.panko_batch,
            panko_repeat=args.panko_repeat,
            panko_rate_sample=args.panko_rate_sample,
            panko_load=args.panko_load,
            results_dir=args.results_dir,
            workdir=args.results_dir / "work",
            quiet=args.quiet,
            label=args.label,
        )
        doc, out = run(opts)
        docs.append(doc)
        print(report.comparison(doc))
        print(f"\nresults: {out}\n")
    return 0
