"""Long training campaigns: the prepared-data cache, compact checkpoints, budgets, mid-epoch evaluations."""

from __future__ import annotations

import csv

import pytest
import torch

from conftest import read_sample
from molvae import MolVAE
from molvae.errors import ConfigError


@pytest.fixture()
def smi_file(tmp_path):
    path = tmp_path / "mols.smi"
    path.write_text("\n".join(read_sample(150) + ["not_a_smiles", "C1CC"]) + "\n")
    return path


def test_prepared_data_are_cached_by_content_and_options(smi_file, tmp_path, monkeypatch):
    import molvae.prepared as prepared
    from molvae.vocab import Vocab, tokenize

    cache = tmp_path / "cache"
    first = prepared.prepare_cached(smi_file, max_len=100, cache_dir=cache)
    assert first.cache_path is not None and first.counts["invalid"] == 2

    def no_cleaning(*args, **kwargs):
        raise AssertionError("cleaned again although the cache holds these data")

    monkeypatch.setattr(prepared, "prepare_molecules", no_cleaning)
    again = prepared.prepare_cached(smi_file, max_len=100, cache_dir=cache)
    assert again.smiles == first.smiles and again.selfies == first.selfies and again.lines == first.lines
    assert again.counts == first.counts and again.reject_kinds == first.reject_kinds
    assert again.rejects.to_dict("list") == first.rejects.to_dict("list")
    vocab = Vocab.from_selfies(first.selfies)
    for _ in range(2):  # computed, then read back
        tokens, lengths = prepared.tokenize_cached(again, vocab, 100)
        want_t, want_l = tokenize(first.selfies, vocab, 100)
        assert torch.equal(tokens, want_t) and torch.equal(lengths, want_l)

    # other options or other content: a new entry, so cleaning runs again
    with pytest.raises(AssertionError, match="cleaned again"):
        prepared.prepare_cached(smi_file, max_len=40, cache_dir=cache)
    smi_file.write_text("CCO\nc1ccccc1\n")
    with pytest.raises(AssertionError, match="cleaned again"):
        prepared.prepare_cached(smi_file, max_len=100, cache_dir=cache)


def test_a_damaged_cache_entry_is_prepared_again(smi_file, tmp_path):
    from molvae.prepared import prepare_cached

    cache = tmp_path / "cache"
    first = prepare_cached(smi_file, max_len=100, cache_dir=cache)
    (first.cache_path / "selfies.txt").write_text("[C]")  # truncated
    again = prepare_cached(smi_file, max_len=100, cache_dir=cache)
    assert again.selfies == first.selfies


def _run(out, **opts):
    base = dict(preset="tiny", epochs=2, batch_size=16, checkpoint_every=3, keep_best=False, precision="fp32",
                progress=False)
    return MolVAE.fit(read_sample(160), out=out, **{**base, **opts})


def test_compact_checkpoint_resumes_with_nearly_the_same_losses(tmp_path):
    """bf16 optimizer moments: the resumed run's losses match the full-precision resume within 1e-3."""
    from molvae.model import build_config
    from molvae.train import _Interrupted, train

    opts = dict(epochs=2, batch_size=16, checkpoint_every=3, keep_best=False, precision="fp32")
    histories = {}
    for compact in (False, True):
        out = tmp_path / f"compact{compact}"
        with pytest.raises(_Interrupted):
            train(read_sample(160), build_config(None, "tiny", {**opts, "compact_checkpoint": compact}),
                  out_dir=out, progress=False, _crash_at_step=6)
        state = torch.load(out / "checkpoint.pt", weights_only=True)
        moments = [v for per in state["optimizer"]["state"].values() for v in per.values() if v.dim() > 0]
        assert all(m.dtype == (torch.bfloat16 if compact else torch.float32) for m in moments)
        histories[compact] = _run(out, resume=True, compact_checkpoint=compact).history
    full, compact = histories[False], histories[True]
    assert len(full) == len(compact) == 2
    for a, b in zip(full, compact):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-3)
    assert full[-1]["train_loss"] != compact[-1]["train_loss"]  # the moments really were rounded


