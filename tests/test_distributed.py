"""Data-parallel training under torchrun (gloo on CPU): two ranks reproduce one process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from molvae.io import load_weights

from conftest import read_sample

# fp32 so that the only difference between 1 and 2 processes is the order of a few additions
OPTIONS = ["--preset", "tiny", "--epochs", "2", "--batch-size", "32", "--quiet", "--set", "precision=\"fp32\"",
           "--set", "keep_best=false", "--set", "word_dropout=0.2", "--set", "checkpoint_every=3", "--threads", "1"]


def _run(args: list[str], nproc: int, tmp_path) -> None:
    if nproc == 1:
        cmd = [sys.executable, "-m", "molvae", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "molvae", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _assert_same_weights(a, b) -> None:
    wa, wb = load_weights(a / "model.safetensors"), load_weights(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5, msg=k)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp") / "mols.smi"
    path.write_text("\n".join(read_sample(160)) + "\n")
    return path


def test_ranks_split_each_batch_without_overlap():
    from molvae.train import Ranks

    batch = torch.arange(37)
    shares = [batch[Ranks(r, 3).rows()] for r in range(3)]
    assert sorted(torch.cat(shares).tolist()) == batch.tolist()
    assert [len(s) for s in shares] == [13, 12, 12]


def test_two_ranks_match_one_process(data, tmp_path):
    _run(["train", str(data), "--out", str(tmp_path / "one"), *OPTIONS], 1, tmp_path)
    _run(["train", str(data), "--out", str(tmp_path / "two"), *OPTIONS], 2, tmp_path)
    _assert_same_weights(tmp_path / "one", tmp_path / "two")
    # only rank 0 writes: one log with one row per epoch
    log = (tmp_path / "two" / "train_log.csv").read_text().strip().splitlines()
    assert len(log) == 3


def test_resume_with_another_world_size(data, tmp_path):
    """A run killed under one process resumes under two and ends where an uninterrupted run ends."""
    from molvae.model import build_config
    from molvae.train import _Interrupted, train

    _run(["train", str(data), "--out", str(tmp_path / "full"), *OPTIONS], 1, tmp_path)
    config = build_config(None, "tiny", {"epochs": 2, "batch_size": 32, "precision": "fp32", "keep_best": False,
                                         "word_dropout": 0.2, "checkpoint_every": 3})
    with pytest.raises(_Interrupted):
        train(str(data), config, out_dir=tmp_path / "cut", progress=False, _crash_at_step=5)
    _run(["train", str(data), "--out", str(tmp_path / "cut"), "--resume", *OPTIONS], 2, tmp_path)
    _assert_same_weights(tmp_path / "full", tmp_path / "cut")
