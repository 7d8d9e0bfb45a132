"""The strategies by name, with no imports: the CLI builds ``--method`` choices from here without pandas or torch."""

from __future__ import annotations

__all__ = ["METHODS", "DEFAULT_METHOD"]

METHODS = ("population", "tpe", "cmaes", "gp", "random", "nsga2", "gradient")
"""Strategies by name: ``population`` (latent GA, :mod:`~molvae.optimize.population`), optuna
samplers over z (``tpe``, ``cmaes``, ``gp``, ``random``; ``nsga2`` for several objectives,
:mod:`~molvae.optimize.samplers`) and ``gradient`` (surrogate ascent, :mod:`~molvae.optimize.gradient`)."""

DEFAULT_METHOD = "population"
"""Chosen by ``scripts/bench_optimize.py`` (see BENCHMARKS.md)."""
