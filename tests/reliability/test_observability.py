"""Metrics (GET /metrics) and the access log: what they count and say, in one process and
across gunicorn workers; no secret ever reaches the log."""

from __future__ import annotations

import base64
import functools
import logging
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from annals import config
from annals.api.logging import ACCESS_LOG, RequestIdFilter, caller_of
from annals.api.metrics import MULTIPROC_ENV
from annals.policy import SYSTEM_ALL, Credentials
from annals.storage import get_driver
from annals.storage.base import StorageDriver
from tests.conftest import ADMIN, MEMBER_A, wsgi_client
from tests.reliability.conftest import Batches, ServeFactory, Server, event, wait_for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: httpx.Client | str) -> Samples:
    resp = client.get("/metrics") if isinstance(client, httpx.Client) else httpx.get(client)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and wanted <= got)


@pytest.fixture
def single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The application's own metrics, as under a WSGI server without the shared directory."""
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)


@pytest.mark.db
@pytest.mark.backends("sqlite")
def test_metrics_count_requests_events_and_storage_errors(
    single_process: None,
    make_client: Callable[..., httpx.Client],
    conf_factory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    client = make_client({"api": {"max_request_body_size": 4096}})
    batch = Batches(size=3)
    assert client.post("/v2/events", json=batch.body(0), headers=ADMIN).status_code == 201
    # one new, two duplicates
    again = [*batch.body(0)[:2], event(f"{batch.prefix}-new")]
    assert client.post("/v2/events", json=again, headers=ADMIN).json()["stored"] == 1
    bad = [event("ok-1"), {"message_id": "no-type"}]
    assert client.post("/v2/events", json=bad, headers=ADMIN).status_code == 400
    assert client.post("/v2/events", content=b"{nope", headers={**ADMIN}).status_code == 415
    big = [event(f"big-{n}", filler="x" * 400) for n in range(20)]
    assert client.post("/v2/events", json=big, headers=ADMIN).status_code == 413
    for message_id in ("a", "b", "c"):
        client.get(f"/v2/events/{message_id}", headers=ADMIN)
    client.get("/no/such/path")
    client.request("BREW", "/v2/events")
    samples = scrape(client)

    requests = "annals_http_requests_total"
    assert value(samples, requests, method="POST", route="/v2/events", status="201") == 2
    assert value(samples, requests, method="POST", route="/v2/events", status="400") == 1
    assert value(samples, requests, method="POST", route="/v2/events", status="415") == 1
    assert value(samples, requests, method="POST", route="/v2/events", status="413") == 1
    # Paths are never labels: three ids, one route template.
    assert (
        value(samples, requests, method="GET", route="/v2/events/{message_id}", status="404") == 3
    )
    assert value(samples, requests, method="GET", route="unmatched", status="404") == 1
    # An unknown method is one label value, whatever its name (Falcon answers 400).
    assert value(samples, requests, method="other", route="/v2/events", status="400") == 1
    latency = "annals_http_request_duration_seconds_count"
    assert value(samples, latency, method="POST", route="/v2/events") == 5
    assert value(samples, "annals_events_ingested_total") == 4
    assert value(samples, "annals_events_duplicates_total") == 2
    # The 400 batch carried 2 events; the 415 and 413 bodies were not read as events.
    assert value(samples, "annals_events_rejected_total") == 2
    assert value(samples, "annals_event_batches_rejected_total") == 3
    assert value(samples, "annals_http_requests_in_progress") == 1  # this scrape

    down_url = f"sqlite:///{tmp_path / 'missing' / 'annals.sqlite'}"
    down = get_driver(down_url)
    try:
        conf = config.load([str(conf_factory({"database": {"connection": down_url}}))])
        with wsgi_client(conf, down) as broken:
            assert broken.get("/v2/events", headers=ADMIN).status_code == 503
            assert broken.post("/v2/events", json=[event("z")], headers=ADMIN).status_code == 503
            assert broken.get("/healthcheck").status_code == 503
            failed = scrape(broken)
    finally:
        down.close()
    errors = "annals_storage_errors_total"
    assert value(failed, errors, operation="get_events", kind="unavailable") == 1
    assert value(failed, errors, operation="record_events", kind="unavailable") == 1
    assert value(failed, errors, operation="ping", kind="unavailable") == 1
    assert value(failed, "annals_events_ingested_total") == 0


def replaced(server: Server, gone: int, workers: int) -> bool:
    pids = server.worker_pids()
    return gone not in pids and len(pids) == workers


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.backends("sqlite")
def test_metrics_add_up_across_workers_and_survive_a_dead_worker(
    serve: ServeFactory, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale values of a previous run")
    server = serve({"api": {"metrics_dir": metrics_dir, "workers": 3}})
    assert not (metrics_dir / "counter_999999.db").exists(), "stale files are removed at start"
    batches = Batches(size=5)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for n in range(30):
            # A new connection each time: the requests spread over the workers.
            resp = httpx.post(f"{server.url}/v2/events", json=batches.body(n), headers=ADMIN)
            assert resp.status_code == 201
        pids = {int(p.name.split("_")[-1].split(".")[0]) for p in metrics_dir.glob("*.db")}
        assert len(pids & set(server.worker_pids())) >= 2, "requests reached several workers"
        before = scrape(http)
        assert value(before, "annals_events_ingested_total") == 150
        assert total(before, "annals_http_requests_total", method="POST", status="201") == 30

        # A worker that ends gracefully (SIGTERM, as after max_requests) and one that is
        # killed: gunicorn replaces both, and the replacements share the same directory.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            victim = server.worker_pids()[0]
            os.kill(victim, sig)
            wait_for(
                functools.partial(replaced, server, victim, 3),
                timeout=30,
                what=f"gunicorn to replace the worker ended by {sig.name}",
            )
        for _ in range(6):  # new connections: every worker answers a scrape
            after = scrape(f"{server.url}/metrics")
            assert value(after, "annals_events_ingested_total") == 150
    # Counters of the dead workers are kept (no counter goes backwards)...
    assert total(after, "annals_http_requests_total", method="POST", status="201") == 30
    # ... its live gauge is dropped (only this scrape is in progress).
    assert value(after, "annals_http_requests_in_progress") == 1
    assert server.stop() == 0
    assert not list(metrics_dir.glob("*.db")), "a configured directory is emptied at exit"


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.backends("sqlite")
def test_temporary_metrics_directory_is_removed_at_exit(serve: ServeFactory) -> None:
    server = serve()
    assert httpx.get(f"{server.url}/metrics").status_code == 200
    # The workers map their metric files: that is where the directory shows.
    maps = Path(f"/proc/{server.worker_pids()[0]}/maps").read_text().split()
    files = [Path(word) for word in maps if "/annals-metrics-" in word and word.endswith(".db")]
    assert files, maps
    shared = files[0].parent
    assert shared.is_dir()
    assert server.stop() == 0
    assert not shared.exists()


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.backends("sqlite")
def test_access_log_one_line_per_request_without_secrets(serve: ServeFactory) -> None:
    publisher_password = "pub-password-do-not-log"
    token = "gAAAAA-keystone-token-do-not-log"
    server = serve({"api": {"publisher_credentials": f"ceilometer:{publisher_password}"}})
    basic = base64.b64encode(f"ceilometer:{publisher_password}".encode()).decode()
    wrong = base64.b64encode(b"ceilometer:wrong-password-do-not-log").decode()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        answers = [
            http.post(
                "/v2/events",
                json=[event("logged-1")],
                headers={"Authorization": f"Basic {basic}"},
            ),
            http.post("/v2/events", json=[], headers={"Authorization": f"Basic {wrong}"}),
            http.get("/v2/events/logged-1", headers={**ADMIN, "X-Auth-Token": token}),
            http.get("/v2/event_types", headers=MEMBER_A),
            http.get("/v2/events/line%0Abreak", headers=ADMIN),
        ]
    assert [a.status_code for a in answers] == [201, 401, 200, 401, 404]
    wait_for(
        lambda: server.log.read_text().count("annals.access") > len(answers),
        timeout=10,
        what="the access lines",
    )
    log = server.log.read_text()
    for secret in (publisher_password, token, basic, wrong, "wrong-password-do-not-log"):
        assert secret not in log
    lines = [
        line
        for line in log.splitlines()
        if " annals.access: " in line and "path=/healthcheck" not in line  # serve's probe
    ]
    assert len(lines) == len(answers)
    expected = [
        ("POST", "/v2/events", "201", "caller=publisher:ceilometer"),
        ("POST", "/v2/events", "401", "caller=-"),
        ("GET", "/v2/events/{message_id}", "200", "caller=user:admin-user/project:project-admin"),
        ("GET", "/v2/event_types", "401", "caller=user:user-a/project:project-a"),
        ("GET", "/v2/events/{message_id}", "404", "caller=user:admin-user/project:project-admin"),
    ]
    for line, answer, (method, route, status, caller) in zip(lines, answers, expected, strict=True):
        assert f"request_id={answer.headers['x-openstack-request-id']} " in line
        assert f" method={method} " in line
        assert f" route={route} " in line
        assert f" status={status} " in line
        assert f" {caller} " in line
        duration = float(line.split(" duration_ms=")[1].split()[0])
        assert 0 < duration < 10_000
    # A path with a line feed cannot forge a second log line.
    assert 'path="/v2/events/line\\nbreak"' in lines[-1]


@pytest.fixture
def captured_access(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestIdFilter())
    yield caplog
    caplog.handler.filters.clear()


@pytest.mark.db
@pytest.mark.backends("sqlite")
def test_errors_are_logged_with_their_request_id(
    captured_access: pytest.LogCaptureFixture,
    conf_factory: Callable[..., Path],
    tmp_path: Path,
    driver: StorageDriver,
) -> None:
    down_url = f"sqlite:///{tmp_path / 'missing' / 'annals.sqlite'}"
    down = get_driver(down_url)
    try:
        conf = config.load([str(conf_factory({"database": {"connection": down_url}}))])
        with wsgi_client(conf, down) as broken:
            resp = broken.get("/v2/events", headers=ADMIN)
    finally:
        down.close()
    assert resp.status_code == 503
    request_id = resp.headers["x-openstack-request-id"]
    errors = [r for r in captured_access.records if r.levelno >= logging.ERROR]
    assert errors, captured_access.text
    assert all(getattr(r, "request_context", None) == f" [{request_id}]" for r in errors)
    assert "Database unavailable" in errors[0].getMessage()
    access = [r for r in captured_access.records if r.name == ACCESS_LOG.name]
    assert len(access) == 1
    assert access[0].levelno == logging.WARNING  # 5xx access lines stand out
    assert f"request_id={request_id}" in access[0].getMessage()
    assert access[0].request_context == ""  # type: ignore[attr-defined]


def test_caller_names_identity_never_credentials() -> None:
    assert caller_of(None) == "-"
    assert caller_of(Credentials()) == "anonymous"
    assert caller_of(Credentials(user_id="ceilo", is_publisher=True)) == "publisher:ceilo"
    assert caller_of(Credentials(user_id="u", project_id="p", roles=("admin",))) == (
        "user:u/project:p"
    )
    assert caller_of(Credentials(user_id="u", system_scope=SYSTEM_ALL)) == "user:u/system:all"
    assert caller_of(Credentials(user_id="u", domain_id="d")) == "user:u/domain:d"
    assert caller_of(Credentials(user_id="a b\nc")) == 'user:"a b\\nc"'


@pytest.mark.db
@pytest.mark.backends("sqlite")
def test_a_streamed_page_is_timed_and_logged_when_the_server_closes_it(
    single_process: None,
    driver: StorageDriver,
    conf_factory: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Large pages are rendered while they are sent: the access line, the latency and the
    in-progress gauge must cover the sending, i.e. end at the WSGI close(), once."""
    import io
    from wsgiref.util import setup_testing_defaults

    from annals.api.app import create_app
    from annals.ingest.events import parse_batch

    driver.record_events(parse_batch([event(f"page-{n:04d}") for n in range(600)]))
    conf = config.load([str(conf_factory({"database": {"connection": driver.url}}))])
    app = create_app(conf, driver)
    environ: dict[str, object] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/v2/events",
        "QUERY_STRING": "limit=600",
        "wsgi.input": io.BytesIO(b""),
    }
    environ.update({f"HTTP_{k.upper().replace('-', '_')}": v for k, v in ADMIN.items()})
    setup_testing_defaults(environ)
    started: list[str] = []
    caplog.set_level(logging.INFO, logger=ACCESS_LOG.name)

    def access_lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == ACCESS_LOG.name]

    body = app(environ, lambda status, headers, exc_info=None: started.append(status))
    assert started == ["200 OK"]
    assert not hasattr(body, "read")  # streamed, not one buffer
    chunks = []
    for chunk in body:
        chunks.append(chunk)
        assert access_lines() == []  # still being sent
    assert len(chunks) > 1
    assert access_lines() == []
    body.close()  # what the WSGI server does when the response is over
    [line] = access_lines()
    assert " route=/v2/events status=200 " in line
    assert len(orjson.loads(b"".join(chunks))) == 600
    same_app = httpx.WSGITransport(app=app)
    with httpx.Client(transport=same_app, base_url="http://localhost") as client:
        samples = scrape(client)
    latency = "annals_http_request_duration_seconds_count"
    assert value(samples, latency, method="GET", route="/v2/events") == 1
    assert value(samples, "annals_http_requests_in_progress") == 1  # this scrape
