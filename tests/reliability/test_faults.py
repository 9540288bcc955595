"""Faults while clients work: the API killed, PostgreSQL restarted, slow and vanishing
clients, SIGTERM. After each, every acknowledged event is stored, no batch is half-stored,
and nobody got a 500."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from annals.storage.base import StorageDriver
from tests.conftest import ADMIN
from tests.reliability.conftest import (
    Batches,
    ServeFactory,
    event,
    pg_ctl,
    pg_ready,
    stored_ids,
    wait_for,
)


def unavailable(resp: httpx.Response) -> bool:
    """A clear 503: Panko's error shape, a Server fault, and when to retry."""
    fault = resp.json()["error_message"]
    return (
        resp.status_code == 503
        and fault["faultcode"] == "Server"
        and "Database unavailable" in fault["faultstring"]
        and resp.headers.get("Retry-After", "").isdigit()
    )


@dataclass
class Posting:
    """Clients posting batches until told to stop; what each batch got back."""

    url: str
    batches: Batches
    threads: int = 4
    acked: set[int] = field(default_factory=set)
    attempted: set[int] = field(default_factory=set)
    statuses: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # wrong answers: checked by the test
    stop: threading.Event = field(default_factory=threading.Event)
    _next: Iterator[int] = field(default_factory=lambda: iter(range(1_000_000)))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=15) as http:
            while not self.stop.is_set():
                with self._lock:
                    batch = next(self._next)
                    self.attempted.add(batch)
                try:
                    resp = http.post("/v2/events", json=self.batches.body(batch), headers=ADMIN)
                except httpx.HTTPError as exc:  # the server is gone: no answer, no ack
                    with self._lock:
                        self.failures.append(type(exc).__name__)
                    time.sleep(0.05)
                    continue
                with self._lock:
                    self.statuses.append(resp.status_code)
                    if resp.status_code == 201 and resp.json()["stored"] == self.batches.size:
                        self.acked.add(batch)
                    elif resp.status_code != 503 or not unavailable(resp):
                        self.errors.append(f"{resp.status_code} {resp.text[:300]}")

    def __enter__(self) -> Posting:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for worker in self._workers:
            worker.join(timeout=30)

    def ids_of(self, batches: set[int]) -> set[str]:
        return {mid for batch in batches for mid in self.batches.ids(batch)}


def check_batches_whole(database_url: str, posting: Posting) -> set[int]:
    """Every acknowledged batch is stored, and every batch is stored whole or not at all.
    Returns the batches that are stored."""
    stored = stored_ids(database_url, posting.batches.prefix)
    lost = posting.ids_of(posting.acked) - stored
    assert not lost, f"{len(lost)} acknowledged events lost, e.g. {sorted(lost)[:3]}"
    complete = set()
    for batch in posting.attempted:
        present = set(posting.batches.ids(batch)) & stored
        assert len(present) in (0, posting.batches.size), f"batch {batch} half-stored"
        if present:
            complete.add(batch)
    assert not stored - posting.ids_of(posting.attempted)
    return complete


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.backends("sqlite", "postgresql")
def test_api_killed_while_clients_post_loses_no_acknowledged_batch(
    serve: ServeFactory, driver: StorageDriver
) -> None:
    server = serve({"api": {"workers": 2}})
    posting = Posting(server.url, Batches(size=25))
    with posting:
        wait_for(lambda: len(posting.acked) >= 30, timeout=60, what="30 acknowledged batches")
        server.kill()  # SIGKILL to the master and every worker, mid-stream
        time.sleep(0.5)
    assert posting.failures, "the clients never noticed the server was gone"
    assert not posting.errors, posting.errors
    stored = check_batches_whole(driver.url, posting)
    in_doubt = posting.attempted - posting.acked
    assert in_doubt, "no request was in flight at the kill: the test proved nothing"

    # A new server on the same database; clients retry what was never acknowledged.
    again = serve({"api": {"workers": 2}})
    with httpx.Client(base_url=again.url, timeout=15) as http:
        for batch in sorted(in_doubt):
            resp = http.post("/v2/events", json=posting.batches.body(batch), headers=ADMIN)
            assert resp.status_code == 201, resp.text
            body = resp.json()
            expected = posting.batches.size if batch not in stored else 0
            assert (body["stored"], body["duplicates"]) == (
                expected,
                posting.batches.size - expected,
            )
    everything = stored_ids(driver.url, posting.batches.prefix)
    assert everything == posting.ids_of(posting.attempted)


