"""Garbage collector settings for Annals' long-running processes.

A batch of 1,000 events is ~60,000 JSON containers (dicts, lists) that stay alive while the
batch is parsed and written. With CPython's default thresholds (700, 10, 10) the collector
ran ~40 young passes, ~4 middle ones and, every few batches, a full pass over the whole
heap, finding nothing to free: on a 2-core machine (in-process ingest of 30,000 events,
``/tmp`` probe, gc.callbacks timing) that was 1.5 s of 7, 50 ms per batch.

:func:`tune` is called once a process has imported and built what it keeps for its whole
life (an API worker after building the application, the consumer and the importer after
opening the database): that heap is moved out of the collector's sight (``gc.freeze``,
which also spares a forked worker copy-on-write of pages the collector would touch) and the
young generation is collected every 50,000 net allocations instead of 700. The collector
still runs; reference cycles are freed a little later, costing a few MB at most.
"""

from __future__ import annotations

import gc

#: Net allocations between young-generation collections (CPython's default: 700).
GEN0_THRESHOLD = 50_000


def tune() -> None:
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, middle, old)
