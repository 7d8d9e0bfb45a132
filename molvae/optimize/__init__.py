"""Latent-space optimization under an oracle budget, on one machine or many.

    >>> from molvae.optimize import optimize
    >>> result = optimize("runs/zinc", "qed", budget=1000, out="runs/qed")
    >>> result.best(10)                     # every scored molecule is in result.df, in call order

Modules: :mod:`~molvae.optimize.oracle` (the budgeted, cached, logged oracle shared through the
study's database), :mod:`~molvae.optimize.storage` (storage URLs), :mod:`~molvae.optimize.latent`
(prior bounds, encoding and decoding), :mod:`~molvae.optimize.base` (points -> scored molecules),
one module per strategy (:mod:`~molvae.optimize.population`, :mod:`~molvae.optimize.samplers`,
:mod:`~molvae.optimize.gradient`), :mod:`~molvae.optimize.plots`, :mod:`~molvae.optimize.result`
(``OptimizationResult``), :mod:`~molvae.optimize.runner` (``optimize``), :mod:`~molvae.optimize.asktell`
(``AskTellStudy``: batches scored in a lab or a queue) and :mod:`~molvae.optimize.runfile` (TOML run
files); :mod:`~molvae.optimize.methods` names the strategies. Heavy modules load on first use, so the CLI's help stays quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["optimize", "OptimizationResult", "Oracle", "Answer", "StorageError", "AskTellStudy", "read_run_file",
           "METHODS", "DEFAULT_METHOD"]

from molvae.optimize.methods import DEFAULT_METHOD, METHODS

if TYPE_CHECKING:  # pragma: no cover
    from molvae.optimize.oracle import Answer, Oracle
    from molvae.optimize.result import OptimizationResult
    from molvae.optimize.asktell import AskTellStudy
    from molvae.optimize.runfile import read_run_file
    from molvae.optimize.runner import optimize
    from molvae.optimize.storage import StorageError

_LAZY = {"optimize": "runner", "OptimizationResult": "result", "Oracle": "oracle", "Answer": "oracle",
         "StorageError": "storage", "AskTellStudy": "asktell", "read_run_file": "runfile"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"molvae.optimize.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'molvae.optimize' has no attribute {name!r}")
