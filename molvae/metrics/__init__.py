"""Distribution metrics for generated molecules: the MOSES set and the GuacaMol distribution-learning scores.

    >>> from molvae.metrics import evaluate, format_table
    >>> m = evaluate(smiles, ref="moses-test", ref_scaffolds="moses-test-scaffolds", train="moses-train")
    >>> print(format_table(m))

Definitions follow the reference implementations, so numbers can sit beside published tables:

* MOSES (``molsets`` 0.3.1 ``get_all_metrics``): ``validity`` over all inputs (None, empty and
  unparsable strings count as invalid); every other MOSES metric over the valid molecules, as
  canonical SMILES, duplicates included. ``unique@k`` on the first k valid; ``novelty`` is the share
  of unique valid molecules not in the training set; ``IntDiv``/``IntDiv2`` are
  ``1 - mean_i (mean_j T_ij^p)^(1/p)`` over Morgan (r=2, 1024 bits) Tanimoto, p = 1, 2; ``Filters``
  the share passing the MOSES structural alerts (its 22 MCF + 480 PAINS SMARTS, shipped in
  ``molvae/data/moses_filters.csv`` under molsets' MIT licence), allowed atoms C N S O F Cl Br H, no
  charge, no ring of 8 or more atoms. Against a reference set: FCD (ChemNet from ``fcd_torch``),
  SNN (mean nearest-neighbour Tanimoto), Frag / Scaf (cosine similarity of BRICS fragment and
  Bemis-Murcko scaffold counts; scaffolds with fewer than 2 rings are ignored, as in MOSES), and
  Wasserstein-1 distances of logP, SA, QED and molecular weight.
* GuacaMol (Brown et al. 2019): validity of the first 10,000 inputs; uniqueness (no stereo) of the
  first 10,000 valid; novelty of the first 10,000 unique against the training set; the KL score
  (9 physico-chemical descriptors and the nearest-neighbour similarity, ECFP4 4096 bits) and the
  FCD score ``exp(-0.2 FCD)``, both against a 10,000-molecule random subset (seed 42) of ``ref``.

Reference statistics (ChemNet mean/covariance, fingerprints, fragment and scaffold counts,
property values, the GuacaMol subset) are cached on disk under ``$MOLVAE_CACHE/metrics`` (default
``~/.cache/molvae/metrics``), keyed by the reference set's content and the RDKit version, so a second
evaluation against the same set does not recompute them. For the named sets ``moses-test`` and
``moses-test-scaffolds`` they ship with molvae (``molvae/reference/``, built by
``scripts/make_reference_stats.py``), and so does the novelty index of ``moses-train``: used, with
nothing downloaded, when they were built with the installed RDKit, for the names and for files with
the same bytes. RDKit work runs in ``n_jobs`` processes; ChemNet and the Tanimoto matrices run on the
GPU when there is one, else split over the processes (Tanimoto: sparse-dense products, see
:func:`molvae.metrics._similarity._tanimoto_reduce`).

The package's modules, in import order: ``_runner`` (worker processes, shared arrays), ``_similarity``
(Tanimoto kernels, cosine), ``_features`` (RDKit featurization, filters, scaffolds, GuacaMol
descriptors), ``_fcd`` (ChemNet and the Frechet distance), ``_reference`` (reference statistics, the
cache, the shipped statistics), ``_guacamol`` (the GuacaMol scores), and this one (:func:`evaluate`
and the tables). Tunables live in the submodule that reads them (``_similarity.ROW_TILE``,
``_reference.REFERENCE_DIR``): set them there.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from molvae.metrics import _fcd, _features, _guacamol, _reference, _runner, _similarity
from molvae.metrics._fcd import _activations, _frechet, _mean_cov
from molvae.metrics._features import _counter, _Features, _featurize
from molvae.metrics._guacamol import _guacamol_scores
from molvae.metrics._reference import ReferenceStats, _reference_stats, _train_hashes, reference_statistics
from molvae.metrics._runner import _device, _n_jobs, _Runner
from molvae.metrics._similarity import _cosine, _tanimoto

# Re-exported: what scripts and tests use (and tune) from ``molvae.metrics``.
from molvae.metrics._fcd import _chemnet_tokens  # noqa: F401
from molvae.metrics._features import (FP_BITS, FP_RADIUS, GUACAMOL_DESCRIPTORS, GUACAMOL_FP_BITS,  # noqa: F401
                                      GUACAMOL_N, GUACAMOL_SEED)
from molvae.metrics._reference import (REFERENCE_DIR, SHIPPED_FORMAT, STATS_VERSION,  # noqa: F401
                                       _compute_reference_stats, _load_shipped_reference, _load_shipped_train,
                                       _pack_hashes, _ship_reference, _ship_train, _shipped, _shipped_index,
                                       _source, _unpack_hashes)
from molvae.metrics._runner import POOL_MIN  # noqa: F401
from molvae.metrics._similarity import ROW_TILE, TANIMOTO_POOL_MIN, _tanimoto_reduce  # noqa: F401

__all__ = [
    "evaluate",
    "format_table",
    "moses_table_row",
    "reference_statistics",
    "ReferenceStats",
    "MOSES_COLUMNS",
    "METRIC_DESCRIPTIONS",
]

MOSES_PROPERTIES = ("logP", "SA", "QED", "weight")

METRIC_DESCRIPTIONS = {
    "n_generated": "molecules given",
    "n_valid": "valid molecules",
    "n_unique": "unique valid molecules",
    "validity": "fraction valid (MOSES)",
    "unique@1000": "unique in the first 1,000 valid (all, if fewer)",
    "unique@10000": "unique in the first 10,000 valid (all, if fewer)",
    "novelty": "unique valid not in the training set",
    "IntDiv": "internal diversity, p=1",
    "IntDiv2": "internal diversity, p=2",
    "Filters": "passing the MOSES medchem filters",
    "FCD/Test": "Frechet ChemNet distance to ref (lower is better)",
    "SNN/Test": "mean nearest-neighbour Tanimoto to ref",
    "Frag/Test": "BRICS fragment cosine similarity to ref",
    "Scaf/Test": "Bemis-Murcko scaffold cosine similarity to ref",
    "FCD/TestSF": "FCD to the scaffold ref",
    "SNN/TestSF": "SNN to the scaffold ref",
    "Frag/TestSF": "Frag to the scaffold ref",
    "Scaf/TestSF": "Scaf to the scaffold ref",
    "logP": "Wasserstein-1 distance of logP to ref",
    "SA": "Wasserstein-1 distance of SA score to ref",
    "QED": "Wasserstein-1 distance of QED to ref",
    "weight": "Wasserstein-1 distance of mol. weight to ref",
    "guacamol_validity": "GuacaMol validity",
    "guacamol_uniqueness": "GuacaMol uniqueness",
    "guacamol_novelty": "GuacaMol novelty",
    "guacamol_kl_score": "GuacaMol KL-divergence score",
    "guacamol_fcd_score": "GuacaMol FCD score, exp(-0.2 FCD)",
    "n_ref": "reference molecules read",
    "n_ref_invalid": "reference molecules that did not parse (ignored)",
}
"""Every key :func:`evaluate` can return, in its order, with a one-line meaning."""

MOSES_COLUMNS = {
    "valid": "validity", "unique_1k": "unique@1000", "unique_10k": "unique@10000",
    "fcd_test": "FCD/Test", "fcd_testsf": "FCD/TestSF", "snn_test": "SNN/Test", "snn_testsf": "SNN/TestSF",
    "frag_test": "Frag/Test", "frag_testsf": "Frag/TestSF", "scaf_test": "Scaf/Test",
    "scaf_testsf": "Scaf/TestSF", "intdiv": "IntDiv", "intdiv2": "IntDiv2", "filters": "Filters",
    "novelty": "novelty",
}
"""Columns of the MOSES results table (as in its README) -> our metric keys."""


# ============================================================================================
# the metrics


def evaluate(
    generated: Any,
    ref: Any = None,
    train: Any = None,
    ref_scaffolds: Any = None,
    n_jobs: int | None = None,
    device: str = "auto",
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, float | int | None]:
    """Score generated molecules with the MOSES and GuacaMol distribution metrics.

    ``generated``: SMILES as a list (``None``/empty/invalid entries count as invalid), a file, or a
    DataFrame with a SMILES column. ``ref``/``ref_scaffolds``/``train``: a list, a file, or a named
    set (``moses-test``, ``moses-test-scaffolds``, ``moses-train``); ``train`` may also be a model's
    ``train_hashes`` array. Without ``ref`` only the intrinsic metrics are computed; without
    ``train`` no novelty. Returns a flat dict in :data:`METRIC_DESCRIPTIONS` order; a metric that
    cannot be computed (e.g. no valid molecule) is ``None``.

    :raises DataError: no molecules given, an empty or unreadable file, a reference with no valid molecule.
    """
    from molvae.data import read_generated

    gen = read_generated(generated)
    n_jobs, device = _n_jobs(n_jobs), _device(device)
    with _Runner(n_jobs) as runner:
        feats = _featurize(gen, runner, filters=True, progress=progress, desc="generated molecules")
    refs = {suffix: _reference_stats(source, what, n_jobs, device, cache_dir, progress)
            for suffix, source, what in (("Test", ref, "reference set"),
                                         ("TestSF", ref_scaffolds, "scaffold reference set")) if source is not None}
    train_sets = _train_hashes(train, n_jobs, cache_dir, progress) if train is not None else None

    out = _counts(gen, feats, train_sets)
    shared = {"gen": feats.fps, "w": feats.counts.astype(np.float64), **{k: s.fps for k, s in refs.items()}}
    with _Runner(n_jobs, shared) as runner:
        out.update(_diversity_and_filters(feats, runner, device, progress))
        against, acts = _against_references(feats, refs, runner, device, progress)
    out.update(against)
    ref_stats = refs.get("Test")
    if ref_stats is not None:
        out.update(_property_distances(feats, ref_stats))
    out.update(_guacamol_scores(gen, feats, ref_stats, train_sets, acts, n_jobs, device, progress))
    if ref_stats is not None:
        out["n_ref"], out["n_ref_invalid"] = ref_stats.n_input, ref_stats.n_invalid
    order = list(METRIC_DESCRIPTIONS)
    return {k: _finite(out[k]) for k in sorted(out, key=order.index)}


def _counts(gen: list, feats: _Features, train_sets: tuple | None) -> dict[str, float | int | None]:
    """Counts, MOSES validity, ``unique@k`` and novelty against the training set's hashes."""
    n_valid = feats.n_valid
    valid_idx = feats.index[feats.index >= 0]  # unique index of each valid input, in order
    out: dict[str, float | int | None] = {"n_generated": len(gen), "n_valid": n_valid,
                                          "n_unique": len(feats.canonical), "validity": n_valid / len(gen)}
    for k in (1000, 10000):
        first = valid_idx[:k]
        out[f"unique@{k}"] = len(np.unique(first)) / len(first) if len(first) else None
    out["novelty"] = None
    if train_sets is not None and feats.canonical:
        from molvae.io import smiles_hashes

        out["novelty"] = float(np.mean(~np.isin(smiles_hashes(feats.canonical), train_sets[0])))
    return out