def test_a_budgeted_stretch_stops_mid_epoch_and_the_next_one_continues_exactly(tmp_path):
    whole = _run(tmp_path / "whole")
    stretch = _run(tmp_path / "stretched", max_minutes=1e-9)  # stops after its first step
    first_rows = stretch.history
    assert len(first_rows) == 1 and 0 < first_rows[0]["epoch"] < 1
    resumed = _run(tmp_path / "stretched", resume=True, max_minutes=0)
    assert resumed.history[-1]["epoch"] == 2 and resumed.history[-1]["step"] == whole.history[-1]["step"]
    for (k, a), b in zip(whole.net.state_dict().items(), resumed.net.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    minutes = [row["train_minutes"] for row in resumed.history]
    assert minutes == sorted(minutes) and all(row["cpu_minutes"] > 0 for row in resumed.history)


def test_evaluations_within_an_epoch(tmp_path):
    model = _run(tmp_path / "run", epochs=1, eval_every_steps=4)
    steps_per_epoch = model.history[-1]["step"]
    epochs = [row["epoch"] for row in model.history]
    assert len(epochs) == len(range(4, steps_per_epoch, 4)) + 1
    assert epochs[-1] == 1 and all(0 < e < 1 for e in epochs[:-1]) and epochs == sorted(epochs)
    with open(tmp_path / "run" / "train_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(epochs) and rows[0]["train_minutes"] and rows[0]["val_loss"]


def test_a_resumed_run_may_change_its_budget_but_not_its_model(tmp_path):
    _run(tmp_path / "run", epochs=1)
    with pytest.raises(ConfigError, match="cannot change beta when resuming"):
        _run(tmp_path / "run", epochs=1, resume=True, beta=0.5)
    more = _run(tmp_path / "run", epochs=2, resume=True)
    assert [row["epoch"] for row in more.history] == [1, 2]


def test_a_latent_mixture_fits_separated_clusters():
    from molvae.latent_mixture import LatentMixture

    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-4.0, 0.0, 1.0], [4.0, 1.0, -1.0]])
    z = torch.cat([c + 0.3 * torch.randn(500, 3, generator=gen) for c in centres])
    mix = LatentMixture.fit(z, components=2, seed=0)
    found = mix.means[mix.means[:, 0].argsort()].float()
    torch.testing.assert_close(found, centres, atol=0.1, rtol=0)
    samples = mix.sample(2000, torch.Generator().manual_seed(1))
    assert ((samples[:, 0] > 0).float().mean() - 0.5).abs() < 0.05
    assert float(samples[:, 1:].std()) < 1.0  # covariances stay tight, not N(0, I)
    assert mix.log_prob(centres).min() > mix.log_prob(torch.zeros(1, 3)).max()


def _fit_prior_cli(model, tmp_path, n_molecules: int, *args: str):
    """``molvae fit-prior`` on a saved copy of ``model`` and ``n_molecules`` sample molecules: the run
    directory and the finished process."""
    import subprocess
    import sys

    run = tmp_path / "model"
    if not run.exists():
        model.save(run)
    data = tmp_path / "train.smi"
    data.write_text("\n".join(read_sample(n_molecules)) + "\n")
    proc = subprocess.run([sys.executable, "-m", "molvae", "fit-prior", str(run), str(data), *args],
                          capture_output=True, text=True)
    return run, proc


def test_fitted_latent_prior_is_saved_loaded_and_used(tiny_model, tmp_path):
    from molvae.latent_mixture import LATENT_PRIOR_FILE

    run, proc = _fit_prior_cli(tiny_model, tmp_path, 300, "--components", "3")
    assert proc.returncode == 0, proc.stderr
    assert (run / LATENT_PRIOR_FILE).exists()
    model = MolVAE.load(run)
    assert model.latent_prior is not None and len(model.latent_prior.weights) == 3
    fitted = model.sample(200, seed=0, progress=False)
    own = model.sample(200, seed=0, progress=False, prior="model")
    assert fitted["valid"].all() and own["valid"].all()
    assert fitted["smiles"].tolist() != own["smiles"].tolist()
    with pytest.raises(ConfigError, match="no fitted latent prior"):
        tiny_model.sample(5, prior="fitted")


