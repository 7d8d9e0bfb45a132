"""The model directory: what a trained model is on disk, written and read without executing code.

    config.json  vocab.json  model.safetensors       required
    train_hashes.npy                                 the training set's hashes (novelty)
    conditions.json  guide.safetensors               a conditional model: its conditions' statistics, its guide
    ood.json  likelihood.json  latent_prior.safetensors   OOD calibration, held-out likelihood, fitted latent prior (mixture or flow)

    >>> parts = load_model("runs/demo")     # dict: net, vocab, config, train_hashes, path, and the extras
    >>> save_model("copy/", **parts)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from molvae.conditions import CONDITIONS_FILE, ConditionSpec
from molvae.errors import CheckpointError, ConfigError
from molvae.guide import GUIDE_FILE, PropertyGuide, load_guide, save_guide
from molvae.io import load_state, load_weights, save_weights
from molvae.latent_flow import LatentFlow, load_latent_prior
from molvae.latent_mixture import LATENT_PRIOR_FILE, LatentMixture
from molvae.likelihood import LIKELIHOOD_FILE, OOD_FILE, OODCalibration
from molvae.model import VAE, ModelConfig
from molvae.vocab import Vocab

__all__ = ["MODEL_FILES", "save_model", "load_model", "load_extras", "available_pretrained", "pretrained_path",
           "model_location"]

MODEL_FILES = ("config.json", "vocab.json", "model.safetensors")
"""The files every model directory has."""

PRETRAINED_ROOT = Path(__file__).parent / "pretrained"


def save_model(path: str | Path, *, net: VAE, vocab: Vocab, config: ModelConfig, train_hashes: np.ndarray,
               conditions: ConditionSpec | None = None, guide: PropertyGuide | None = None,
               ood: OODCalibration | None = None, likelihood: dict[str, Any] | None = None,
               latent_prior: LatentMixture | LatentFlow | None = None, copy_from: Path | None = None) -> Path:
    """Write a model directory: the required files, ``train_hashes.npy``, and each extra that exists.
    ``copy_from`` (the model's own directory) lends its ``train_log.csv`` and held-out ``val.smi``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: exists and is not a directory (a model is saved as a directory)")
    path.mkdir(parents=True, exist_ok=True)
    config.save(path / "config.json")
    vocab.save(path / "vocab.json")
    save_weights(net.state_dict(), path / "model.safetensors", metadata={"format": "molvae-1"})
    np.save(path / "train_hashes.npy", train_hashes, allow_pickle=False)
    if conditions is not None:
        conditions.save(path / CONDITIONS_FILE)
    if guide is not None:
        save_guide(guide, path / GUIDE_FILE)
    if ood is not None:
        ood.save(path / OOD_FILE)
    if likelihood is not None:
        (path / LIKELIHOOD_FILE).write_text(json.dumps(likelihood, indent=2) + "\n")
    if latent_prior is not None:
        latent_prior.save(path / LATENT_PRIOR_FILE)
    if copy_from is not None and copy_from.resolve() != path.resolve():
        for name in ("train_log.csv", "val.smi"):
            if (copy_from / name).exists():
                (path / name).write_text((copy_from / name).read_text())
    return path


def load_model(path: str | Path) -> dict[str, Any]:
    """Read a model directory into the keyword arguments of :class:`molvae.api.MolVAE` (all but ``device``).

    A name of a shipped model (``zinc250k``) that is not also a path here loads that model, so every
    command that takes a model directory takes a shipped name too.

    :raises CheckpointError: not a model directory, unreadable or mismatched files.
    """
    path = model_location(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: model directory not found")
    missing = [f for f in MODEL_FILES if not (path / f).exists()]
    if missing:
        raise CheckpointError(f"{path}: not a molvae model directory (missing {', '.join(missing)})")
    try:
        config = ModelConfig.load(path / "config.json")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    vocab = Vocab.load(path / "vocab.json")
    net = VAE(config, len(vocab))
    load_state(net, load_weights(path / "model.safetensors"), path / "model.safetensors",
               "weights do not match config.json")
    hashes = None
    if (path / "train_hashes.npy").exists():
        try:
            hashes = np.load(path / "train_hashes.npy", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise CheckpointError(f"{path / 'train_hashes.npy'}: unreadable ({exc})") from None
    return {"net": net, "vocab": vocab, "config": config, "train_hashes": hashes, "path": path,
            **load_extras(path, config, len(vocab))}


def load_extras(path: Path, config: ModelConfig, vocab_size: int) -> dict[str, Any]:
    """conditions.json (required for a conditional model); guide.safetensors, ood.json,
    latent_prior.safetensors (a fitted mixture or flow) and likelihood.json (optional)."""
    extras: dict[str, Any] = {}
    if config.n_conditions:
        spec = ConditionSpec.load(path / CONDITIONS_FILE)
        if spec.names != config.condition_names:
            raise CheckpointError(f"{path / CONDITIONS_FILE}: conditions {spec.names} do not match config.json "
                                  f"({config.condition_names})")
        extras["conditions"] = spec
        if (path / GUIDE_FILE).exists():
            extras["guide"] = load_guide(path / GUIDE_FILE, vocab_size, config.n_conditions, config.guide_hidden)
    if (path / OOD_FILE).exists():
        extras["ood"] = OODCalibration.load(path / OOD_FILE)
    if (path / LATENT_PRIOR_FILE).exists() and not config.n_conditions:
        extras["latent_prior"] = load_latent_prior(path / LATENT_PRIOR_FILE, config.latent_dim)
    if (path / LIKELIHOOD_FILE).exists():
        try:
            extras["likelihood"] = json.loads((path / LIKELIHOOD_FILE).read_text())
        except ValueError as exc:
            raise CheckpointError(f"{path / LIKELIHOOD_FILE}: unreadable ({exc})") from None
    return extras


def available_pretrained() -> list[str]:
    """Names of the models shipped inside the package (``molvae/pretrained/NAME``)."""
    root = PRETRAINED_ROOT
    return sorted(p.name for p in root.iterdir() if (p / "config.json").exists()) if root.is_dir() else []


def model_location(spec: str | Path) -> Path:
    """``spec`` as a path, or the shipped model's directory when ``spec`` names one and is not a path
    here: how every command that takes a model directory (or a run directory) also takes a shipped name."""
    path = Path(spec)
    if not path.exists() and str(spec) in available_pretrained():
        return PRETRAINED_ROOT / str(spec)
    return path


def pretrained_path(name: str) -> Path:
    """The directory of a shipped model. :raises CheckpointError: no such model ships with molvae."""
    names = available_pretrained()
    if name not in names:
        raise CheckpointError(f"no pretrained model {name!r} ships with this molvae; "
                              f"available: {', '.join(names) or 'none yet'}")
    return PRETRAINED_ROOT / name
