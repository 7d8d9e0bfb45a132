"""Progress bars that suit where stderr goes: a live bar on a terminal (or in a notebook), and in a log
file one plain line at most every minute instead of a wall of carriage returns."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar"]

LOG_INTERVAL_S = 60.0


class _LineWriter:
    """A file for tqdm that turns each redraw into one line on stderr (repeats are skipped)."""

    def __init__(self) -> None:
        self.last = ""

    def write(self, text: str) -> None:
        line = text.replace("\r", "").replace("\x1b[A", "").strip()
        if line and line != self.last:
            sys.stderr.write(line + "\n")
            self.last = line

    def flush(self) -> None:
        sys.stderr.flush()


def _interactive() -> bool:
    try:
        return sys.stderr.isatty() or "ipykernel" in sys.modules
    except (AttributeError, ValueError):
        return False


def progress_bar(total: float | None = None, *, desc: str | None = None, unit: str = "it",
                 disable: bool = False, **kwargs: Any):
    """A ``tqdm`` bar (same arguments); when stderr is not a terminal it writes one line per minute."""
    from tqdm.auto import tqdm

    if disable or _interactive():
        return tqdm(total=total, desc=desc, unit=unit, disable=disable, **kwargs)
    kwargs.update(file=_LineWriter(), mininterval=LOG_INTERVAL_S, maxinterval=LOG_INTERVAL_S * 2,
                  ascii=True, ncols=100, dynamic_ncols=False, leave=True)
    return tqdm(total=total, desc=desc, unit=unit, **kwargs)