def test_the_aggregate_posterior_prior_samples_around_its_molecules(tiny_model, tmp_path):
    """One diagonal component per molecule: samples lie within a few posterior widths of one of the
    molecules' means (not spread over N(0, I)); it survives a save/load (float16 as shipped) and drives
    sample(); and the CLI fits it."""
    from molvae.errors import CheckpointError
    from molvae.latent_mixture import LATENT_PRIOR_FILE, LatentMixture

    gen = torch.Generator().manual_seed(0)
    mu = 3.0 * torch.randn(50, 4, generator=gen)
    agg = LatentMixture.aggregate(mu, torch.full((50, 4), -6.0))  # sigma 0.05
    z = agg.sample(400, torch.Generator().manual_seed(1))
    assert float(torch.cdist(z.double(), mu.double()).min(1).values.max()) < 0.05 * 6
    assert agg.log_prob(mu[:3]).min() > agg.log_prob(torch.zeros(1, 4) + 10).max()
    half = LatentMixture(agg.weights.float(), agg.means.half(), None, 50, agg.scales.half())
    half.save(tmp_path / "agg.safetensors")
    back = LatentMixture.load(tmp_path / "agg.safetensors", latent_dim=4)
    assert back.scales is not None and back.chol is None and len(back.weights) == 50
    torch.testing.assert_close(back.means, mu.double(), atol=5e-3, rtol=1e-3)
    with pytest.raises(CheckpointError, match="latent size"):
        LatentMixture.load(tmp_path / "agg.safetensors", latent_dim=5)

    run, proc = _fit_prior_cli(tiny_model, tmp_path, 120, "--kind", "aggregate")
    assert proc.returncode == 0, proc.stderr
    model = MolVAE.load(run)
    assert model.latent_prior.scales is not None and len(model.latent_prior.weights) >= 100
    fitted = model.sample(100, seed=0, progress=False)
    assert fitted["valid"].all()
    assert fitted["smiles"].tolist() != model.sample(100, seed=0, progress=False, prior="model")["smiles"].tolist()
    assert (run / LATENT_PRIOR_FILE).exists()
    with pytest.raises(ConfigError, match="kind"):
        model.fit_latent_prior(read_sample(20), kind="kde", save=False)
    narrow = LatentMixture.aggregate(mu, torch.zeros(50, 4), scale=0.1)
    torch.testing.assert_close(narrow.scales, torch.full((50, 4), 0.1, dtype=torch.float64))
    _, bad = _fit_prior_cli(tiny_model, tmp_path, 120, "--kind", "aggregate", "--scale", "0")
    assert bad.returncode != 0 and "--scale must be in (0, 1]" in bad.stderr and "Traceback" not in bad.stderr


def test_progress_in_a_log_file_is_a_few_plain_lines(tmp_path):
    import subprocess
    import sys

    code = ("from molvae.progress import progress_bar\n"
            "bar = progress_bar(total=20000, desc='work')\n"
            "for i in range(20000):\n    bar.update(1)\n    bar.set_postfix(i=i, refresh=False)\n"
            "bar.close()\n")
    log = tmp_path / "err.log"
    with open(log, "w") as fh:
        subprocess.run([sys.executable, "-c", code], stderr=fh, check=True)
    text = log.read_text()
    assert "\r" not in text
    lines = text.strip().splitlines()
    assert 1 <= len(lines) <= 3 and "20000/20000" in lines[-1], lines


def test_a_committed_run_directory_is_restored_without_training(tmp_path):
    """A fresh clone holds only the checkpoint and logs: restore_run_files rebuilds the split, the novelty
    hashes and the best weights exactly as training wrote them, and refuses weights past the best."""
    import numpy as np

    from molvae.errors import CheckpointError
    from molvae.io import load_checkpoint, load_weights, save_checkpoint
    from molvae.train import restore_run_files

    data = read_sample(160)
    out = tmp_path / "run"
    _run(out, keep_best=True)
    kept = {name: (out / name).read_bytes() for name in ("val.smi", "train_hashes.npy")}
    weights = load_weights(out / "model.safetensors")
    for name in ("val.smi", "train_hashes.npy", "model.safetensors", "rejects.csv"):
        (out / name).unlink()
    restore_run_files(data, out, progress=False)
    assert {name: (out / name).read_bytes() for name in kept} == kept
    assert np.load(out / "train_hashes.npy").size > 100
    restored = load_weights(out / "model.safetensors")
    assert restored.keys() == weights.keys() and all(torch.equal(restored[k], weights[k]) for k in weights)
    MolVAE.load(out)  # a usable model directory again

    state = load_checkpoint(out / "checkpoint.pt")
    state["bad_epochs"] = 1
    save_checkpoint(state, out / "checkpoint.pt")
    (out / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="past the best"):
        restore_run_files(data, out, progress=False)
    with pytest.raises(CheckpointError, match="differ"):
        restore_run_files(data[:-5], out, progress=False)
