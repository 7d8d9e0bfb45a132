"""Objectives computed by an external program (``exec:CMD``), REINVENT 4's "external process" convention.

The program reads SMILES on stdin, one per line, and writes one score per line on stdout, in the
same order (``nan`` for a molecule it cannot score). It is run once per batch of molecules, without a
shell (``CMD`` is split like a shell command line; write ``exec:bash -c '...'`` for pipes).

A batch that cannot be trusted is an error, never a score: a program that exits non-zero, runs past
its timeout (it is killed with its process group), prints the wrong number of lines or a line that is
not a number raises :class:`ProgramError`. The budgeted oracle reserves a batch's calls before scoring
it, so the batch stays in the study unscored and ``--resume`` scores it again without a second charge.
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import signal
import subprocess
from typing import Sequence

from molvae.errors import ObjectiveError

__all__ = ["Program", "ProgramError", "DEFAULT_TIMEOUT", "check_timeout"]

DEFAULT_TIMEOUT = 600.0
"""Seconds a program may take for one batch unless ``--oracle-timeout`` says otherwise."""


class ProgramError(ObjectiveError):
    """The external program failed on a batch (crash, timeout, wrong output); the batch is not scored."""


class Program:
    """An external scoring program, run on a batch at a time (see the module docstring); ``exec:CMD``
    objectives (:func:`molvae.objectives.get_objective`) wrap one."""

    def __init__(self, command: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise ObjectiveError(f"exec objective {command!r}: cannot split the command line: {exc}") from None
        if not argv:
            raise ObjectiveError("exec objective needs a command: exec:CMD")
        if shutil.which(argv[0]) is None:
            raise ObjectiveError(f"exec objective {command!r}: program {argv[0]!r} not found or not executable")
        self.command, self.argv, self.timeout = command, argv, check_timeout(timeout)

    def __call__(self, smiles: Sequence[str]) -> list[tuple[float | None, str | None]]:
        """``(score, reason)`` per molecule, in order; ``reason`` says why a score is missing.

        :raises ProgramError: the program crashed, hung or printed something other than one number per line.
        """
        if not smiles:
            return []
        out = self._run("".join(f"{s}\n" for s in smiles), len(smiles))
        lines = out.splitlines()
        if len(lines) != len(smiles):
            raise self._error(f"printed {len(lines)} score lines for a batch of {len(smiles)} molecules")
        return [self._parse(line, i + 1, len(smiles)) for i, line in enumerate(lines)]

    def _parse(self, line: str, number: int, n: int) -> tuple[float | None, str | None]:
        try:
            value = float(line.strip())
        except ValueError:
            raise self._error(f"line {number} of its output for a batch of {n} molecules is {line[:60]!r}, "
                              "not a number (or nan)") from None
        if not math.isfinite(value):
            return None, f"the program gave {line.strip()}"
        return value, None

    def _run(self, stdin: str, n: int) -> str:
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, start_new_session=True)
        except OSError as exc:
            raise self._error(f"cannot start: {exc.strerror or exc}") from None
        try:
            out, err = proc.communicate(stdin, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise self._error(f"did not finish a batch of {n} molecules within {self.timeout:g} s "
                              "(--oracle-timeout)") from None
        if proc.returncode != 0:
            last = next((line.strip() for line in reversed(err.splitlines()) if line.strip()), "")
            said = f": {last[:200]}" if last else ""
            raise self._error(f"exited with status {proc.returncode} on a batch of {n} molecules{said}")
        return out

    def _error(self, what: str) -> ProgramError:
        return ProgramError(f"exec objective {self.command!r} {what}; the batch was not scored "
                            "(it stays in the study: --resume scores it again without a new charge)")

    def __reduce__(self):
        return (Program, (self.command, self.timeout))


def check_timeout(timeout: object) -> float:
    """``timeout`` as seconds, checked. :raises ObjectiveError: not a positive finite number."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0 \
            or not math.isfinite(timeout):
        raise ObjectiveError(f"oracle timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill a timed-out program and anything it started (it runs in its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        proc.kill()
    proc.communicate()