@dataclass
class Reading:
    """Readers polling the list, the healthcheck and one event until told to stop."""

    url: str
    results: list[tuple[float, str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # wrong answers: checked by the test
    stop: threading.Event = field(default_factory=threading.Event)
    _worker: threading.Thread | None = None

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=15) as http:
            while not self.stop.is_set():
                for path in ("/v2/events?limit=5", "/healthcheck", "/v2/events/seed-1"):
                    resp = http.get(path, headers=ADMIN)
                    self.results.append((time.monotonic(), path, resp.status_code))
                    if resp.status_code == 200:
                        continue
                    if path == "/healthcheck":
                        clear = resp.status_code == 503 and "database unavailable" in resp.text
                    else:
                        clear = unavailable(resp)
                    if not clear:
                        self.errors.append(f"{path}: {resp.status_code} {resp.text[:300]}")
                time.sleep(0.02)

    def __enter__(self) -> Reading:
        self._worker = threading.Thread(target=self._run, daemon=True)
        self._worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self._worker is not None:
            self._worker.join(timeout=30)


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.backends("postgresql")
def test_postgresql_restart_answers_503_then_recovers_without_a_restart(
    serve: ServeFactory, driver: StorageDriver
) -> None:
    server = serve({"api": {"workers": 2}})
    seeded = httpx.post(f"{server.url}/v2/events", json=[event("seed-1")], headers=ADMIN)
    assert seeded.status_code == 201
    posting = Posting(server.url, Batches(size=10), threads=2)
    reading = Reading(server.url)
    with posting, reading:
        wait_for(lambda: len(posting.acked) >= 10, timeout=30, what="writes before the outage")
        try:
            pg_ctl("stop")
            outage_started = time.monotonic()
            wait_for(
                lambda: any(t > outage_started and s == 503 for t, _, s in reading.results),
                timeout=20,
                what="503 answers during the outage",
            )
            time.sleep(1.5)
        finally:
            if not pg_ready():
                pg_ctl("start")
            wait_for(pg_ready, timeout=60, what="PostgreSQL to come back")
        back = time.monotonic()
        acked_before = len(posting.acked)
        wait_for(lambda: len(posting.acked) > acked_before + 10, timeout=30, what="writes after it")
        time.sleep(1)
    assert server.process.poll() is None, "the server died with the database"
    assert not posting.errors and not reading.errors, posting.errors + reading.errors
    statuses = {s for _, _, s in reading.results} | set(posting.statuses)
    assert statuses <= {200, 201, 503}, statuses
    during = [s for t, _, s in reading.results if outage_started < t < back]
    assert 503 in during
    # Recovered: every request that started a second after PostgreSQL was back succeeded.
    late = [(path, s) for t, path, s in reading.results if t > back + 1]
    assert late and all(s == 200 for _, s in late), late
    assert posting.statuses[-5:] == [201] * 5
    check_batches_whole(driver.url, posting)
    log = server.log.read_text()
    assert "Traceback" not in log, log[-3000:]


def _raw_request(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _post_head(length: int) -> bytes:
    return (
        "POST /v2/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in ADMIN.items())
        + f"Content-Length: {length}\r\n\r\n"
    ).encode()


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.backends("sqlite")
def test_slow_and_vanishing_clients_do_not_block_others(
    serve: ServeFactory, driver: StorageDriver
) -> None:
    # One worker, 4 threads: the slow clients below hold two of them.
    server = serve({"api": {"workers": 1}})
    big = [event(f"big-{n}", blob="x" * 400) for n in range(400)]
    assert httpx.post(f"{server.url}/v2/events", json=big, headers=ADMIN).status_code == 201
    body = httpx.Request("POST", "/", json=[event("slow-1"), event("slow-2")]).read()

    # 1. uploads its body a few bytes at a time
    slow_upload = _raw_request(server.url)
    slow_upload.sendall(_post_head(len(body)) + body[:10])
    sent = 10
    # 2. asks for a large answer and does not read it
    slow_reader = _raw_request(server.url)
    slow_reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow_reader.sendall(
        b"GET /v2/events?limit=400 HTTP/1.1\r\nHost: localhost\r\n"
        + b"".join(f"{k}: {v}\r\n".encode() for k, v in ADMIN.items())
        + b"\r\n"
    )
    # 3. announces a body, sends half of it and goes away
    vanishing = _raw_request(server.url)
    whole = httpx.Request("POST", "/", json=[event("gone-1"), event("gone-2")]).read()
    vanishing.sendall(_post_head(len(whole)) + whole[: len(whole) // 2])
    vanishing.close()
    # 4. sends a whole request and hangs up before the answer
    impatient = _raw_request(server.url)
    impatient.sendall(
        b"GET /v2/events?limit=400 HTTP/1.1\r\nHost: localhost\r\n"
        + b"".join(f"{k}: {v}\r\n".encode() for k, v in ADMIN.items())
        + b"\r\n"
    )
    impatient.close()

    timings = []
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for n in range(20):
            started = time.monotonic()
            resp = http.get("/v2/events?limit=5", headers=ADMIN)
            assert resp.status_code == 200, resp.text
            posted = http.post("/v2/events", json=[event(f"fast-{n}")], headers=ADMIN)
            assert posted.status_code == 201
            timings.append(time.monotonic() - started)
            if n % 4 == 0:  # the slow upload keeps trickling meanwhile
                slow_upload.sendall(body[sent : sent + 1])
                sent += 1
    assert max(timings) < 2.0, timings

    slow_upload.sendall(body[sent:])
    answer = slow_upload.recv(65536)
    assert answer.startswith(b"HTTP/1.1 201"), answer[:200]
    slow_upload.close()
    slow_reader.close()
    assert httpx.get(f"{server.url}/healthcheck").status_code == 200
    stored = stored_ids(driver.url, "slow") | stored_ids(driver.url, "gone")
    assert stored == {"slow-1", "slow-2"}  # the half-sent batch stored nothing
    assert server.process.poll() is None
    assert "Traceback" not in server.log.read_text()


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.backends("sqlite")
def test_sigterm_finishes_in_flight_requests_and_exits_within_its_bound(
    serve: ServeFactory, driver: StorageDriver
) -> None:
    grace = 4
    server = serve({"api": {"workers": 2, "graceful_timeout": grace}})
    body = httpx.Request("POST", "/", json=[event("inflight-1"), event("inflight-2")]).read()
    in_flight = _raw_request(server.url)
    in_flight.sendall(_post_head(len(body)) + body[:20])
    stuck = _raw_request(server.url)  # never finishes its request
    stuck.sendall(_post_head(len(body)) + body[:20])
    time.sleep(0.3)

    server.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    time.sleep(0.5)
    # No new connections are taken...
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.url}/healthcheck", timeout=2)
    # ... but the request in flight is served to the end.
    in_flight.sendall(body[20:])
    answer = in_flight.recv(65536)
    assert answer.startswith(b"HTTP/1.1 201"), answer[:300]
    assert stored_ids(driver.url, "inflight") == {"inflight-1", "inflight-2"}

    code = server.process.wait(timeout=grace + 10)
    elapsed = time.monotonic() - signalled
    # The stuck client is given the grace period, no more.
    assert elapsed < grace + 5, elapsed
    assert code == 0
    in_flight.close()
    stuck.close()
    log = server.log.read_text()
    assert "Handling signal: term" in log
