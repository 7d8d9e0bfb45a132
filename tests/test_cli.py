"""The `molvae` command: each subcommand's output and exit codes; user errors are one line, no traceback."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from molvae.cli import main

from conftest import read_sample


def _one_line_error(capsys, code: int, needle: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert needle in last, err
    return last


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ["train", "sample", "encode", "decode", "reconstruct", "interpolate", "neighbours"]:
        assert cmd in out


def test_train_cli_then_sample_and_friends(tmp_path, capsys):
    data = tmp_path / "mols.csv"
    smiles = read_sample(150)
    pd.DataFrame({"id": range(152), "SMILES": smiles + ["C1CC", "C(C)(C)(C)(C)C"]}).to_csv(data, index=False)
    run = tmp_path / "run"
    code = main(["train", str(data), "--out", str(run), "--preset", "tiny", "--epochs", "2", "--quiet"])
    assert code == 0, capsys.readouterr().err
    rejects = pd.read_csv(run / "rejects.csv")
    assert sorted(rejects["line"]) == [152, 153]  # header is line 1
    assert rejects["reason"].str.contains("parse|valence", regex=True).all()

    out = tmp_path / "samples.smi"
    assert main(["sample", str(run), "-n", "50", "--out", str(out), "--quiet"]) == 0
    assert "validity 1.0000" in capsys.readouterr().err
    lines = out.read_text().splitlines()
    assert len(lines) == 50 and all(lines)

    csv = tmp_path / "samples.csv"
    assert main(["sample", str(run), "-n", "20", "--out", str(csv), "--quiet", "--seed", "3"]) == 0
    assert {"smiles", "valid", "unique", "novel", "repaired"} <= set(pd.read_csv(csv).columns)
    assert "acceptance" in capsys.readouterr().err and not pd.read_csv(csv)["repaired"].any()
    assert main(["sample", str(run), "-n", "200", "--out", str(csv), "--quiet", "--keep-repaired"]) == 0
    assert "repaired kept" in capsys.readouterr().err and pd.read_csv(csv)["repaired"].any()  # a 2-epoch model

    enc = tmp_path / "z.csv"
    assert main(["encode", str(run), str(data), "--out", str(enc)]) == 0
    z = pd.read_csv(enc)
    assert len(z) == 150 and "z0" in z.columns
    assert (tmp_path / "z.rejects.csv").exists()

    npy = tmp_path / "z.npy"
    assert main(["encode", str(run), str(data), "--out", str(npy)]) == 0
    np.testing.assert_allclose(np.load(npy), z[[c for c in z.columns if c.startswith("z")]].to_numpy(), rtol=1e-5)
    dec = tmp_path / "dec.csv"
    assert main(["decode", str(run), str(npy), "--out", str(dec)]) == 0
    assert pd.read_csv(dec)["valid"].all() and "repaired" in pd.read_csv(dec).columns

    rec = tmp_path / "rec.csv"
    assert main(["reconstruct", str(run), str(data), "--out", str(rec)]) == 0
    assert "exact reconstruction" in capsys.readouterr().err
    assert len(pd.read_csv(rec)) == 150

    assert main(["interpolate", str(run), smiles[0], smiles[1], "--steps", "4", "--out", str(tmp_path / "i.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "i.csv")) == 4
    assert main(["neighbours", str(run), smiles[0], "-n", "10", "--out", str(tmp_path / "n.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "n.csv")) >= 1

    capsys.readouterr()
    assert main(["sample", str(run), "-n", "3"]) == 0  # stdout gets a CSV
    assert capsys.readouterr().out.startswith("smiles,")


@pytest.mark.parametrize("case", ["empty", "missing_column", "no_usable", "missing_file", "bad_config"])
def test_train_cli_bad_input(tmp_path, capsys, case):
    path = tmp_path / "in.csv"
    extra = []
    if case == "empty":
        path.write_text("")
        needle = "empty"
    elif case == "missing_column":
        path.write_text("name,structure\na,CCO\n")
        needle = "column"
    elif case == "no_usable":
        path = tmp_path / "in.smi"
        path.write_text("C1CC\nxyz\n")
        needle = "no usable molecule"
    elif case == "missing_file":
        path = tmp_path / "absent.smi"
        needle = "absent.smi"
    else:
        path.write_text("SMILES\nCCO\nCCN\n")
        cfg = tmp_path / "cfg.toml"
        cfg.write_text("latent_size = 3\n")
        extra = ["--config", str(cfg)]
        needle = "unknown config key 'latent_size'"
    code = main(["train", str(path), "--out", str(tmp_path / "run"), "--preset", "tiny", "--quiet", *extra])
    _one_line_error(capsys, code, needle)


def test_generation_cli_bad_input(tiny_model, tmp_path, capsys):
    _one_line_error(capsys, main(["sample", str(tmp_path / "nomodel"), "-n", "5"]), "model directory not found")
    broken = tiny_model.save(tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    _one_line_error(capsys, main(["sample", str(broken), "-n", "5"]), "corrupt")
    _one_line_error(capsys, main(["interpolate", str(tiny_model.path), "CCO", "C1CC"]), "invalid SMILES")
    _one_line_error(capsys, main(["neighbours", str(tiny_model.path), "C" * 200]), "maximum")
    bad = tmp_path / "z.npy"
    np.save(bad, np.zeros((3, tiny_model.latent_dim + 1), dtype=np.float32))
    _one_line_error(capsys, main(["decode", str(tiny_model.path), str(bad)]), "shape")
    _one_line_error(capsys, main(["sample", str(tiny_model.path), "-n", "5", "--out", str(tmp_path / "x.xlsx")]),
                    "unsupported output")


def test_console_script_exit_code(tmp_path):
    """The installed entry point (python -m molvae) exits non-zero with one line for a user error."""
    proc = subprocess.run([sys.executable, "-m", "molvae", "sample", str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "not found" in proc.stderr
