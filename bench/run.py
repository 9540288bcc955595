"""One benchmark run: a data set, one engine, Annals (and optionally Panko) measured alike."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import exc as sa_exc

from bench import lines, servers
from bench.data import DataPlan, ensure_dataset
from bench.httpdriver import (
    Client,
    HTTPError,
    RSSMonitor,
    Series,
    measure,
    parallel_gets,
    throughput,
)
from bench.lines import LINES, page_request, throughput_requests

INGEST_METHODS = ("import", "http_100", "http_1000")
RETRIES = 3
#: What a database server restarted by someone else looks like from here.
DISRUPTIONS = (HTTPError, subprocess.CalledProcessError, OSError, sa_exc.OperationalError)
Log = Callable[[str], None]


@dataclass
class Options:
    engine: str = "sqlite"
    events: int = 100_000
    seed: int = 42
    repeat: int = 3
    requests: int = 30
    warmup: int = 2
    concurrency: int = 8
    throughput_seconds: float = 10.0
    ingest: tuple[str, ...] = INGEST_METHODS
    ingest_repeat: int = 1
    ingest_clients: int = 1
    workers: int = 2
    page_limits: tuple[int, ...] = (100, 1000, 10000)
    page_requests: int = 5
    analyze: bool = True
    reuse_db: bool = False
    panko: bool = False
    panko_reload: bool = False
    panko_batch: int = 1000
    #: measure Panko's ingest rate on the first N events into an empty database (0: use the
    #: rate of the full load, which may have run in the background)
    panko_rate_sample: int = 5000
    #: how Panko's database is filled: "bulk" (the rows record_events writes, one
    #: transaction per batch: fast) or "record" (record_events itself: ~100-200 events/s)
    panko_load: str = "bulk"
    #: runs of the query lines against Panko (None: ``repeat``); Panko is slow
    panko_repeat: int | None = None
    results_dir: Path = Path("bench/results")
    workdir: Path = Path("bench/results/work")
    quiet: bool = False
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _log(opts: Options) -> Log:
    def log(message: str) -> None:
        if not opts.quiet:
            stamp = dt.datetime.now().strftime("%H:%M:%S")
            print(f"[{stamp}] {message}", file=sys.stderr, flush=True)

    return log


# --- ingest ---------------------------------------------------------------------------------


def _batches(data_file: Path, size: int) -> Iterator[tuple[int, bytes]]:
    with data_file.open("rb") as stream:
        batch: list[bytes] = []
        for raw in stream:
            line = raw.strip()
            if line:
                batch.append(line)
            if len(batch) == size:
                yield len(batch), b"[" + b",".join(batch) + b"]"
                batch = []
        if batch:
            yield len(batch), b"[" + b",".join(batch) + b"]"


#: Request bodies the client keeps ready ahead of the requests (post_batches).
PREFETCH_BODIES = 4


def _prefetched(batches: Iterator[tuple[int, bytes]]) -> Callable[[], tuple[int, bytes] | None]:
    """``batches`` read by a thread of their own, PREFETCH_BODIES ahead: a function giving
    the next one, or None at the end (to every caller, however many)."""
    ready: queue.Queue[tuple[int, bytes] | BaseException | None] = queue.Queue(PREFETCH_BODIES)

    def read() -> None:
        try:
            for item in batches:
                ready.put(item)
        except BaseException as exc:  # handed to the client that takes it
            ready.put(exc)
        ready.put(None)

    threading.Thread(target=read, name="bench-bodies", daemon=True).start()
    lock = threading.Lock()
    done = False

    def take() -> tuple[int, bytes] | None:
        nonlocal done
        with lock:
            if done:
                return None
            item = ready.get()
            done = item is None or isinstance(item, BaseException)
            if isinstance(item, BaseException):
                raise item
            return item

    return take


def post_batches(
    url: str, data_file: Path, batch_size: int, clients: int, headers: dict[str, str]
) -> tuple[int, float]:
    """POST the whole data set in batches; (events stored, seconds).

    The bodies are read from the data file and joined by a thread of their own while the
    requests run, as a publisher's batches are ready in its memory: reading and joining
    1,000 lines (~2.5 ms) is the benchmark's work, not the server's, and used to sit between
    one response and the next request (session 17)."""
    start = time.perf_counter()  # the clock runs from the first body read
    take = _prefetched(_batches(data_file, batch_size))
    stored = [0] * clients
    errors: list[BaseException] = []

    def worker(slot: int) -> None:
        client = Client(url)
        try:
            while True:
                item = take()
                if item is None:
                    return
                reply = orjson.loads(client.post_json("/v2/events", item[1], headers))
                stored[slot] += int(reply["stored"])
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return sum(stored), elapsed


SETTLE_SECONDS = 5.0


def _autocommit(engine: str, url: str, statement: str) -> None:
    """Run one statement on a connection of its own, outside any transaction (ANALYZE,
    CHECKPOINT and SQLite's wal_checkpoint do not run inside one)."""
    import sqlalchemy as sa

    target = sa.make_url(url)
    if engine == "postgresql":
        target = target.set(drivername="postgresql+psycopg")
    eng = sa.create_engine(target, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            conn.exec_driver_sql(statement)
    finally:
        eng.dispose()


#: What makes each engine write out a load at once rather than in the background.
SETTLE_STATEMENTS = {"postgresql": "CHECKPOINT", "sqlite": "PRAGMA wal_checkpoint(TRUNCATE)"}


def settle(engine: str, url: str, log: Log) -> None:
    """Let the database finish the writes of a load before anything is timed, for either
    system: PostgreSQL writes its dirty buffers out (CHECKPOINT) and SQLite copies its WAL
    into the database (wal_checkpoint), instead of doing it in the background while the query
    lines run (seen here: lines 1.1-1.8x slower right after a load than a few minutes later);
    then a few seconds of quiet."""
    started = time.perf_counter()
    if engine in SETTLE_STATEMENTS:
        _autocommit(engine, url, SETTLE_STATEMENTS[engine])
    time.sleep(SETTLE_SECONDS)
    log(f"{engine}: database settled ({time.perf_counter() - started:.1f} s)")


def _analyze(engine: str, url: str) -> None:
    """PostgreSQL: what autovacuum's ANALYZE does within a minute of a bulk load."""
    if engine == "postgresql":
        _autocommit(engine, url, "ANALYZE")


def _ingest_once(
    opts: Options, method: str, data_file: Path, admin: dict[str, str]
) -> tuple[str, int, float]:
    """Load the data set with one method into a fresh database: (url, stored, seconds).

    Each load starts on a quiet machine: the previous load's database is gone and the
    writes it left in the page cache are flushed first (os.sync, then a few seconds), so
    the second and third loads do not run while the kernel writes out the first one's
    hundreds of MB. (Before this, on one machine: first loads 11,555 and 11,761 events/s,
    the later ones 9,636-10,214.)"""
    url = servers.fresh_database(opts.engine, servers.ANNALS_DB, opts.workdir)
    os.sync()
    time.sleep(SETTLE_SECONDS)
    conf, port = servers.annals_for_new_database(opts.engine, opts.workdir, url, opts.workers)
    if method == "import":
        start = time.perf_counter()
        done = servers.annals(
            "import",
            "--config-file",
            str(conf),
            "--batch-size",
            "1000",
            "--no-progress",
            str(data_file),
        )
        elapsed = time.perf_counter() - start
        stored = int(done.stdout.split("stored:")[1].split()[0])
    else:
        size = int(method.split("_")[1])
        log_file = opts.workdir / f"annals-serve-{opts.engine}.log"
        with servers.annals_server(conf, port, log_file) as srv:
            stored, elapsed = post_batches(srv.url, data_file, size, opts.ingest_clients, admin)
    if stored != opts.events:
        raise RuntimeError(f"{method}: stored {stored} events of {opts.events}")
    return url, stored, elapsed


def ingest_annals(opts: Options, data_file: Path, log: Log) -> tuple[dict[str, Any], str]:
    """Load the data set with each method into a fresh database; the last one is kept."""
    results: dict[str, Any] = {}
    url = servers.database_url(opts.engine, servers.ANNALS_DB, opts.workdir)
    methods = [m for m in INGEST_METHODS if m in opts.ingest]
    admin = dict(lines.admin("bench"))
    for method in methods:
        rates: list[float] = []
        for attempt in range(opts.ingest_repeat):
            for tries in range(1, RETRIES + 1):
                try:
                    url, stored, elapsed = _ingest_once(opts, method, data_file, admin)
                    break
                except DISRUPTIONS as exc:
                    # Another process restarted the database server (it happens on a shared
                    # machine): this load is void, do it again on a fresh database.
                    log(
                        f"annals {opts.engine} ingest {method} #{attempt + 1} disrupted "
                        f"({str(exc)[:160]}); again ({tries}/{RETRIES})"
                    )
                    if tries == RETRIES:
                        raise
                    time.sleep(10)
            rates.append(stored / elapsed)
            log(
                f"annals {opts.engine} ingest {method} #{attempt + 1}: "
                f"{stored:,} events in {elapsed:.1f} s = {stored / elapsed:,.0f} events/s"
            )
        results[method] = {
            "rates": rates,
            "median": statistics.median(rates),
            "batch_size": 1000 if method == "import" else int(method[5:]),
            "clients": 1 if method == "import" else opts.ingest_clients,
        }
    return results, url


# --- queries --------------------------------------------------------------------------------


_T = TypeVar("_T")


def _again(fn: Callable[[], _T], client: Client, log: Log, what: str) -> _T:
    """Run a measurement; if the database server was restarted under it, run it again."""
    for tries in range(1, RETRIES + 1):
        try:
            return fn()
        except DISRUPTIONS as exc:
            log(f"{what} disrupted ({str(exc)[:160]}); again ({tries}/{RETRIES})")
            client.close()
            if tries == RETRIES:
                raise
            time.sleep(10)
    raise AssertionError("unreachable")


def measure_server(
    opts: Options,
    *,
    url: str,
    pid: int,
    plan: DataPlan,
    name: str,
    log: Log,
    repeat: int | None = None,
) -> dict[str, Any]:
    """Every query line (``repeat`` runs), throughput, and worker RSS with big pages."""
    client = Client(url)
    out: dict[str, Any] = {"repeat": repeat or opts.repeat, "requests": opts.requests}
    with RSSMonitor(pid) as monitor:
        try:
            page10 = orjson.loads(client.get(LINES[8].build(plan)[0])[0])
        except HTTPError as exc:  # the line itself records the failure below
            page10 = None
            log(f"WARNING {name}: page 10 failed: {str(exc)[:200]}")
            client.close()
        if page10 is not None and (not page10 or page10[0]["message_id"] != plan.page10_first):
            log(f"WARNING {name}: page 10 does not start with the expected event")
        out["rss_baseline_mb"] = monitor.current_mb()
        per_line: dict[str, list[Series]] = {line.name: [] for line in LINES}
        rates: list[float] = []
        tp_requests = throughput_requests(plan)
        #: lines the server cannot answer (Panko 10 on MariaDB: markers are a 500, a SQL
        #: syntax error of its own): recorded as failed, not measured again
        failed: dict[str, str] = {}
        for run in range(repeat or opts.repeat):
            for line in LINES:
                if line.name in failed:
                    continue
                requests = line.build(plan)
                try:
                    series = _again(
                        lambda: measure(client, requests, opts.requests, opts.warmup),  # noqa: B023
                        client,
                        log,
                        f"{name} {line.name}",
                    )
                except HTTPError as exc:
                    failed[line.name] = str(exc)[:500]
                    log(f"{name} {line.name} FAILED, not measured: {failed[line.name][:200]}")
                    continue
                per_line[line.name].append(series)
                log(
                    f"{name} run {run + 1} {line.name:20s} median {series.median:9.2f} ms  "
                    f"p95 {series.p95:9.2f} ms  ({series.items} items)"
                )
            client.close()
            if "throughput" in failed or "trait_string" in failed:
                continue
            try:
                rate = _again(
                    lambda: throughput(url, tp_requests, opts.concurrency, opts.throughput_seconds),
                    client,
                    log,
                    f"{name} throughput",
                )
            except HTTPError as exc:
                failed["throughput"] = str(exc)[:500]
                log(f"{name} throughput FAILED, not measured: {failed['throughput'][:200]}")
                continue
            rates.append(rate)
            log(
                f"{name} run {run + 1} throughput trait_string c={opts.concurrency}: "
                f"{rate:.1f} req/s"
            )
        out["lines"] = {
            line: {
                "median_ms": statistics.median(s.median for s in runs),
                "p95_ms": statistics.median(s.p95 for s in runs),
                "items": runs[0].items,
                "bytes": runs[0].bytes,
                "runs": [{"median_ms": s.median, "p95_ms": s.p95} for s in runs],
                "requests_per_run": len(runs[0].samples),
            }
            for line, runs in per_line.items()
            if runs
        }
        out["failed_lines"] = failed
        out["throughput"] = {
            "line": "trait_string",
            "concurrency": opts.concurrency,
            "seconds": opts.throughput_seconds,
            "runs": rates,
            "median": statistics.median(rates) if rates else None,
        }
        out["rss_queries_peak_mb"] = monitor.peak_mb()
        if "list" in failed:  # the server cannot list events: no pages to measure
            out["pages"] = []
            return out
        pages = []
        for limit in opts.page_limits:
            monitor.reset()
            req = page_request(plan, limit)
            series = measure(client, [req], opts.page_requests, warmup=1)
            pages.append(
                {
                    "limit": limit,
                    "items": series.items,
                    "bytes": series.bytes,
                    "median_ms": series.median,
                    "peak_rss_mb": monitor.peak_mb(),
                }
            )
            log(
                f"{name} page limit={limit}: {series.items} events, {series.bytes:,} bytes, "
                f"{series.median:.1f} ms, worker peak RSS {pages[-1]['peak_rss_mb']:.1f} MB"
            )
        out["pages"] = pages
        client.close()
        biggest = max(opts.page_limits)
        monitor.reset()
        lat = parallel_gets(
            url, [page_request(plan, biggest)] * (2 * opts.concurrency), opts.concurrency
        )
        out["pages_concurrent"] = {
            "limit": biggest,
            "concurrency": opts.concurrency,
            "requests": len(lat),
            "median_ms": statistics.median(lat),
            "peak_rss_mb": monitor.peak_mb(),
        }
        out["rss_workers"] = len(monitor.workers())
        log(
            f"{name} {2 * opts.concurrency} pages of {biggest} at concurrency "
            f"{opts.concurrency}: worker peak RSS {out['pages_concurrent']['peak_rss_mb']:.1f} MB"
        )
    return out


# --- the systems ----------------------------------------------------------------------------


def annals_version() -> str:
    import annals

    return str(annals.__version__)


def run_annals(opts: Options, data_file: Path, plan: DataPlan, log: Log) -> dict[str, Any]:
    opts.workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "system": "annals",
        "version": annals_version(),
        "engine": opts.engine,
        "engine_version": servers.server_version(opts.engine),
    }
    if opts.reuse_db:
        url = servers.database_url(opts.engine, servers.ANNALS_DB, opts.workdir)
        result["ingest"] = {}
        log("reusing the loaded Annals database (no ingest measured)")
    else:
        result["ingest"], url = ingest_annals(opts, data_file, log)
    if opts.analyze:
        _analyze(opts.engine, url)
    settle(opts.engine, url, log)
    port = servers.free_port()
    conf = servers.annals_config(opts.workdir, url, port, opts.workers)
    log_file = opts.workdir / f"annals-serve-{opts.engine}.log"
    with servers.annals_server(conf, port, log_file) as srv:
        result.update(
            measure_server(
                opts, url=srv.url, pid=srv.pid, plan=plan, name=f"annals/{opts.engine}", log=log
            )
        )
    return result


def _panko_runner(
    conf: Path, command: str, data_file: Path, batch: int, out: Path, *, limit: int = 0
) -> dict[str, Any]:
    """Run ``panko_runner.py <command>`` (load or bulk) in Panko's venv; its result JSON.
    The runner's progress and errors go to ``<out>.log``."""
    argv = [str(servers.PANKO_PYTHON), str(servers.PANKO_RUNNER), "--config-file", str(conf)]
    argv += [command, "--data", str(data_file), "--batch-size", str(batch), "--out", str(out)]
    if limit:
        argv += ["--limit", str(limit)]
    with out.with_suffix(".log").open("ab") as err:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=err)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def run_panko(opts: Options, data_file: Path, plan: DataPlan, log: Log) -> dict[str, Any]:
    state = opts.results_dir / "panko"
    state.mkdir(parents=True, exist_ok=True)
    name = f"{opts.engine}-{opts.events}-s{opts.seed}"
    db_name = f"{servers.PANKO_DB}_{opts.events}"
    if opts.engine == "sqlite":
        url = f"sqlite:///{(state / f'{name}.db').resolve()}"
    else:
        url = servers.panko_url(opts.engine, state, db_name)
    conf = servers.panko_config(state / f"{name}.conf", url)
    load_file = state / f"{name}.load.json"
    loaded: dict[str, Any] | None = None
    if load_file.exists() and not opts.panko_reload:
        loaded = json.loads(load_file.read_text())
        if loaded.get("events") != opts.events or loaded.get("sha256") != plan.sha256:
            loaded = None
        else:
            log(f"panko {opts.engine}: reusing the database loaded before ({load_file})")
    if loaded is None:
        if opts.engine == "sqlite":
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        else:
            servers.fresh_database(opts.engine, db_name, state)
        how = "through record_events" if opts.panko_load == "record" else "in bulk"
        log(
            f"panko {opts.engine}: loading {opts.events:,} events {how} "
            f"(batches of {opts.panko_batch})"
        )
        command = "load" if opts.panko_load == "record" else "bulk"
        loaded = _panko_runner(conf, command, data_file, opts.panko_batch, load_file)
        loaded["sha256"] = plan.sha256
        load_file.write_text(json.dumps(loaded) + "\n")
    ingest: dict[str, Any] = {}
    if "rate" in loaded:  # loaded through record_events: its rate over the whole data set
        ingest["storage_api_full_load"] = {
            "rates": [loaded["rate"]],
            "median": loaded["rate"],
            "events": loaded["events"],
            "batch_size": loaded.get("batch_size", opts.panko_batch),
            "clients": 1,
        }
    if opts.panko_rate_sample or "rate" not in loaded:
        ingest["storage_api"] = panko_rate(opts, data_file, state, log)
    else:
        ingest["storage_api"] = ingest.pop("storage_api_full_load")
    result: dict[str, Any] = {
        "system": "panko",
        "version": "10.0.0",
        "engine": opts.engine,
        "engine_version": servers.server_version(opts.engine),
        "ingest": ingest,
    }
    settle(opts.engine, url, log)
    port = servers.free_port()
    log_file = state / f"panko-serve-{opts.engine}.log"
    with servers.panko_server(conf, port, log_file, opts.workers) as srv:
        result.update(
            measure_server(
                opts,
                url=srv.url,
                pid=srv.pid,
                plan=plan,
                name=f"panko/{opts.engine}",
                log=log,
                repeat=opts.panko_repeat,
            )
        )
    return result


