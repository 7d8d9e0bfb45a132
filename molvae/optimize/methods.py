"""The strategies by name, with no imports: the CLI builds ``--method`` choices from here without pandas or torch."""

from __future__ import annotations

__all__ = ["METHODS", "DEFAULT_METHOD"]

METHODS = ("population", "tpe", "cmaes", "gp", "random", "nsga2", "gradient", "reinvent", "selfies_ga")
"""Strategies by name: ``population`` (latent GA, :mod:`~molvae.optimize.population`), optuna
samplers over z (``tpe``, ``cmaes``, ``gp``, ``random``; ``nsga2`` for several objectives,
:mod:`~molvae.optimize.samplers`), ``gradient`` (surrogate ascent, :mod:`~molvae.optimize.gradient`),
``reinvent`` (decoder fine-tuning on the oracle's answers: REINVENT with Augmented Memory's replay
and SELFIES augmentation, a scaffold diversity filter and optional GA offspring,
:mod:`~molvae.optimize.reinvent`) and ``selfies_ga`` (GA on SELFIES token strings and latent codes,
:mod:`~molvae.optimize.genetic`)."""

DEFAULT_METHOD = "population"
"""Chosen by ``scripts/bench_optimize.py`` (see BENCHMARKS.md)."""
