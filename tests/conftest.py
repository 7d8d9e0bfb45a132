"""Shared fixtures: the shipped sample and a tiny model trained once per session (seconds on a CPU)."""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "moses_sample.smi"

torch.set_num_threads(1)  # CI has 2 cores: tests are many small jobs, not one big one
# caches (prepared data, reference statistics) go to a throwaway folder, never the user's ~/.cache
os.environ["MOLVAE_CACHE"] = tempfile.mkdtemp(prefix="molvae-test-cache-")


def read_sample(n: int | None = None) -> list[str]:
    """The first ``n`` SMILES of the shipped sample (``data/moses_sample.smi[.gz]``)."""
    path = SAMPLE if SAMPLE.exists() else SAMPLE.with_suffix(".smi.gz")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        smiles = [line.split()[0] for line in fh if line.strip()]
    return smiles[:n] if n else smiles


@pytest.fixture(scope="session")
def sample_smiles() -> list[str]:
    return read_sample(2000)


TINY_OPTIONS = dict(preset="tiny", epochs=3, seed=0, progress=False)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A MolVAE trained for a few seconds on 300 sample molecules, saved at ``tiny_model.path``."""
    from molvae import MolVAE

    out = tmp_path_factory.mktemp("tiny_model")
    return MolVAE.fit(read_sample(300), out=out, **TINY_OPTIONS)
