"""Shipped models (molvae/pretrained/NAME): found by name everywhere; each loads, samples valid molecules
and reproduces the encodings recorded when it was shipped."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import Descriptors

from molvae import MolVAE
from molvae.checkpoint import PRETRAINED_ROOT, available_pretrained


def test_a_shipped_name_works_wherever_a_model_directory_does(tiny_model, tmp_path, monkeypatch, capsys):
    import molvae.checkpoint as checkpoint
    from molvae.cli import main

    root = tmp_path / "pretrained"
    tiny_model.save(root / "demo")
    monkeypatch.setattr(checkpoint, "PRETRAINED_ROOT", root)
    monkeypatch.chdir(tmp_path)
    assert checkpoint.available_pretrained() == ["demo"]
    assert MolVAE.load("demo").vocab == tiny_model.vocab
    assert main(["sample", "demo", "-n", "5", "--quiet", "--out", str(tmp_path / "s.csv")]) == 0
    assert main(["optimize", "demo", "--objective", "qed", "--budget", "20", "--quiet",
                 "--out", str(tmp_path / "opt")]) == 0
    assert (tmp_path / "opt" / "calls.csv").exists()
    assert main(["report", "demo", "--out", str(tmp_path / "report"), "--n-sample", "20", "--quiet"]) == 0
    assert (tmp_path / "report" / "index.html").exists()
    (tmp_path / "in.smi").write_text("CCO\nc1ccccc1\n")
    assert main(["encode", "demo", str(tmp_path / "in.smi"), "--out", str(tmp_path / "z.csv")]) == 0
    assert (tmp_path / "z.csv").exists()


@pytest.mark.parametrize("name", available_pretrained())
def test_shipped_model_samples_valid_molecules_and_reproduces_its_encodings(name):
    model = MolVAE.pretrained(name, device="cpu")
    samples = model.sample(300, seed=0, progress=False)
    assert samples["valid"].all()
    mols = [Chem.MolFromSmiles(s) for s in samples["smiles"]]  # no radicals: ZINC and MOSES have none
    assert not [s for s, m in zip(samples["smiles"], mols) if Descriptors.NumRadicalElectrons(m)]
    recorded = json.loads((PRETRAINED_ROOT / name / "reference_encodings.json").read_text())
    z = model.encode(recorded["molecules"])
    np.testing.assert_allclose(z, np.asarray(recorded["latent_means"]), atol=2e-4)
    assert (PRETRAINED_ROOT / name / "MODEL_CARD.md").exists()


def test_decoded_hydrogen_count_tokens_do_not_leave_radicals():
    """``[CH1]`` between two atoms would read as a radical (``C[CH]O``); generated molecules get the
    hydrogen in its place, and a molecule without one is untouched."""
    from molvae.generate import postprocess

    smiles, repaired = postprocess(["[C][CH1][O]", "[C][C@@H1][N]", "[C][C][O]", ""])
    assert smiles == ["CCO", "CCN", "CCO", None]
    assert repaired == [False, False, False, True]  # written as the decoder reads them; empty counts as repaired


def test_keep_radicals_leaves_unpaired_electrons_for_data_that_has_them():
    """A model trained on genuine radicals (``keep_radicals``) keeps them in what it generates."""
    from molvae.generate import postprocess

    assert postprocess(["[C][CH1][O]", "[C][C][O]"], keep_radicals=True)[0] == ["C[CH]O", "CCO"]
    model = MolVAE.pretrained("zinc250k", device="cpu")
    model.config = model.config.replace(keep_radicals=True)
    samples = model.sample(100, seed=0, progress=False)
    assert samples["valid"].all()
    radicals = sum(Descriptors.NumRadicalElectrons(Chem.MolFromSmiles(s)) > 0 for s in samples["smiles"])
    assert radicals > 0  # about a quarter of zinc250k's raw decodings carry one