def _diversity_and_filters(feats: _Features, runner: _Runner, device: str, progress: bool) -> dict[str, float | None]:
    """``IntDiv``, ``IntDiv2`` (Tanimoto sums of the shared ``gen`` fingerprints, weighted by ``w``) and ``Filters``."""
    counts, n_valid = feats.counts, feats.n_valid
    if not n_valid:
        return {"IntDiv": None, "IntDiv2": None, "Filters": None}
    s1, s2 = _tanimoto(runner, "gen", "gen", "sums", "w", device, progress, "internal diversity")
    return {"IntDiv": float(1 - (counts * s1 / n_valid).sum() / n_valid),
            "IntDiv2": float(1 - (counts * np.sqrt(s2 / n_valid)).sum() / n_valid),
            "Filters": float((counts * feats.passes).sum() / n_valid)}


def _against_references(feats: _Features, refs: dict[str, ReferenceStats], runner: _Runner, device: str,
                        progress: bool) -> tuple[dict[str, float | None], np.ndarray | None]:
    """FCD, SNN, Frag and Scaf against each reference set (``refs``: metric suffix -> statistics, whose
    fingerprints the runner shares under the suffix), and the ChemNet activations of the generated
    molecules (None when there is no reference or no valid molecule)."""
    if not refs:
        return {}, None
    if not feats.n_valid:
        return {f"{m}/{suffix}": None for suffix in refs for m in ("FCD", "SNN", "Frag", "Scaf")}, None
    counts, n_valid = feats.counts, feats.n_valid
    acts = _activations(feats.canonical, runner, device, progress, "ChemNet (FCD)")
    mu, sigma = _mean_cov(acts, counts) if n_valid >= 2 else (None, None)
    frag = _counter(feats.frags, counts, flatten=True)
    scaf = _counter(feats.scaffolds, counts, flatten=False)
    out: dict[str, float | None] = {}
    for suffix, stats in refs.items():
        out[f"FCD/{suffix}"] = _frechet(stats.fcd_mu, stats.fcd_sigma, mu, sigma) if mu is not None else None
        (best,) = _tanimoto(runner, "gen", suffix, "max", None, device, progress, f"SNN/{suffix}")
        out[f"SNN/{suffix}"] = float((counts * best).sum() / n_valid)
        out[f"Frag/{suffix}"] = _cosine(stats.frag, frag)
        out[f"Scaf/{suffix}"] = _cosine(stats.scaf, scaf)
    return out, acts


