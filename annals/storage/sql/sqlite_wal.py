"""SQLite write-ahead log checkpoints in a thread of their own, off the writers' path.

In WAL mode every commit appends the pages it changed to the ``-wal`` file; a *checkpoint*
copies them back into the database file and fsyncs it. By default SQLite runs it inside
the commit that crosses the ``wal_autocheckpoint`` size, so one ingest request in five or
so paid for copying and syncing the pages of the previous ones (a batch of 1,000 events
writes ~2,000 pages). Here a writer only *wakes* a checkpointer thread after its commit;
the thread runs a PASSIVE checkpoint on a connection of its own while the next requests are
being parsed and written (SQLite releases the GIL for the copy and the fsync). The WAL
restarts from its beginning at the next write only if a checkpoint has copied all of it by
then; under a continuous load it has not (the next batch commits while the copy runs), so
the log grows until the writers' backstop below checkpoints it inline, about every 20
batches of 1,000 events (commits of ~100 ms instead of ~30; measured in session 13, where
checkpointing after every 1, 2 or 4 commits loaded 100k events equally fast).

While writes keep coming, the thread checkpoints after every CHECKPOINT_EVERY commits, not
after each one: consecutive batches change many of the same pages (the last page of each
user's and each project's index range, of each trait name's values...), and a checkpoint
copies a page once however many commits changed it. When writes pause for PAUSE_SECONDS,
what has been committed is checkpointed at once.

PASSIVE never waits for readers or writers: frames a reader still needs stay in the log
until a later checkpoint. The writers' own ``wal_autocheckpoint`` stays as the backstop
(and is what restarts the log under a continuous load), so if this thread falls behind or
cannot run, the behaviour is SQLite's default one.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading

LOG = logging.getLogger(__name__)

#: While writes keep coming: one checkpoint per this many write commits.
CHECKPOINT_EVERY = 4
#: A pause in writes this long (seconds) checkpoints what has been committed.
PAUSE_SECONDS = 0.2


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on ``path`` after every CHECKPOINT_EVERY
    calls of :meth:`wake` (one per write commit), or after fewer once they stop for
    PAUSE_SECONDS. One thread per process, started by the first wake, so that a read-only
    process never starts one and a forked worker starts its own."""

    def __init__(self, path: str) -> None:
        self.path = path
        #: checkpoints completed by this process (tests and diagnostics)
        self.completed = 0
        self._lock = threading.Lock()
        #: write commits since the last checkpoint began
        self._commits = 0
        self._pid = 0
        self._wanted = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        if self._pid != os.getpid() or self._thread is None:
            with self._lock:
                if self._stop:
                    return
                if self._pid != os.getpid() or self._thread is None:
                    # First wake in this process (a thread started before a fork is gone).
                    self._pid = os.getpid()
                    self._wanted = threading.Event()
                    self._thread = threading.Thread(
                        target=self._run, name="annals-wal-checkpoint", daemon=True
                    )
                    self._thread.start()
        self._commits += 1
        self._wanted.set()

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._stop = True
            thread, mine = self._thread, self._pid == os.getpid()
        self._wanted.set()
        if thread is not None and mine:
            thread.join(timeout)

    def _run(self) -> None:
        wanted = self._wanted
        try:
            conn = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        except sqlite3.Error as exc:
            LOG.warning("no background WAL checkpoints for %s: %s", self.path, exc)
            return
        try:
            while True:
                wanted.wait()
                # More commits may follow at once: wait for CHECKPOINT_EVERY of them, or
                # for a pause.
                while self._commits < CHECKPOINT_EVERY and not self._stop:
                    wanted.clear()
                    if not wanted.wait(PAUSE_SECONDS):
                        break
                wanted.clear()
                if self._stop:
                    return
                self._commits = 0
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.completed += 1
                except sqlite3.Error as exc:
                    # Another process's checkpoint holds the lock, or the disk refused:
                    # the writers' own auto-checkpoint remains.
                    LOG.debug("background WAL checkpoint of %s skipped: %s", self.path, exc)
        finally:
            conn.close()
