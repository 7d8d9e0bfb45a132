"""The network, its config, the vocabulary, training, resume, saving and the MolVAE API."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from molvae import MolVAE
from molvae.errors import CheckpointError, ConfigError, InvalidSmilesError, TooLongError, UnknownTokenError
from molvae.model import PRESETS, ModelConfig, load_config_file
from molvae.schedules import kl_weight
from molvae.chem import canonicalize
from molvae.vocab import Vocab, selfies_to_smiles, smiles_to_selfies

from conftest import TINY_OPTIONS, read_sample


# ---------------------------------------------------------------- vocabulary
def test_vocab_round_trip_and_unknown_token():
    sf = smiles_to_selfies("c1ccccc1O")
    vocab = Vocab.from_selfies([sf])
    ids = vocab.encode(sf)
    assert vocab.decode(ids + [vocab.eos_id, 5]) == sf
    assert canonicalize(selfies_to_smiles(vocab.decode(ids))) == "Oc1ccccc1"
    with pytest.raises(UnknownTokenError, match=r"\[Cl\]"):
        vocab.encode(smiles_to_selfies("c1ccccc1Cl"))
    with_cl = smiles_to_selfies("c1ccccc1Cl")
    assert vocab.encode(with_cl, skip_unknown=True) == vocab.encode(with_cl.replace("[Cl]", ""))
    with pytest.raises(TooLongError, match="maximum is 3"):
        vocab.encode(sf, max_len=3)


def test_vocab_first_token_mask_allows_only_atoms():
    vocab = Vocab.from_selfies([smiles_to_selfies(s) for s in ["C1CC(=O)C1", "CC(C)(C)N"]])
    allowed = {t for t, ok in zip(vocab.itos, vocab.starts_molecule()) if ok}
    assert allowed and all(not t.startswith(("[Ring", "[Branch", "[=Branch", "<")) for t in allowed)
    assert "[C]" in allowed


def test_vocab_file_round_trip_and_corruption(tmp_path):
    vocab = Vocab.from_selfies([smiles_to_selfies("CCN")])
    vocab.save(tmp_path / "vocab.json")
    assert Vocab.load(tmp_path / "vocab.json") == vocab
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="bad.json"):
        Vocab.load(tmp_path / "bad.json")


# ---------------------------------------------------------------- config
def test_config_rejects_unknown_keys_and_bad_types(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'latnet_dim'"):
        ModelConfig.from_dict({"latnet_dim": 3})
    with pytest.raises(ConfigError, match="epochs must be an integer"):
        ModelConfig.from_dict({"epochs": "ten"})
    with pytest.raises(ConfigError, match="kl_schedule"):
        ModelConfig(kl_schedule="sigmoid")
    toml = tmp_path / "c.toml"
    toml.write_text('preset = "small"\nlatent_dim = 40\nbeta = 1\n')
    values = load_config_file(toml)
    assert values["latent_dim"] == 40 and values["dec_hidden"] == PRESETS["small"]["dec_hidden"]
    yaml = tmp_path / "c.yaml"
    yaml.write_text("epochs: 2\nkl_schedule: cyclical\n")
    assert load_config_file(yaml) == {"epochs": 2, "kl_schedule": "cyclical"}
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = \n")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_config_file(bad)


def test_kl_schedules():
    linear = ModelConfig(beta=0.5, kl_schedule="linear", kl_warmup_epochs=2.0, epochs=10)
    assert kl_weight(0, 100, linear) == 0.0
    assert kl_weight(100, 100, linear) == pytest.approx(0.25)
    assert kl_weight(1000, 100, linear) == pytest.approx(0.5)
    cyc = ModelConfig(beta=1.0, kl_schedule="cyclical", kl_cycles=2, epochs=10)
    # two cycles of 5 epochs: ramp over 2.5 epochs, then hold, then restart
    assert kl_weight(125, 100, cyc) == pytest.approx(0.5)
    assert kl_weight(400, 100, cyc) == pytest.approx(1.0)
    assert kl_weight(500, 100, cyc) == pytest.approx(0.0)
    assert kl_weight(0, 100, ModelConfig(kl_schedule="constant", beta=0.3)) == pytest.approx(0.3)


def test_free_bits_and_word_dropout_change_the_loss():
    cfg = ModelConfig(**{**PRESETS["tiny"], "free_bits": 0.0})
    from molvae.model import VAE

    torch.manual_seed(0)
    net = VAE(cfg, 10)
    tokens = torch.randint(3, 10, (4, 7))
    lengths = torch.tensor([7, 5, 3, 6])

    def loss() -> dict:
        with torch.no_grad():
            return net.loss(tokens, lengths, beta=1.0, generator=torch.Generator().manual_seed(0))

    plain = loss()
    net.config = cfg.replace(free_bits=2.0)
    fb = loss()
    # KL of an untrained encoder is far below 2 nats per dim, so free bits raise the penalty to 2 * Z
    assert float(fb["kl"]) == pytest.approx(float(plain["kl"]))
    assert float(fb["loss"] - fb["recon"]) == pytest.approx(2.0 * cfg.latent_dim, rel=1e-4)
    net.config = cfg.replace(word_dropout=0.9)
    net.train()
    wd = loss()
    assert float(wd["recon"]) != pytest.approx(float(plain["recon"]))


# ---------------------------------------------------------------- the trained model
def test_prior_samples_are_all_valid_and_reproducible(tiny_model):
    df = tiny_model.sample(300, seed=1, progress=False)
    assert len(df) == 300
    assert df["valid"].all(), df[~df["valid"]]
    assert df["smiles"].str.len().min() > 0
    again = tiny_model.sample(300, seed=1, progress=False)
    other = tiny_model.sample(300, seed=2, progress=False)
    assert df["smiles"].tolist() == again["smiles"].tolist()
    assert df["smiles"].tolist() != other["smiles"].tolist()
    assert df["unique"].sum() == df["smiles"].nunique()


def test_sample_in_worker_pool_matches_in_process(tiny_model):
    a = tiny_model.sample(200, seed=3, n_workers=0, batch_size=64, progress=False)
    b = tiny_model.sample(200, seed=3, n_workers=2, batch_size=64, progress=False)
    assert a["smiles"].tolist() == b["smiles"].tolist()


def test_novelty_uses_training_set(tiny_model):
    from molvae.chem import canonicalize

    val = set((tiny_model.path / "val.smi").read_text().split())
    canon = [canonicalize(s) for s in read_sample(300)]
    train = [s for s in canon if s not in val]
    assert len(val) >= 1 and len(train) + len(val) == 300
    assert not tiny_model.is_novel(train).any()
    assert tiny_model.is_novel(sorted(val)).all()  # held out: novel with respect to the training split
    assert tiny_model.is_novel(["CCCCCCCCCCCCCCCCCCCCO"]).all()


def test_save_load_round_trip_gives_identical_encodings(tiny_model, tmp_path):
    smiles = read_sample(50)
    z = tiny_model.encode(smiles)
    assert z.shape == (50, tiny_model.latent_dim) and z.dtype == np.float32
    tiny_model.save(tmp_path / "copy")
    loaded = MolVAE.load(tmp_path / "copy")
    np.testing.assert_array_equal(loaded.encode(smiles), z)
    assert loaded.decode(z) == tiny_model.decode(z)
    assert loaded.config == tiny_model.config and loaded.vocab == tiny_model.vocab


def test_load_errors_are_clear(tiny_model, tmp_path):
    with pytest.raises(CheckpointError, match="model directory not found"):
        MolVAE.load(tmp_path / "nope")
    d = tiny_model.save(tmp_path / "m")
    (d / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        MolVAE.load(d)
    d2 = tiny_model.save(tmp_path / "m2")
    cfg = ModelConfig.load(d2 / "config.json").replace(latent_dim=7)
    cfg.save(d2 / "config.json")
    with pytest.raises(CheckpointError, match="do not match"):
        MolVAE.load(d2)


def test_checkpoint_loading_never_unpickles_code(tmp_path):
    import pickle

    from molvae.io import load_checkpoint

    class Evil:
        def __reduce__(self):
            return (exec, ("import pathlib; pathlib.Path('%s').write_text('pwned')" % (tmp_path / "pwned"),))

    with open(tmp_path / "checkpoint.pt", "wb") as fh:
        pickle.dump({"model": Evil()}, fh)
    with pytest.raises(CheckpointError, match="corrupt or unsafe"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    assert not (tmp_path / "pwned").exists()


def test_encode_errors_name_the_molecule(tiny_model):
    with pytest.raises(InvalidSmilesError, match="input 2"):
        tiny_model.encode(["CCO", "C1CC"])
    with pytest.raises(UnknownTokenError, match=r"\[Xe\]"):
        tiny_model.encode(["[Xe]CC"])
    with pytest.raises(TooLongError, match="maximum"):
        tiny_model.encode(["C" * 150])
    assert tiny_model.encode(["[Xe]CC"], skip_unknown=True).shape == (1, tiny_model.latent_dim)


def test_interpolate_and_neighbours(tiny_model):
    a, b = read_sample(2)
    path = tiny_model.interpolate(a, b, steps=5)
    assert list(path["t"]) == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert path["smiles"].notna().all()
    assert path["smiles"].iloc[0] == tiny_model.decode(tiny_model.encode([a]))[0]
    lin = tiny_model.interpolate(a, b, steps=5, method="linear")
    assert len(lin) == 5
    nb = tiny_model.neighbours(a, n=30, radius=0.5)
    assert 0 < len(nb) <= 30 and nb["smiles"].is_unique
    assert (nb["distance"] <= 0.5 + 1e-9).all()
    assert nb["similarity"].is_monotonic_decreasing
    with pytest.raises(ConfigError):
        tiny_model.interpolate(a, b, steps=1)


def test_training_log_and_run_directory(tiny_model):
    run = tiny_model.path
    for name in ["config.json", "vocab.json", "model.safetensors", "train_log.csv", "train_hashes.npy",
                 "rejects.csv", "checkpoint.pt", "training_curves.png", "val.smi"]:
        assert (run / name).exists(), name
    import pandas as pd

    log = pd.read_csv(run / "train_log.csv")
    assert len(log) == TINY_OPTIONS["epochs"]
    assert {"val_token_acc", "val_exact", "active_units", "sample_validity", "sample_uniqueness", "beta"} <= set(log)
    assert (log["sample_validity"] == 1.0).all()
    assert log["train_loss"].iloc[-1] < log["train_loss"].iloc[0]


def test_tiny_model_overfits_a_few_dozen_molecules():
    smiles = read_sample(40)
    model = MolVAE.fit(smiles, preset="tiny", epochs=100, batch_size=8, latent_dim=32, dec_hidden=128,
                       embed_dim=32, beta=0.01, kl_warmup_epochs=10, warmup_steps=20, lr=5e-3,
                       early_stopping_patience=0, keep_best=False, progress=False)
    exact = model.reconstruct(smiles)["exact"].mean()
    assert exact >= 0.8, exact


def test_resume_after_crash_gives_the_same_losses(tmp_path):
    smiles = read_sample(200)
    opts = dict(preset="tiny", epochs=3, batch_size=32, checkpoint_every=4, progress=False)
    full = MolVAE.fit(smiles, out=tmp_path / "full", **opts)
    from molvae.train import _Interrupted, train
    from molvae.model import build_config

    with pytest.raises(_Interrupted):
        train(smiles, build_config(None, "tiny", {k: v for k, v in opts.items() if k not in ("preset", "progress")}),
              out_dir=tmp_path / "crashed", progress=False, _crash_at_step=10)
    resumed = MolVAE.fit(smiles, out=tmp_path / "crashed", resume=True, **opts)
    keys = ["train_loss", "train_recon", "train_kl", "val_loss", "val_exact", "sample_validity"]
    for a, b in zip(full.history, resumed.history):
        assert [a[k] for k in keys] == pytest.approx([b[k] for k in keys], rel=1e-6, abs=1e-9)
    assert len(resumed.history) == len(full.history)
    for (k, va), vb in zip(full.net.state_dict().items(), resumed.net.state_dict().values()):
        torch.testing.assert_close(va, vb, msg=k)


def test_resume_refuses_changed_data(tmp_path):
    smiles = read_sample(120)
    MolVAE.fit(smiles, out=tmp_path / "run", preset="tiny", epochs=1, progress=False)
    with pytest.raises(CheckpointError, match="data differ"):
        MolVAE.fit(smiles[:100], out=tmp_path / "run", resume=True, preset="tiny", progress=False)


def test_pretrained_names_are_checked():
    with pytest.raises(CheckpointError, match="no pretrained model 'nonexistent'"):
        MolVAE.pretrained("nonexistent")
    assert isinstance(MolVAE.available_pretrained(), list)


def test_end_of_training_evaluation_uses_the_metrics(tmp_path):
    import json

    MolVAE.fit(read_sample(150), out=tmp_path / "run", preset="tiny", epochs=1, final_eval_samples=60, progress=False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["validity"] == 1.0
    assert 0.0 < metrics["IntDiv"] <= 1.0 and metrics["FCD/Test"] > 0
    assert 0.0 <= metrics["novelty"] <= 1.0


@pytest.mark.parametrize("layers", [1, 2])
def test_unpacked_encoder_equals_the_packed_gru(layers):
    """The encoder reads padded rows direction by direction: the same states and gradients as packing."""
    from torch.nn.utils.rnn import pack_padded_sequence

    from molvae.model import bidirectional_final_states

    torch.manual_seed(0)
    gru = torch.nn.GRU(8, 16, layers, batch_first=True, bidirectional=True)
    x = torch.randn(5, 9, 8, requires_grad=True)
    lengths = torch.tensor([9, 3, 1, 5, 7])
    _, packed = gru(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    ours = bidirectional_final_states(gru, x, lengths)
    torch.testing.assert_close(ours, packed, atol=1e-6, rtol=0)
    grads = [torch.autograd.grad(h.square().sum(), [x, *gru.parameters()]) for h in (packed, ours)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
