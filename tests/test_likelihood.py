"""IWAE bounds, the OOD score and ``molvae likelihood``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from molvae import MolVAE
from molvae.cli import main
from molvae.likelihood import auroc

from conftest import read_sample

FOREIGN = [  # clearly unlike drug-like MOSES molecules, written with common tokens only
    "CO", "CCN", "O=C=O", "C1CC1", "OOOOOO", "NNNNNNNNNNNN", "C#CC#CC#CC#CC#C",
    "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC", "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCO",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny VAE trained long enough to know what its molecules look like (about 20 s on one thread)."""
    return MolVAE.fit(read_sample(800), out=tmp_path_factory.mktemp("trained"), preset="tiny", epochs=6, lr=3e-3,
                      seed=0, progress=False)


def _train_molecules(model: MolVAE, n: int, pool: int = 300) -> list[str]:
    val = set((model.path / "val.smi").read_text().split())
    from molvae.chem import canonicalize

    return [s for s in (canonicalize(x) for x in read_sample(pool)) if s not in val][:n]


def test_k1_bound_is_the_elbo(tiny_model):
    """k=1 is one single-sample ELBO; the mean of k single-sample ELBOs matches the training loss's
    ELBO (recon + analytic KL at beta = 1), a separate code path, to Monte-Carlo precision."""
    smiles = _train_molecules(tiny_model, 4)
    one = tiny_model.likelihood(smiles, k=1, seed=0)
    np.testing.assert_allclose(one["iwae"], one["elbo"])
    many = tiny_model.likelihood(smiles, k=400, seed=0)
    tokens, lengths = tiny_model._tokens(smiles, skip_unknown=False)
    net = tiny_model.net
    for i in range(len(smiles)):
        with torch.no_grad():
            terms = net.loss(tokens[i:i + 1].repeat(400, 1), lengths[i:i + 1].repeat(400), beta=1.0,
                             generator=torch.Generator().manual_seed(i))
        assert -float(terms["loss"]) == pytest.approx(many["elbo"][i], abs=0.5)
    assert (many["recon"] > 0).all() and (many["n_tokens"] == lengths.numpy() + 1).all()


def test_iwae_is_at_least_the_elbo_and_grows_with_k(tiny_model):
    smiles = _train_molecules(tiny_model, 40)
    bounds = {k: tiny_model.likelihood(smiles, k=k, seed=1) for k in (1, 8, 64)}
    means = [bounds[k]["iwae"].mean() for k in (1, 8, 64)]
    assert means[0] < means[1] < means[2], means
    # per molecule: the 64-sample bound beats the ELBO estimated from the same 64 samples (Jensen)
    assert (bounds[64]["iwae"] >= bounds[64]["elbo"] - 1e-9).all()
    assert (bounds[64]["iwae"] > bounds[64]["elbo"]).mean() > 0.9
    # reproducible with a seed, different with another; log_likelihood is the iwae column
    again = tiny_model.log_likelihood(smiles, k=8, seed=1)
    np.testing.assert_allclose(again, bounds[8]["iwae"])
    assert not np.allclose(tiny_model.log_likelihood(smiles, k=8, seed=2), again)


def test_bounds_do_not_depend_on_batching(tiny_model):
    smiles = _train_molecules(tiny_model, 12)
    a = tiny_model.likelihood(smiles, k=4, batch_elems=8)
    b = tiny_model.likelihood(smiles, k=4, batch_elems=4096)
    np.testing.assert_allclose(a["recon"], b["recon"], rtol=1e-5)
    np.testing.assert_allclose(a["iwae"], b["iwae"], rtol=1e-5)  # per-molecule noise: batching is invisible


