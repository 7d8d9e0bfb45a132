"""Where the metrics' work runs: worker processes (under :mod:`molvae._pool`'s start-method policy), the
big read-only arrays they share, per-process caches, chunking, and the device and job counts.

Worker tasks are top-level functions of the metrics submodules, so worker processes can import them.
They read the shared arrays as ``_runner._SHARED`` (an attribute look-up, not a name imported once:
:class:`_Runner` and the pool initializer rebind it).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

POOL_MIN = 2000  # below this many molecules a worker pool costs more than it saves

_SHARED: dict[str, Any] = {}  # big read-only arrays handed to workers (fork: inherited; spawn: pickled once)
_CACHE: dict[str, Any] = {}  # per-process lazily built helpers (fingerprint generators, filters, ChemNet)


def _init_worker(shared: dict[str, Any]) -> None:
    """Pool initializer: one torch thread per process (processes are the parallelism), quiet RDKit."""
    global _SHARED
    _SHARED = shared
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")


def _n_jobs(n_jobs: int | None) -> int:
    if n_jobs is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            return max(1, os.cpu_count() or 1)
    return max(1, int(n_jobs))


def _device(device: str) -> str:
    """:func:`molvae.device.resolve_device` as the string the metrics pass around (``cpu``, ``cuda``, ...)."""
    from molvae.device import resolve_device  # imports torch: not at ``import molvae.metrics``

    return str(resolve_device(device))


class _Runner:
    """Runs worker tasks in order, in-process for small jobs or over ``n_jobs`` processes.

    The pool is :func:`molvae._pool.process_pool` (fork on Linux, spawn elsewhere), started on the
    first parallel map and kept until the ``with`` block ends. Each worker runs torch on one thread:
    the processes are the parallelism.
    """

    def __init__(self, n_jobs: int, shared: dict[str, Any] | None = None):
        self.n_jobs = n_jobs
        self.shared = shared or {}
        self._pool = None

    def __enter__(self) -> "_Runner":
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def map(self, fn: Callable, tasks: list, sizes: list[int] | None = None, parallel: bool = True,
            bar: Any = None) -> list:
        results = []
        if not parallel or self.n_jobs == 1 or len(tasks) <= 1:
            global _SHARED
            saved, _SHARED = _SHARED, self.shared
            try:
                for k, t in enumerate(tasks):
                    results.append(fn(t))
                    if bar is not None and sizes is not None:
                        bar.update(sizes[k])
            finally:
                _SHARED = saved
            return results
        if self._pool is None:
            from molvae._pool import process_pool

            self._pool = process_pool(self.n_jobs, initializer=_init_worker, initargs=(self.shared,))
        for k, res in enumerate(self._pool.map(fn, tasks)):
            results.append(res)
            if bar is not None and sizes is not None:
                bar.update(sizes[k])
        return results


def _chunks(n: int, n_jobs: int, lo: int = 64, hi: int = 2000) -> list[tuple[int, int]]:
    size = max(lo, min(hi, -(-n // max(1, n_jobs * 8))))
    return [(i, min(n, i + size)) for i in range(0, n, size)]


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
