"""The database's disk fills up, or the database turns read-only, while ``annals serve`` runs:
writes get a clear 503, nothing half-stored; reads go on; writes resume, without a restart,
once the space is back or the database writable again.

A full disk is real: the database lives on a small tmpfs (SQLite: its file; PostgreSQL: a
tablespace holding a database of its own; WAL stays on the cluster's disk), filled up by a
filler file that is removed to give the space back.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from annals.storage import get_driver
from annals.storage.sql.driver import normalise_url
from tests.conftest import ADMIN, IN_CI, PG_URL
from tests.reliability.conftest import Batches, ServeFactory, Server, stored_ids


def _unavailable(why: str) -> None:
    if IN_CI:
        pytest.fail(f"{why} (CI=true: a missing facility is a failure, not a skip)")
    pytest.skip(why)


@contextlib.contextmanager
def tmpfs(size_kb: int, owner: str | None = None) -> Iterator[Path]:
    """A tmpfs of ``size_kb`` KiB (root only), in a directory every user can reach (the
    postgres user included), unmounted and removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="annals-fs-"))
    base.chmod(0o755)
    path = base / "fs"
    path.mkdir()
    options = f"size={size_kb}k,mode=0700"
    if owner is not None:
        user = pwd.getpwnam(owner)
        options += f",uid={user.pw_uid},gid={user.pw_gid}"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        if mounted.returncode != 0:
            _unavailable(f"cannot mount a tmpfs to fill up: {mounted.stderr.strip()}")
        yield path
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", "--lazy", str(path)], check=False, capture_output=True)
        path.rmdir()
        base.rmdir()


def fill(fs: Path, leave_kb: int) -> Path:
    """Take all the space of ``fs`` but ``leave_kb`` KiB with a file; returns the file."""
    stat = os.statvfs(fs)
    free = stat.f_bavail * stat.f_frsize
    filler = fs / "filler"
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, free - leave_kb * 1024))
    return filler


def post_until_refused(
    server: Server, batches: Batches, limit: int = 400, start: int = 0
) -> tuple[set[int], int]:
    """Post new batches (``start``, ``start + 1``...) until one is refused; every answer must
    be a 201 or a clear 503. Returns the acknowledged batches and the refused one."""
    acked: set[int] = set()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for batch in range(start, start + limit):
            resp = http.post("/v2/events", json=batches.body(batch), headers=ADMIN)
            if resp.status_code == 201:
                assert resp.json()["stored"] == batches.size
                acked.add(batch)
                continue
            assert resp.status_code == 503, resp.text
            fault = resp.json()["error_message"]
            assert fault["faultcode"] == "Server"
            assert fault["faultstring"].startswith("Database refused the write"), fault
            assert resp.headers["Retry-After"].isdigit()
            return acked, batch
    raise AssertionError(f"{limit} batches went in: the database never refused a write")


def reads_go_on(server: Server, batches: Batches, acked: set[int]) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/healthcheck").status_code == 200
        listed = http.get("/v2/events", params={"limit": 5}, headers=ADMIN)
        assert listed.status_code == 200 and len(listed.json()) == 5
        first = batches.ids(min(acked))[0]
        assert http.get(f"/v2/events/{first}", headers=ADMIN).status_code == 200
        assert http.get("/v2/event_types", headers=ADMIN).json() == ["reliability.test"]


def writes_resume(server: Server, batches: Batches, refused: int) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        resp = http.post("/v2/events", json=batches.body(refused), headers=ADMIN)
        assert resp.status_code == 201, resp.text
        assert resp.json()["stored"] == batches.size  # nothing of it had been kept


def check_stored(url: str, batches: Batches, acked: set[int], refused: int) -> None:
    stored = stored_ids(url, batches.prefix)
    expected = {mid for batch in acked | {refused} for mid in batches.ids(batch)}
    assert stored == expected


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.backends("sqlite")
def test_sqlite_disk_full(serve: ServeFactory) -> None:
    with tmpfs(size_kb=4096) as fs:
        url = f"sqlite:///{fs / 'annals.sqlite'}"
        server = serve(url=url)
        batches = Batches(size=20)
        filler = fill(fs, leave_kb=256)
        acked, refused = post_until_refused(server, batches)
        assert len(acked) > 3
        reads_go_on(server, batches, acked)
        filler.unlink()
        writes_resume(server, batches, refused)
        check_stored(url, batches, acked, refused)
        assert server.stop() == 0
        assert "Traceback" not in server.log.read_text()


