"""molvae.report: every figure is written, non-empty and a PNG; the report page links them; the CLI."""

from __future__ import annotations

import pytest

from molvae import report as R
from molvae.cli import main
from molvae.errors import DataError

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    return path.exists() and path.stat().st_size > 2000 and path.read_bytes()[:8] == PNG


def test_property_distributions(sample_smiles, tmp_path):
    out = R.plot_property_distributions(sample_smiles[:120] + ["xx", None], tmp_path / "p.png",
                                        ref=sample_smiles[500:650])
    assert out == tmp_path / "p.png" and _is_png(out)


def test_property_distributions_need_a_valid_molecule(tmp_path):
    with pytest.raises(DataError, match="no valid molecule"):
        R.plot_property_distributions(["xx", ""], tmp_path / "p.png")


def test_molecule_grid(sample_smiles, tmp_path):
    out = R.plot_molecule_grid(sample_smiles[:14] + ["C1CC"], tmp_path / "grid.png", n=12, per_row=4)
    assert _is_png(out)


def test_training_curves_from_a_run(tiny_model, tmp_path):
    assert _is_png(R.plot_training_curves(tiny_model.path, tmp_path / "curves.png"))
    with pytest.raises(DataError, match="training log not found"):
        R.plot_training_curves(tmp_path, tmp_path / "x.png")


def test_latent_pca(tiny_model, sample_smiles, tmp_path):
    out = R.plot_latent_pca(tiny_model, sample_smiles[:150], tmp_path / "pca.png", color_by="qed")
    assert _is_png(out)


def test_interpolation_strip(tiny_model, sample_smiles, tmp_path):
    path = tiny_model.interpolate(sample_smiles[0], sample_smiles[1], steps=5)
    assert _is_png(R.plot_interpolation(path, tmp_path / "a.png"))
    csv = tmp_path / "path.csv"
    path.assign(smiles=[None] + path["smiles"].tolist()[1:]).to_csv(csv, index=False)  # an invalid step
    assert _is_png(R.plot_interpolation(csv, tmp_path / "b.png"))
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="expected columns"):
        R.plot_interpolation(tmp_path / "bad.csv", tmp_path / "c.png")


def test_report_for_a_run(tiny_model, sample_smiles, tmp_path):
    ref = tmp_path / "ref.smi"
    ref.write_text("\n".join(sample_smiles[:80]) + "\n")
    index = R.write_report(tiny_model.path, tmp_path / "rep", ref=ref, n_sample=150, n_jobs=1, device="cpu",
                           cache_dir=tmp_path / "cache", progress=False)
    page = index.read_text()
    for name in ("training_curves", "properties", "molecules", "latent_pca", "interpolation"):
        assert _is_png(tmp_path / "rep" / f"{name}.png"), name
        assert f"{name}.png" in page
    assert "FCD/Test" in page and (tmp_path / "rep" / "metrics.json").exists()


def test_cli_report_generated_file(sample_smiles, tmp_path, capsys):
    gen = tmp_path / "gen.smi"
    gen.write_text("\n".join(sample_smiles[:60]) + "\n")
    rc = main(["report", str(gen), "--out", str(tmp_path / "r"), "--quiet"])
    assert rc == 0
    assert _is_png(tmp_path / "r" / "properties.png") and _is_png(tmp_path / "r" / "molecules.png")
    assert "index.html" in capsys.readouterr().err


def test_cli_report_missing_source(tmp_path, capsys):
    rc = main(["report", str(tmp_path / "nope.smi"), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("molvae report: error:") and "Traceback" not in err
