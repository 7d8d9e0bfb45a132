"""Fine-tuning from a trained model (``--from``): weights, vocabulary, unknown tokens, errors."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
import torch

from conftest import read_sample
from molvae import MolVAE
from molvae.errors import ConfigError

SERIES = ["Brc1ccc(CC(=O)NC2CC2)cc1", "Brc1ccc(CC(=O)NC2CCC2)cc1", "Brc1ccc(CC(=O)N2CCCC2)cc1"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny model trained on sample molecules without bromine (so [Br] is not in its vocabulary)."""
    smiles = [s for s in read_sample(300) if "Br" not in s]
    out = tmp_path_factory.mktemp("base")
    model = MolVAE.fit(smiles, out=out, preset="tiny", epochs=1, progress=False)
    assert "[Br]" not in model.vocab.stoi
    return model


def test_from_keeps_the_vocabulary_and_rejects_unknown_tokens_by_name(base, tmp_path):
    data = tmp_path / "series.smi"
    known = [s for s in read_sample(400)[300:] if "Br" not in s][:40]
    data.write_text("\n".join(known + SERIES) + "\n")
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "molvae", "train", str(data), "--from", str(base.path),
                           "--out", str(run), "--epochs", "1", "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    tuned = MolVAE.load(run)
    assert tuned.vocab == base.vocab
    assert tuned.config.latent_dim == base.config.latent_dim and tuned.config.lr == 3e-4
    with open(run / "rejects.csv") as fh:
        rejects = list(csv.DictReader(fh))
    assert [int(r["line"]) for r in rejects] == [len(known) + 1, len(known) + 2, len(known) + 3]
    assert all("unknown token [Br]" in r["reason"] for r in rejects)


def test_fine_tuning_starts_from_the_base_weights(base):
    same = MolVAE.fit(read_sample(60), init=base, epochs=1, lr=1e-12, warmup_steps=1, progress=False)
    for (k, a), b in zip(base.net.state_dict().items(), same.net.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=k)


def test_extend_vocab_adds_rows_and_keeps_the_trained_ones(base):
    from molvae.finetune import extended_vocab, transfer_weights

    tuned = MolVAE.fit(read_sample(60) + SERIES, init=base, extend_vocab=True, epochs=1, progress=False)
    assert "[Br]" in tuned.vocab.stoi and len(tuned.vocab) == len(base.vocab) + 1
    assert len(tuned.sample(20, seed=0)) == 20
    grown = extended_vocab(base.vocab, [tuned.vocab.itos[-1]] + ["[Br]"])
    weights = transfer_weights(base.net.state_dict(), base.vocab, grown)
    for token, i in base.vocab.stoi.items():
        j = grown.stoi[token]
        assert torch.equal(weights["embed.weight"][j], base.net.embed.weight[i].detach())
        assert torch.equal(weights["output.bias"][j], base.net.output.bias[i].detach())
    new = grown.stoi["[Br]"]
    assert weights["output.bias"][new] == base.net.output.bias.min()


def test_fine_tuning_cannot_change_the_architecture(base):
    with pytest.raises(ConfigError, match="latent_dim comes from the base model"):
        MolVAE.fit(read_sample(60), init=base, latent_dim=8, progress=False)
    with pytest.raises(ConfigError, match="drop --preset"):
        MolVAE.fit(read_sample(60), init=base, preset="small", progress=False)


def test_fine_tuning_fits_a_latent_prior_to_the_series_and_samples_from_it(base, tmp_path):
    from molvae.chem import canonicalize

    series = [s for s in read_sample(500)[300:] if "Br" not in s][:80]
    run = tmp_path / "run"
    tuned = MolVAE.fit(series, init=base, out=run, epochs=1, progress=False)
    assert tuned.config.latent_prior_components == 20 and (run / "latent_prior.safetensors").exists()
    prior = MolVAE.load(run).latent_prior
    assert prior is not None and len(prior.weights) == 20
    held_out = set((run / "val.smi").read_text().split())
    trained_on = [s for s in series if canonicalize(s) not in held_out]
    assert 0 < len(held_out) < len(series) and len(trained_on) == len(series) - len(held_out)
    mu = torch.as_tensor(tuned.encode(trained_on), dtype=torch.float64)
    # EM keeps the mixture's overall mean at the mean of the points it was fitted to: the series' latent means
    torch.testing.assert_close((prior.weights[:, None] * prior.means).sum(0), mu.mean(0), atol=1e-4, rtol=0)
    assert tuned.sample(200, seed=0)["smiles"].tolist() != tuned.sample(200, seed=0, prior="model")["smiles"].tolist()
    # a run that fits no prior removes a stale one: it described other weights' latent space
    MolVAE.fit(series, init=base, out=run, epochs=1, latent_prior_components=0, progress=False)
    assert not (run / "latent_prior.safetensors").exists() and MolVAE.load(run).latent_prior is None


def test_fine_tuning_takes_a_model_config(tiny_model):
    """``config=ModelConfig(...)`` with ``init``: its non-default settings apply, the architecture stays the base's."""
    from molvae import ModelConfig

    tuned = MolVAE.fit(read_sample(60), init=tiny_model, config=ModelConfig(epochs=1, lr=1e-4), progress=False)
    assert tuned.config.epochs == 1 and tuned.config.lr == 1e-4
    assert tuned.config.latent_dim == tiny_model.config.latent_dim
