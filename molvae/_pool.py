"""Process pools for the CPU-bound RDKit/SELFIES work: one start-method policy, one ordered map.

Start method: ``fork`` on Linux (fast, and works from unguarded scripts and notebooks: the workers
run only RDKit, SELFIES and numpy, never threads of the parent), ``spawn`` elsewhere (fork is unsafe
on macOS). The one exception is :mod:`molvae.generate`, which post-processes decoded molecules
*while the parent keeps decoding on the device*: once the parent holds a CUDA context, a fork may not
inherit it safely, so the decoder then asks for ``forkserver`` (children start from a clean server
process; a script without a main guard is imported again there). Every other pool in molvae runs
while torch is idle.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Sequence

__all__ = ["pool_context", "process_pool", "parallel_map"]


def pool_context(method: str | None = None) -> Any:
    """The multiprocessing context: ``method`` if given, else fork on Linux and spawn elsewhere."""
    return mp.get_context(method or ("fork" if sys.platform.startswith("linux") else "spawn"))


def process_pool(workers: int, method: str | None = None, initializer: Callable | None = None,
                 initargs: tuple = ()) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes under :func:`pool_context`'s policy."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=pool_context(method), initializer=initializer,
                               initargs=initargs)


def parallel_map(fn: Callable, tasks: Sequence, workers: int, sizes: Sequence[int] | None = None,
                 bar: Any = None) -> list:
    """``[fn(t) for t in tasks]`` in input order, over ``workers`` processes (in this process for one
    worker or one task); ``bar.update(sizes[i])`` after each task when a progress bar is given."""
    results = []

    def done(i: int, result: Any) -> None:
        results.append(result)
        if bar is not None and sizes is not None:
            bar.update(sizes[i])

    if workers <= 1 or len(tasks) <= 1:
        for i, t in enumerate(tasks):
            done(i, fn(t))
        return results
    with process_pool(min(workers, len(tasks))) as ex:
        for i, res in enumerate(ex.map(fn, tasks)):  # map keeps input order
            done(i, res)
    return results