def _property_distances(feats: _Features, ref_stats: ReferenceStats) -> dict[str, float | None]:
    """Wasserstein-1 distances of logP, SA, QED and molecular weight (duplicates included) to the reference."""
    gen_props = np.repeat(feats.props, feats.counts, axis=0)
    return {name: _wasserstein(gen_props[:, col], ref_stats.props[:, col]) if feats.n_valid else None
            for col, name in enumerate(MOSES_PROPERTIES)}


def _wasserstein(u: np.ndarray, v: np.ndarray) -> float | None:
    from scipy.stats import wasserstein_distance

    u, v = u[np.isfinite(u)], v[np.isfinite(v)]
    if not len(u) or not len(v):
        return None
    return float(wasserstein_distance(u, v))


def _finite(v: Any) -> Any:
    """Plain Python numbers for JSON; a non-finite score becomes None (JSON has no NaN)."""
    if v is None or isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return None if v is None else int(v)
    v = float(v)
    return v if math.isfinite(v) else None


# ============================================================================================
# presentation


def format_table(metrics: dict[str, Any], descriptions: bool = True) -> str:
    """The metrics as an aligned text table (counts as integers, scores to 4 decimals, None as '-')."""
    rows = []
    for k, v in metrics.items():
        if v is None:
            text = "-"
        elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            text = f"{int(v):,}"
        else:
            text = f"{float(v):.4f}"
        rows.append((k, text, METRIC_DESCRIPTIONS.get(k, "") if descriptions else ""))
    w0 = max(len("metric"), *(len(r[0]) for r in rows))
    w1 = max(len("value"), *(len(r[1]) for r in rows))
    lines = [f"{'metric':<{w0}}  {'value':>{w1}}" + ("  meaning" if descriptions else "")]
    lines += [f"{k:<{w0}}  {t:>{w1}}" + (f"  {d}" if d else "") for k, t, d in rows]
    return "\n".join(line.rstrip() for line in lines)


def moses_table_row(metrics: dict[str, Any], model: str | None = None) -> dict[str, Any]:
    """One row in the layout of the MOSES results table (``valid, unique_1k, ..., novelty``)."""
    row: dict[str, Any] = {"model": model} if model is not None else {}
    for col, key in MOSES_COLUMNS.items():
        row[col] = metrics.get(key)
    return row
