"""Objectives to maximize, constraints on candidates, and the PMO AUC metric.

    >>> from molvae.objectives import get_objective, parse_constraint
    >>> get_objective("celecoxib_rediscovery")("CC1=CC=C(C=C1)C1=CC(=NN1C1=CC=C(C=C1)S(N)(=O)=O)C(F)(F)F")
    1.0
    >>> parse_constraint("mw=200..500").check("CCO")
    'mw 46.07 outside 200..500'

Modules: :mod:`~molvae.objectives.core` (the :class:`Objective` type and spec parsing),
:mod:`~molvae.objectives.scoring` (GuacaMol's modifiers, fingerprints and means),
:mod:`~molvae.objectives.guacamol` (the 20 PMO tasks), :mod:`~molvae.objectives.classic`
(penalized logP), :mod:`~molvae.objectives.program` (``exec:`` programs),
:mod:`~molvae.objectives.transforms` (directions and desirability transforms),
:mod:`~molvae.objectives.constraints`, :mod:`~molvae.objectives.auc`.
The budgeted oracle that charges and logs calls lives in :mod:`molvae.optimize.oracle`.
"""

from __future__ import annotations

from molvae.errors import ObjectiveError
from molvae.objectives.auc import auc_top_k
from molvae.objectives.constraints import Constraint, evaluate_constraints, parse_constraint
from molvae.objectives.core import (
    Objective,
    ObjectiveLike,
    describe_objectives,
    get_objective,
    list_objectives,
    minimized,
    product,
    transformed,
    weighted_geometric_mean,
    weighted_sum,
)
from molvae.objectives.transforms import TRANSFORMS, Transform, make_transform, parse_transform

__all__ = [
    "Objective",
    "ObjectiveLike",
    "ObjectiveError",
    "get_objective",
    "list_objectives",
    "describe_objectives",
    "weighted_sum",
    "weighted_geometric_mean",
    "product",
    "transformed",
    "minimized",
    "Transform",
    "TRANSFORMS",
    "make_transform",
    "parse_transform",
    "Constraint",
    "parse_constraint",
    "evaluate_constraints",
    "auc_top_k",
    "PMO_TASKS",
]

PMO_TASKS = (
    "albuterol_similarity", "amlodipine_mpo", "celecoxib_rediscovery", "deco_hop", "fexofenadine_mpo",
    "isomers_c7h8n2o2", "isomers_c9h10n2o2pf2cl", "median1", "median2", "mestranol_similarity",
    "osimertinib_mpo", "perindopril_mpo", "qed", "ranolazine_mpo", "scaffold_hop", "sitagliptin_mpo",
    "thiothixene_rediscovery", "troglitazone_rediscovery", "valsartan_smarts", "zaleplon_mpo",
)
"""The 20 RDKit-only PMO tasks, in PMO's order."""
