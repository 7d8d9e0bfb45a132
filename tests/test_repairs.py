"""Repair-aware generation: SELFIES strings the decoder had to alter are told apart and redrawn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from molvae.generate import Decoded, RepairWarning, sample_accepted
from molvae.vocab import selfies_repaired, selfies_to_smiles, smiles_to_selfies


def _repaired(s: str) -> bool:
    return selfies_repaired(s, selfies_to_smiles(s))


def test_strings_written_from_molecules_are_clean_and_grammar_repairs_are_caught():
    for smi in ("CCO", "CC(=O)Nc1ccc(O)cc1", "C1CC1C#N", "O=S(=O)(N)c1ccccc1", "C[C@H](N)C(=O)O"):
        assert not _repaired(smiles_to_selfies(smi)), smi
    # each of these is legal SELFIES that the decoder only reads by altering it:
    assert _repaired("[C][=C][=C][O][F][C]")  # F closes the chain: the last [C] is dropped
    assert _repaired("[O][#C]")  # a triple bond to O is weakened to a double one
    assert _repaired("[C][Ring1][C]")  # a ring bond with nothing to close on is dropped
    assert _repaired("[F][F][F]")  # the third F has no valence left to bond
    assert _repaired("")  # an empty decoding


class _Stream:
    """Latent points that number the draws: draw k is the point (k,)."""

    def __init__(self) -> None:
        self.drawn = 0

    def batches(self, n: int, cond=None):
        z = torch.arange(self.drawn, self.drawn + n, dtype=torch.float32)[:, None]
        self.drawn += n
        yield z


def _decode_accepting(every: int):
    """A decoder that accepts every ``every``-th draw; SMILES record the draw and the row's condition."""

    def decode(batches, total, skip_repaired):
        z = torch.cat(list(batches))
        draws = z[:, 0].long().tolist()
        cond = z[:, 1].long().tolist() if z.shape[1] > 1 else [None] * len(draws)
        repaired = [d % every != 0 for d in draws]
        smiles = [None if (r and skip_repaired) else f"{d}@{c}" for d, c, r in zip(draws, cond, repaired)]
        return Decoded(smiles, ["[C]"] * len(draws), repaired)

    return decode


def test_sample_accepted_fills_every_row_and_counts_what_it_decoded():
    rows, drawn, accepted = sample_accepted(_decode_accepting(3), _Stream(), 30)
    assert len(rows.smiles) == 30 and not any(rows.repaired)
    assert all(s is not None for s in rows.smiles)
    assert accepted >= 30 and drawn > 30
    first_round_ok = [i for i in range(30) if i % 3 == 0]  # accepted in round 1: kept at their rows
    assert [rows.smiles[i] for i in first_round_ok] == [f"{i}@None" for i in first_round_ok]
    assert len(set(rows.smiles)) == 30  # no draw used twice


def test_sample_accepted_keeps_each_row_at_its_own_condition():
    cond = np.arange(20, dtype=np.float32)[:, None] + 100  # row i asks for condition 100 + i
    rows, _, _ = sample_accepted(_decode_accepting(4), _Stream(), 20, cond)
    assert not any(rows.repaired)
    assert [int(s.split("@")[1]) for s in rows.smiles] == [100 + i for i in range(20)]


def test_keep_repaired_returns_the_raw_first_round():
    rows, drawn, accepted = sample_accepted(_decode_accepting(3), _Stream(), 30, keep_repaired=True)
    assert drawn == 30 and accepted == 10
    assert rows.repaired == [i % 3 != 0 for i in range(30)]


def test_rows_that_never_pass_are_kept_marked_with_a_warning():
    def never(batches, total, skip_repaired):
        n = sum(len(z) for z in batches)
        return Decoded([None] * n, ["[C][C][O]"] * n, [True] * n)

    with pytest.warns(RepairWarning, match="still SELFIES-repaired"):
        rows, drawn, accepted = sample_accepted(never, _Stream(), 5, max_rounds=3)
    assert rows.repaired == [True] * 5 and accepted == 0
    assert rows.smiles == ["CCO"] * 5  # post-processed in full, not dropped


def test_model_sample_returns_n_accepted_and_keep_repaired_the_old_stream(tiny_model):
    raw = tiny_model.sample(200, seed=3, progress=False, keep_repaired=True)
    again = tiny_model.sample(200, seed=3, progress=False, keep_repaired=True)
    assert raw["smiles"].tolist() == again["smiles"].tolist()
    # the raw stream is the prior's points decoded as they are, as before repairs were rejected
    z = tiny_model.prior_sample(200, seed=3)
    assert raw["smiles"].tolist() == tiny_model.decode(z, temperature=1.0, seed=3)
    flags = [_repaired(s) for s in raw["selfies"]]
    assert raw["repaired"].tolist() == flags and any(flags)
    assert raw.attrs["acceptance_rate"] == pytest.approx(1 - np.mean(flags))

    df = tiny_model.sample(200, seed=3, progress=False)
    assert len(df) == 200 and not df["repaired"].any() and df["valid"].all()
    assert not any(_repaired(s) for s in df["selfies"])
    clean = ~raw["repaired"].to_numpy()
    assert df["smiles"][clean].tolist() == raw["smiles"][clean].tolist()  # accepted draws keep their rows
    assert df.attrs["n_decoded"] > 200
    assert 0 < df.attrs["acceptance_rate"] < 1
    assert df["smiles"].tolist() == tiny_model.sample(200, seed=3, progress=False)["smiles"].tolist()


def test_decode_flags_repaired_points_rather_than_dropping_them(tiny_model):
    z = tiny_model.prior_sample(100, seed=1)
    df = tiny_model.decode(z, as_frame=True)
    assert list(df.columns) == ["smiles", "selfies", "repaired"] and len(df) == 100
    assert df["repaired"].tolist() == [_repaired(s) for s in df["selfies"]]
    assert df["smiles"].tolist() == tiny_model.decode(z)
    rec = tiny_model.reconstruct(["CCO", "c1ccccc1O"])
    assert "repaired" in rec.columns and len(rec) == 2