def panko_rate(opts: Options, data_file: Path, state: Path, log: Log) -> dict[str, Any]:
    """Panko's record_events rate on the first events of the data set, into an empty database."""
    name = f"{opts.engine}-rate"
    db_name = f"{servers.PANKO_DB}_rate"
    path = (state / f"{name}.db").resolve()
    url = (
        f"sqlite:///{path}"
        if opts.engine == "sqlite"
        else servers.panko_url(opts.engine, state, db_name)
    )
    conf = servers.panko_config(state / f"{name}.conf", url)
    out = state / f"{name}.load.json"
    rates = []
    sample = opts.panko_rate_sample or 5000
    for _ in range(opts.ingest_repeat):
        if opts.engine == "sqlite":
            path.unlink(missing_ok=True)
        else:
            servers.fresh_database(opts.engine, db_name, state)
        loaded = _panko_runner(conf, "load", data_file, opts.panko_batch, out, limit=sample)
        rates.append(float(loaded["rate"]))
        log(
            f"panko {opts.engine} ingest, first {sample:,} events into an empty "
            f"database: {rates[-1]:,.0f} events/s"
        )
    if opts.engine == "sqlite":
        path.unlink(missing_ok=True)
    else:
        servers.drop_database(opts.engine, db_name, state)
    return {
        "rates": rates,
        "median": statistics.median(rates),
        "batch_size": opts.panko_batch,
        "events": sample,
        "clients": 1,
    }


