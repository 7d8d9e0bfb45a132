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
    from molvae.api import build_config
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