def test_ood_score_ranks_foreign_molecules_above_training_ones(trained, tmp_path):
    model = MolVAE.load(trained.path)  # the calibration written at the end of training (ood.json)
    assert model.ood is not None and model.ood.k == model.config.eval_iwae_k and model.ood.quantile == 0.99
    train = _train_molecules(model, 60, pool=800)
    df = model.ood_score(train + FOREIGN + ["[Xe]CC", "C1CC"])
    assert list(df.columns) == ["smiles", "score", "ood", "reason"]
    tr, fo = df["score"][:60], df["score"][60:60 + len(FOREIGN)]
    assert np.isfinite(tr).all() and np.isfinite(fo).all()
    assert auroc(tr, fo) >= 0.8, (tr.describe(), fo.tolist())
    assert fo.median() > tr.quantile(0.9)
    assert df["ood"][:60].mean() <= 0.1
    assert df["ood"][60:60 + len(FOREIGN)].mean() >= df["ood"][:60].mean() + 0.4
    unreadable = df.iloc[-2:]
    assert unreadable["ood"].all() and np.isinf(unreadable["score"]).all()
    assert "Xe" in unreadable["reason"].iloc[0] and "C1CC" in unreadable["reason"].iloc[1]
    # the calibration travels with the model
    copy = model.save(tmp_path / "copy")
    saved = json.loads((copy / "ood.json").read_text())
    assert saved["threshold"] == pytest.approx(model.ood.threshold)
    again = MolVAE.load(copy).ood_score(train[:10])
    np.testing.assert_allclose(again["score"], df["score"][:10], rtol=1e-4)


def test_uncalibrated_model_without_heldout_data_says_how_to_calibrate(tiny_model, tmp_path):
    from molvae.errors import ConfigError

    d = tiny_model.save(tmp_path / "bare")
    for name in ("ood.json", "val.smi"):
        (d / name).unlink(missing_ok=True)
    model = MolVAE.load(d)
    with pytest.raises(ConfigError, match="calibrate_ood"):
        model.ood_score(["CCO"])
    cal = model.calibrate_ood(read_sample(40), k=4, quantile=0.9)
    assert cal.n == 40 and cal.k == 4
    assert model.ood_score(read_sample(40))["ood"].mean() == pytest.approx(0.1, abs=0.03)


def test_models_saved_before_these_features_still_load(tiny_model, tmp_path):
    d = tiny_model.save(tmp_path / "old")
    cfg = json.loads((d / "config.json").read_text())
    for key in ("conditions", "condition_columns", "prior", "vamp_components", "vamp_length", "eval_iwae_k",
                "n_val_likelihood", "ood_quantile"):
        cfg.pop(key)
    (d / "config.json").write_text(json.dumps(cfg))
    for name in ("ood.json", "likelihood.json", "conditions.json"):
        (d / name).unlink(missing_ok=True)
    old = MolVAE.load(d)
    assert old.config.prior == "normal" and old.condition_names == []
    np.testing.assert_array_equal(old.encode(read_sample(5)), tiny_model.encode(read_sample(5)))
    assert old.sample(20, seed=0, progress=False)["smiles"].tolist() == \
        tiny_model.sample(20, seed=0, progress=False)["smiles"].tolist()


def test_likelihood_cli(tiny_model, tmp_path, capsys):
    data = tmp_path / "in.smi"
    data.write_text("\n".join(read_sample(20) + ["C1CC", "[Xe]CC"]) + "\n")
    out = tmp_path / "ll.csv"
    assert main(["likelihood", str(tiny_model.path), str(data), "--k", "4", "--ood", "--out", str(out),
                 "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "IWAE (k=4)" in err and "OOD:" in err
    df = pd.read_csv(out)
    assert list(df.columns) == ["line", "smiles", "n_tokens", "elbo", "iwae", "recon", "kl", "score", "ood"]
    assert len(df) == 20 and (df["iwae"] >= df["elbo"] - 1e-9).all()
    rejects = pd.read_csv(tmp_path / "ll.rejects.csv")
    assert sorted(rejects["line"]) == [21, 22]
    assert main(["likelihood", str(tiny_model.path), str(data), "--k", "0"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "molvae likelihood: error: --k must be >= 1, got 0"
