"""HTTP drivers: keep-alive requests, latency series, throughput at a concurrency, worker RSS.

The client is the standard library's ``http.client`` on a persistent connection: the cheapest
Python client there is, so the numbers are the server's, not the client's (both servers are
driven by the same code). Every request is checked for its expected status.
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode, urlsplit

import psutil

Headers = dict[str, str]


@dataclass(frozen=True)
class Request:
    """One HTTP request of a query line."""

    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def target(self) -> str:
        qs = urlencode(self.query, quote_via=quote, safe="")
        return quote(self.path) + (f"?{qs}" if qs else "")


class HTTPError(RuntimeError):
    pass


class Client:
    """One persistent HTTP/1.1 connection, reopened when the server closed it."""

    def __init__(self, base_url: str, timeout: float = 600) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self, method: str, target: str, headers: Headers, body: bytes | None = None
    ) -> tuple[int, bytes]:
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp.status, data
            except (
                http.client.RemoteDisconnected,
                ConnectionResetError,
                BrokenPipeError,
                http.client.CannotSendRequest,
                http.client.ResponseNotReady,
            ):
                # The server dropped an idle keep-alive connection: reconnect once.
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def get(self, req: Request, expect: int = 200) -> tuple[bytes, float]:
        """GET, check the status; the body and the wall time in seconds."""
        start = time.perf_counter()
        status, data = self.request("GET", req.target, dict(req.headers))
        elapsed = time.perf_counter() - start
        if status != expect:
            raise HTTPError(f"GET {req.target} -> {status}: {data[:300]!r}")
        return data, elapsed

    def post_json(self, path: str, body: bytes, headers: Headers, expect: int = 201) -> bytes:
        hdrs = {**headers, "Content-Type": "application/json"}
        status, data = self.request("POST", path, hdrs, body)
        if status != expect:
            raise HTTPError(f"POST {path} -> {status}: {data[:300]!r}")
        return data


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p95 of 30 samples is the 29th smallest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.4999)))
    return ordered[rank - 1]


@dataclass
class Series:
    """Latencies of one query line in one run, in milliseconds."""

    samples: list[float] = field(default_factory=list)
    items: int = -1
    bytes: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        return percentile(self.samples, 95)


def measure(client: Client, requests: Sequence[Request], count: int, warmup: int = 2) -> Series:
    """Send ``count`` requests (rotating through ``requests``) one after the other."""
    series = Series()
    for i in range(warmup):
        client.get(requests[i % len(requests)])
    for i in range(count):
        data, elapsed = client.get(requests[i % len(requests)])
        series.samples.append(elapsed * 1000)
        if i == 0:
            series.items = count_items(data)
            series.bytes = len(data)
    return series


def count_items(body: bytes) -> int:
    """Number of entries of a JSON list response (1 for an object)."""
    import orjson

    doc = orjson.loads(body)
    return len(doc) if isinstance(doc, list) else 1


def throughput(
    base_url: str,
    requests: Sequence[Request],
    concurrency: int,
    seconds: float,
    warmup: float = 1.0,
) -> float:
    """Requests per second of ``concurrency`` clients sending back to back.

    Counted: the requests sent from ``warmup`` seconds after the start until ``seconds``
    later, each waited for to the end; the rate is their number over the time from the
    first of them being sent to the last one answered. A server slower than the window
    still gets a fair figure (its in-flight requests are not dropped).
    """
    done = [0] * concurrency
    last = [0.0] * concurrency
    errors: list[BaseException] = []
    start_at = time.perf_counter() + warmup
    stop_at = start_at + seconds
    barrier = threading.Barrier(concurrency)

    def worker(slot: int) -> None:
        client = Client(base_url)
        try:
            barrier.wait()
            i = slot
            while True:
                sent = time.perf_counter()
                if sent >= stop_at:
                    break
                client.get(requests[i % len(requests)])
                i += concurrency
                if sent >= start_at:
                    done[slot] += 1
                    last[slot] = time.perf_counter()
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    end = max(last)
    return sum(done) / (end - start_at) if end > start_at else 0.0


def parallel_gets(base_url: str, requests: Sequence[Request], concurrency: int) -> list[float]:
    """Each request once, ``concurrency`` at a time; latencies in ms."""
    latencies: list[float] = []
    lock = threading.Lock()
    queue = list(requests)
    errors: list[BaseException] = []

    def worker() -> None:
        client = Client(base_url)
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    req = queue.pop()
                _, elapsed = client.get(req)
                with lock:
                    latencies.append(elapsed * 1000)
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return latencies


class RSSMonitor:
    """Samples the resident memory of a server's worker processes in the background.

    The workers are the children of the server's main process (gunicorn's arbiter); their
    peak RSS is tracked per process, and :meth:`peak_mb` is the largest of them.
    """

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self._peaks: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RSSMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def workers(self) -> list[psutil.Process]:
        try:
            return self.root.children(recursive=True)
        except psutil.Error:
            return []

    def sample(self) -> dict[int, int]:
        now: dict[int, int] = {}
        for proc in self.workers():
            try:
                now[proc.pid] = proc.memory_info().rss
            except psutil.Error:
                continue
        with self._lock:
            for pid, rss in now.items():
                self._peaks[pid] = max(rss, self._peaks.get(pid, 0))
        return now

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def current_mb(self) -> float:
        now = self.sample()
        return max(now.values(), default=0) / 2**20

    def reset(self) -> None:
        with self._lock:
            self._peaks.clear()

    def peak_mb(self) -> float:
        self.sample()
        with self._lock:
            return max(self._peaks.values(), default=0) / 2**20
