"""One small thread pool per process for the store's GIL-free work (packing, compression).

pcodec and the compiled curve packer release the GIL, so a batch's work split over the pool
runs on every core. A forked child starts its own pool: the parent's threads do not exist
there and its lock may be held.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: Threads of the pool (and parts a batch's work is cut into).
THREADS = max(1, min(4, os.cpu_count() or 1))
_POOL: list[ThreadPoolExecutor] = []
_LOCK = threading.Lock()


def _forget_pool() -> None:
    global _LOCK
    _POOL.clear()
    _LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def pool() -> ThreadPoolExecutor:
    """The process's pool, started on first use."""
    with _LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(THREADS, thread_name_prefix="store-encode"))
        return _POOL[0]


def started() -> bool:
    """Whether this process has started its pool."""
    return bool(_POOL)


def even_cuts(cumulative: np.ndarray, parts: int) -> list[int]:
    """Bounds ``[0, ..., n]`` cutting n items into at most ``parts`` runs of about equal size.

    ``cumulative`` is the running total of the items' sizes; runs are never empty.
    """
    targets = cumulative[-1] * np.arange(1, parts) / parts
    inner = (int(c) + 1 for c in np.searchsorted(cumulative, targets))
    return sorted({0, len(cumulative), *(c for c in inner if 0 < c < len(cumulative))})
