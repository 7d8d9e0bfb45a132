"""Model directories and checkpoints written by older molvae still load, sample and resume.

``tests/fixtures/model_8b428cc`` is a ``tiny`` model trained for one epoch on the 200 molecules of its
``train.smi`` by molvae at commit 8b428cc (before the package was split into layers):
``molvae train train.smi --out DIR --preset tiny --epochs 1``, keeping config.json, vocab.json,
model.safetensors, train_hashes.npy and checkpoint.pt.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "model_8b428cc"


@pytest.fixture()
def old_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    return run


def test_old_model_directory_loads_and_samples(old_run):
    from molvae import MolVAE

    model = MolVAE.load(old_run, device="cpu")
    df = model.sample(50, seed=0, progress=False)
    assert len(df) == 50 and df["valid"].all()
    again = model.sample(50, seed=0, progress=False)
    assert df["smiles"].tolist() == again["smiles"].tolist()
    z = model.encode(["CCO", "c1ccccc1"])
    assert z.shape == (2, model.latent_dim) and np.isfinite(z).all()
    assert len(model.decode(z)) == 2


def test_old_checkpoint_resumes(old_run):
    from molvae import MolVAE
    from molvae.io import load_checkpoint

    before = load_checkpoint(old_run / "checkpoint.pt")
    model = MolVAE.fit(old_run / "train.smi", out=old_run, resume=True, epochs=2, progress=False,
                       final_eval_samples=0, eval_iwae_k=0)
    history = model.history
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[0]["val_loss"] == pytest.approx(before["history"][0]["val_loss"])
    after = load_checkpoint(old_run / "checkpoint.pt")
    assert after["epoch"] == 2 and after["step"] > before["step"]
    assert MolVAE.load(old_run, device="cpu").sample(10, seed=0, progress=False)["valid"].all()
