"""The GuacaMol distribution-learning scores (Brown et al. 2019): validity, uniqueness and novelty of the
first 10,000 molecules, the KL-divergence score and the FCD score."""

from __future__ import annotations

import math

import numpy as np

from molvae.metrics._fcd import _frechet, _mean_cov
from molvae.metrics._features import GUACAMOL_N, _Features, _guacamol_features
from molvae.metrics._reference import ReferenceStats


def _continuous_kldiv(p_values: np.ndarray, q_values: np.ndarray) -> float:
    """GuacaMol ``continuous_kldiv``: KL of Gaussian KDEs on 1000 points spanning both sets."""
    from scipy.stats import entropy, gaussian_kde

    try:
        kde_p, kde_q = gaussian_kde(p_values), gaussian_kde(q_values)
    except (np.linalg.LinAlgError, ValueError):  # fewer than 2 distinct values: GuacaMol would crash
        return float("inf")
    both = np.hstack([p_values, q_values])
    x = np.linspace(both.min(), both.max(), num=1000)
    return float(entropy(kde_p(x) + 1e-10, kde_q(x) + 1e-10))


def _discrete_kldiv(p_values: np.ndarray, q_values: np.ndarray) -> float:
    """GuacaMol ``discrete_kldiv``: KL of 10-bin histograms on the baseline's bins."""
    from scipy.stats import entropy

    with np.errstate(invalid="ignore", divide="ignore"):
        p, bins = np.histogram(p_values, bins=10, density=True)
        q, _ = np.histogram(q_values, bins=bins, density=True)
    q = np.nan_to_num(q)  # no sampled value inside the baseline's bins: no overlap at all (GuacaMol: NaN)
    return float(entropy(np.nan_to_num(p) + 1e-10, q + 1e-10))


def _kl_score(ref_desc: np.ndarray, ref_sim: np.ndarray, desc: np.ndarray, sim: np.ndarray) -> float | None:
    if len(ref_desc) < 2 or len(desc) < 2:
        return None
    kls = [_continuous_kldiv(ref_desc[:, i], desc[:, i]) for i in range(4)]
    kls += [_discrete_kldiv(ref_desc[:, i], desc[:, i]) for i in range(4, 9)]
    kls.append(_continuous_kldiv(ref_sim, sim))
    return float(np.mean([math.exp(-k) for k in kls]))


def _guacamol_scores(gen: list, feats: _Features, ref_stats: ReferenceStats | None, train_sets: tuple | None,
                     acts: np.ndarray | None, n_jobs: int, device: str, progress: bool) -> dict[str, float | None]:
    """GuacaMol distribution-learning scores on the first 10,000 (valid / unique) molecules."""
    out: dict[str, float | None] = {}
    first = feats.index[:GUACAMOL_N]
    out["guacamol_validity"] = float((first >= 0).mean())
    valid = feats.index[feats.index >= 0][:GUACAMOL_N]  # first 10k valid, as unique indices
    out["guacamol_uniqueness"] = len({feats.nostereo[j] for j in valid.tolist()}) / len(valid) if len(valid) else None
    unique = list(range(min(GUACAMOL_N, len(feats.canonical))))  # first 10k unique (stereo canonical)
    nostereo = list(dict.fromkeys(feats.nostereo[j] for j in unique))
    out["guacamol_novelty"] = None
    if train_sets is not None and train_sets[1] is not None and unique:
        from molvae.io import smiles_hashes

        out["guacamol_novelty"] = float((~np.isin(smiles_hashes(nostereo), train_sets[1])).sum() / len(unique))
    out["guacamol_kl_score"] = out["guacamol_fcd_score"] = None
    if ref_stats is not None and len(valid):
        desc, sim = _guacamol_features(nostereo, n_jobs, device, progress)
        out["guacamol_kl_score"] = _kl_score(ref_stats.g_desc, ref_stats.g_maxsim, desc, sim)
        w = np.bincount(valid, minlength=len(feats.canonical))
        if acts is not None and w.sum() >= 2:
            mu, sigma = _mean_cov(acts[w > 0], w[w > 0])
            fcd = _frechet(ref_stats.g_fcd_mu, ref_stats.g_fcd_sigma, mu, sigma)
            out["guacamol_fcd_score"] = float(math.exp(-0.2 * fcd))
    return out