def cpu_model() -> str:
    """The CPU's model name (Linux), or the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def calibration_ms(rounds: int = 5, loops: int = 2_000_000) -> float:
    """Milliseconds of a fixed pure-Python loop, best of ``rounds``: how fast this machine
    runs Python today. Machines of the same kind differ (2x seen here between sessions), so
    results of different runs compare only with this figure beside them."""
    best = math.inf
    for _ in range(rounds):
        start = time.perf_counter()
        total = 0
        for n in range(loops):
            total += n
        best = min(best, time.perf_counter() - start)
    return round(best * 1000, 1)


def machine() -> dict[str, Any]:
    import psutil

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "calibration_ms": calibration_ms(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit,
    }


def run(opts: Options) -> tuple[dict[str, Any], Path]:
    log = _log(opts)
    data_file, plan = ensure_dataset(opts.results_dir / "data", opts.events, opts.seed, log)
    started = dt.datetime.now(dt.UTC)
    doc: dict[str, Any] = {
        "format": 1,
        "started": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        "dataset": {
            "events": plan.events,
            "seed": plan.seed,
            "sha256": plan.sha256,
            "bytes": data_file.stat().st_size,
            "first": plan.first,
            "last": plan.last,
        },
        "annals": run_annals(opts, data_file, plan, log),
    }
    if opts.panko:
        doc["panko"] = run_panko(opts, data_file, plan, log)
    doc["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    opts.results_dir.mkdir(parents=True, exist_ok=True)
    label = f"-{opts.label}" if opts.label else ""
    out = opts.results_dir / (
        f"{started.strftime('%Y%m%dT%H%M%S')}-{opts.engine}-{opts.events}{label}.json"
    )
    out.write_text(json.dumps(doc, indent=1) + "\n")
    return doc, out
