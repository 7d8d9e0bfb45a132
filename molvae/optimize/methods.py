"""The strategies by name, with no imports: the CLI builds ``--method`` choices from here without pandas or torch."""

from __future__ import annotations

__all__ = ["METHODS", "DEFAULT_METHOD"]

METHODS = ("population", "tpe", "cmaes", "gp", "random", "nsga2", "gradient", "reinvent", "selfies_ga", "graph_ga",
           "screened_ga")
"""Strategies by name: ``population`` (latent GA, :mod:`~molvae.optimize.population`), optuna
samplers over z (``tpe``, ``cmaes``, ``gp``, ``random``; ``nsga2`` for several objectives,
:mod:`~molvae.optimize.samplers`), ``gradient`` (surrogate ascent, :mod:`~molvae.optimize.gradient`),
``reinvent`` (decoder fine-tuning on the oracle's answers: REINVENT with Augmented Memory's replay
and SELFIES augmentation, a scaffold diversity filter and optional GA offspring,
:mod:`~molvae.optimize.reinvent`) and ``selfies_ga`` (GA on SELFIES token strings, molecular graphs
(Graph GA's moves) and latent codes, :mod:`~molvae.optimize.genetic`); ``graph_ga`` is that GA with
three quarters Graph GA moves and a quarter latent moves; ``screened_ga`` is ``graph_ga`` breeding
four children per oracle call and scoring the quarter a Tanimoto GP on the scores so far rates best
(:mod:`~molvae.optimize.surrogate`)."""

DEFAULT_METHOD = "screened_ga"
"""Chosen by ``scripts/bench_optimize.py`` (see BENCHMARKS.md)."""