@contextlib.contextmanager
def pg_database(tablespace_dir: Path | None = None) -> Iterator[str]:
    """A PostgreSQL database of its own (in a tablespace at ``tablespace_dir`` if given),
    with the Annals schema; dropped afterwards, its sessions ended."""
    name = f"annals_fault_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(
        normalise_url(PG_URL), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )
    try:
        with admin.connect() as conn:
            if tablespace_dir is not None:
                conn.exec_driver_sql(f"CREATE TABLESPACE {name} LOCATION '{tablespace_dir}'")
                conn.exec_driver_sql(f"CREATE DATABASE {name} TABLESPACE {name}")
            else:
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError as exc:
        _unavailable(f"postgresql unavailable: {exc.orig}")
    url = sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        driver = get_driver(url)
        try:
            driver.upgrade()
        finally:
            driver.close()
        with admin.connect() as conn:
            # The new database's pages reach its files now, not when a reader has to evict
            # them: on a full disk that write fails, and takes the read down with it.
            conn.exec_driver_sql("CHECKPOINT")
        yield url
    finally:
        drop = [f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"]
        if tablespace_dir is not None:
            drop.append(f"DROP TABLESPACE IF EXISTS {name}")
        for attempt in range(5):  # the shared cluster may be restarting (other tests)
            try:
                with admin.connect() as conn:
                    for statement in drop:
                        conn.exec_driver_sql(statement)
                break
            except sa.exc.OperationalError:
                if attempt == 4:
                    raise
                time.sleep(2)
        admin.dispose()


def end_sessions(database: str) -> None:
    """Terminate the sessions on ``database`` (the server's pool reconnects)."""
    admin = sa.create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": database},
            )
    finally:
        admin.dispose()


def alter_database(database: str, setting: str) -> None:
    admin = sa.create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"ALTER DATABASE {database} {setting}")
    finally:
        admin.dispose()


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.backends("postgresql")
def test_postgresql_disk_full(serve: ServeFactory) -> None:
    # A fresh database copies template1 (about 8 MB) into the tablespace first.
    with tmpfs(size_kb=24 * 1024, owner="postgres") as fs, pg_database(tablespace_dir=fs) as url:
        server = serve(url=url)
        batches = Batches(size=20)
        filler = fill(fs, leave_kb=512)
        try:
            acked, refused = post_until_refused(server, batches)
            assert len(acked) > 3
            reads_go_on(server, batches, acked)
        finally:
            filler.unlink()
        writes_resume(server, batches, refused)
        check_stored(url, batches, acked, refused)
        log = server.log.read_text()
        assert "No space left on device" in log
        assert server.stop() == 0
        assert "Traceback" not in log


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.backends("postgresql")
def test_postgresql_read_only(serve: ServeFactory) -> None:
    with pg_database() as url:
        database = sa.make_url(url).database
        assert database is not None
        server = serve(url=url)
        batches = Batches(size=10)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for batch in range(3):
                resp = http.post("/v2/events", json=batches.body(batch), headers=ADMIN)
                assert resp.status_code == 201
        try:
            alter_database(database, "SET default_transaction_read_only = on")
            end_sessions(database)
            acked, refused = post_until_refused(server, batches, limit=1, start=3)
            assert not acked
            with httpx.Client(base_url=server.url, timeout=30) as http:
                for _ in range(4):  # whichever worker and pooled connection serve it
                    resp = http.post("/v2/events", json=batches.body(refused), headers=ADMIN)
                    fault = resp.json().get("error_message", resp.json())
                    assert "read-only transaction" in fault["faultstring"], (
                        resp.status_code,
                        fault,
                    )
            reads_go_on(server, batches, {0, 1, 2})
        finally:
            alter_database(database, "RESET default_transaction_read_only")
            end_sessions(database)
        writes_resume(server, batches, refused)
        check_stored(url, batches, {0, 1, 2}, refused)
        assert server.stop() == 0
        assert "Traceback" not in server.log.read_text()
