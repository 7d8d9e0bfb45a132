"""Data in: reading every supported source, cleaning with a report, splits, writing, named datasets.

Downloads are tested against a server on 127.0.0.1 and a fake molsets wheel: no internet needed.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem

from molvae import data as D
from molvae import datasets  # the named datasets moved here from molvae.data
from molvae.cli import main
from molvae.errors import DataError
from molvae.vocab import Vocab

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "moses_sample.smi"
PENTAVALENT = "C(C)(C)(C)(C)C"  # sanitizes to RDKit's "Explicit valence ... greater than permitted"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------ shipped sample


def test_shipped_sample_is_clean_and_sized():
    """The sample ships 10k-20k molecules that all survive preparation (the quick start relies on it)."""
    lines = SAMPLE.read_text().splitlines()
    assert 10_000 <= len(lines) <= 20_000
    assert SAMPLE.stat().st_size < 1_000_000
    head = D.prepare_molecules(lines[:300])
    assert head.counts["kept"] == 300 and head.rejects.empty
    assert "MIT" in (ROOT / "data" / "README.md").read_text()


# ------------------------------------------------------------------------------ bad input


def test_invalid_smiles_reported_with_line_and_rdkit_reason(tmp_path):
    f = write(tmp_path / "m.smi", f"CCO\n\nc1ccccc1\n{PENTAVALENT}\nnot_a_smiles\n")
    data = D.prepare_molecules(f)
    assert data.smiles == ["CCO", "c1ccccc1"]
    assert data.lines == [1, 3]  # the blank line 2 is skipped but keeps the numbering
    assert data.counts == {"read": 4, "invalid": 2, "duplicate": 0, "too_long": 0, "not_encodable": 0,
                           "unknown_token": 0, "kept": 2}
    rej = data.rejects
    assert list(rej.columns) == ["line", "input", "reason"]
    assert rej["line"].tolist() == [4, 5]
    assert rej["input"].tolist() == [PENTAVALENT, "not_a_smiles"]
    assert "valence" in rej["reason"].iat[0].lower()  # RDKit's own words
    summary = data.summary()
    assert "2 invalid" in summary and "line 4" in summary and "line 5" in summary and "valence" in summary.lower()
    out = data.write_rejects(tmp_path / "run" / "rejects.csv")
    back = pd.read_csv(out)
    assert back["line"].tolist() == [4, 5] and back["input"].tolist() == [PENTAVALENT, "not_a_smiles"]


def test_rejects_file_written_even_when_empty(tmp_path):
    data = D.prepare_molecules(["CCO", "CCN"])
    out = data.write_rejects(tmp_path / "rejects.csv")
    assert out.read_text().strip() == "line,input,reason"


def test_unknown_column_lists_available_columns(tmp_path):
    f = write(tmp_path / "m.csv", "mol_smi,activity\nCCO,1\n")
    with pytest.raises(DataError) as err:
        D.read_smiles(f)
    msg = str(err.value)
    assert str(f) in msg and "mol_smi" in msg and "activity" in msg and "\n" not in msg
    with pytest.raises(DataError, match="no column 'smi'.*mol_smi, activity"):
        D.read_smiles(f, smiles_column="smi")
    assert D.read_smiles(f, smiles_column="mol_smi")["input"].tolist() == ["CCO"]


@pytest.mark.parametrize("name,text", [("e.smi", ""), ("blank.smi", "\n  \n\n"), ("header.csv", "smiles,name\n"),
                                       ("e.csv.gz", None)])
def test_empty_file(tmp_path, name, text):
    f = tmp_path / name
    if text is None:
        with gzip.open(f, "wt") as fh:
            fh.write("")
    else:
        f.write_text(text)
    with pytest.raises(DataError, match=r"file is empty"):
        D.prepare_molecules(f)


def test_missing_file_and_unsupported_type(tmp_path):
    with pytest.raises(DataError, match=r"nope\.smi: file not found"):
        D.read_smiles(tmp_path / "nope.smi")
    with pytest.raises(DataError, match=r"unsupported file type '\.xyz'"):
        D.read_smiles(write(tmp_path / "m.xyz", "CCO\n"))


def test_no_usable_molecule(tmp_path):
    f = write(tmp_path / "bad.smi", f"{PENTAVALENT}\nxx\nCCCCCCCCCCCC\n")
    with pytest.raises(DataError) as err:
        D.prepare_molecules(f, max_len=5)
    msg = str(err.value)
    assert msg.startswith(f"{f}: no usable molecule") and "3 rows read" in msg
    assert "2 invalid" in msg and "1 too long" in msg


def test_too_long():
    data = D.prepare_molecules(["CCO", "CCCCCCCC", "CC"], max_len=3)
    assert data.smiles == ["CCO", "CC"]
    assert data.counts["too_long"] == 1
    assert data.rejects["reason"].tolist() == ["too long: 8 tokens > max 3"]
    assert data.rejects["line"].tolist() == [2]


def test_unknown_token_named_or_skipped():
    vocab = Vocab.from_selfies(["[C][C][O]"])
    data = D.prepare_molecules(["CCO", "CCN", "OCC"], vocab=vocab, dedupe=False)
    assert data.smiles == ["CCO", "CCO"]
    assert data.counts["unknown_token"] == 1
    assert "[N]" in data.rejects["reason"].iat[0] and data.rejects["line"].iat[0] == 2
    skipped = D.prepare_molecules(["CCO", "CCN"], vocab=vocab, skip_unknown=True)
    assert skipped.counts["kept"] == 2 and skipped.counts["unknown_token"] == 0
    assert skipped.selfies == ["[C][C][O]", "[C][C]"] and skipped.unknown_skipped == 1


def test_duplicates_counted_on_canonical_smiles():
    data = D.prepare_molecules(["CCO", "OCC", "C(O)C", "c1ccccc1", "C1=CC=CC=C1"])
    assert data.smiles == ["CCO", "c1ccccc1"]
    assert data.counts["duplicate"] == 3
    assert data.rejects["reason"].tolist() == ["duplicate of line 1"] * 2 + ["duplicate of line 4"]
    kept_all = D.prepare_molecules(["CCO", "OCC"], dedupe=False)
    assert kept_all.smiles == ["CCO", "CCO"]


def test_counts_add_up():
    rows = ["CCO", "OCC", "xx", "CCCCCCCCCC", "CCN", None, ""]
    data = D.prepare_molecules(rows, max_len=6)
    c = data.counts
    assert c["read"] == len(rows) == c["kept"] + sum(c[k] for k in ("invalid", "duplicate", "too_long", "not_encodable", "unknown_token"))
    assert len(data.rejects) == c["read"] - c["kept"]


# ------------------------------------------------------------------------------ formats


def test_smi_with_names_and_header(tmp_path):
    f = write(tmp_path / "m.smi", "SMILES Name\nCCO ethanol\nc1ccccc1\tbenzene ring\nCCN\n")
    df = D.read_smiles(f)
    assert df["input"].tolist() == ["CCO", "c1ccccc1", "CCN"]
    assert df["line"].tolist() == [2, 3, 4]
    assert df["name"].tolist() == ["ethanol", "benzene ring", None]
    data = D.prepare_molecules(f)
    assert data.names == ["ethanol", "benzene ring", None]


def test_csv_auto_column_tsv_and_gzip(tmp_path):
    csv = write(tmp_path / "m.csv", "id,canonical_smiles,y\nm1,CCO,1\nm2,CCN,2\n")
    df = D.read_smiles(csv)
    assert df["input"].tolist() == ["CCO", "CCN"] and df["line"].tolist() == [2, 3] and df["name"].tolist() == ["m1", "m2"]
    tsv = write(tmp_path / "m.tsv", "Smiles\tscore\nCCO\t1\n\nCCN\t2\n")
    assert D.read_smiles(tsv)["line"].tolist() == [2, 4]
    for name in ("m.smi.gz", "m.csv.gz"):
        gz = tmp_path / name
        with gzip.open(gz, "wt") as fh:
            fh.write(("SMILES\n" if name.endswith(".csv.gz") else "") + "CCO\nc1ccccc1\n")
        assert D.prepare_molecules(gz).smiles == ["CCO", "c1ccccc1"]


def test_csv_multiline_quoted_smiles_like_zinc250k(tmp_path):
    """ZINC-250k's CSV has a newline inside each quoted SMILES: stripped, and line numbers stay right."""
    f = write(tmp_path / "zinc.csv", 'smiles,logP\n"CCO\n",0.1\n"c1ccccc1\n",1.2\n')
    df = D.read_smiles(f)
    assert df["input"].tolist() == ["CCO", "c1ccccc1"]
    assert df["line"].tolist() == [2, 4]


def test_sdf_records_and_unparsable_record(tmp_path):
    f = tmp_path / "m.sdf"
    writer = Chem.SDWriter(str(f))
    for smi, name in [("CCO", "ethanol"), ("c1ccccc1", "benzene")]:
        mol = Chem.MolFromSmiles(smi)
        mol.SetProp("_Name", name)
        writer.write(mol)
    writer.close()
    bad = Chem.MolFromSmiles(PENTAVALENT, sanitize=False)
    block = Chem.MolToMolBlock(bad, kekulize=False)
    f.write_text(f.read_text() + block + "$$$$\n")
    data = D.prepare_molecules(f)
    assert data.smiles == ["CCO", "c1ccccc1"] and data.names == ["ethanol", "benzene"] and data.lines == [1, 2]
    assert data.rejects["line"].tolist() == [3] and "valence" in data.rejects["reason"].iat[0].lower()
    gz = tmp_path / "m.sdf.gz"
    gz.write_bytes(gzip.compress(f.read_bytes()))
    assert D.prepare_molecules(gz).smiles == data.smiles


def test_in_memory_inputs():
    mols = [Chem.MolFromSmiles("OCC"), Chem.MolFromSmiles("c1ccccc1")]
    assert D.prepare_molecules(mols).smiles == ["CCO", "c1ccccc1"]
    assert D.prepare_molecules(pd.Series(["OCC", "xx"])).counts["invalid"] == 1
    df = pd.DataFrame({"name": ["a", "b"], "SMILES": ["OCC", "CCN"]})
    data = D.prepare_molecules(df)
    assert data.smiles == ["CCO", "CCN"] and data.names == ["a", "b"]
    mol_df = pd.DataFrame({"ROMol": mols})
    assert D.prepare_molecules(mol_df).smiles == ["CCO", "c1ccccc1"]
    listed = D.read_smiles(["CCO", None, "CCN"])
    assert listed["line"].tolist() == [1, 2, 3] and listed["input"].iat[1] is None
    with pytest.raises(DataError, match="no rows"):
        D.read_smiles([])
    with pytest.raises(DataError, match="available columns: x"):
        D.read_smiles(pd.DataFrame({"x": ["CCO"]}))


def test_stereo_kept_or_stripped():
    smi = ["C[C@H](N)O", "F/C=C/F"]
    kept = D.prepare_molecules(smi)
    assert "@" in kept.smiles[0] and "/" in kept.smiles[1] and "@" in kept.selfies[0]
    flat = D.prepare_molecules(smi, stereo=False)
    assert flat.smiles == ["CC(N)O", "FC=CF"]
    both = D.prepare_molecules(["C[C@H](N)O", "C[C@@H](N)O"], stereo=False)
    assert both.counts["duplicate"] == 1  # enantiomers collapse once stereo is stripped


def test_largest_fragment():
    smi = ["CC(=O)[O-].[Na+]", "c1ccccc1CN.Cl"]
    assert D.prepare_molecules(smi).smiles == ["CC(=O)[O-].[Na+]", "Cl.NCc1ccccc1"]
    assert D.prepare_molecules(smi, largest_fragment=True).smiles == ["CC(=O)[O-]", "NCc1ccccc1"]


# ------------------------------------------------------------------------------ split, parallel, write


def test_split_train_val_deterministic():
    a_tr, a_va = D.split_train_val(1000, 0.1, seed=0)
    b_tr, b_va = D.split_train_val(1000, 0.1, seed=0)
    c_tr, c_va = D.split_train_val(1000, 0.1, seed=1)
    assert np.array_equal(a_tr, b_tr) and np.array_equal(a_va, b_va)
    assert not np.array_equal(a_va, c_va)
    assert len(a_va) == 100 and len(a_tr) == 900
    assert np.array_equal(np.sort(np.concatenate([a_tr, a_va])), np.arange(1000))
    tr, va = D.split_train_val(5, 0.01, seed=0)
    assert len(va) == 1 and len(tr) == 4
    assert len(D.split_train_val(10, 0.0, seed=0)[1]) == 0
    with pytest.raises(ValueError):
        D.split_train_val(10, 1.0, seed=0)


def test_parallel_equals_serial():
    rows = SAMPLE.read_text().splitlines()[:900]
    rows[10], rows[500] = PENTAVALENT, "xx"
    rows[700] = rows[3]  # a duplicate across chunks
    serial = D.prepare_molecules(rows, max_len=30, workers=1)
    parallel = D.prepare_molecules(rows, max_len=30, workers=2)
    assert serial.counts["invalid"] == 2 and serial.counts["duplicate"] == 1 and serial.counts["too_long"] > 0
    assert parallel.smiles == serial.smiles and parallel.selfies == serial.selfies and parallel.lines == serial.lines
    assert parallel.counts == serial.counts
    pd.testing.assert_frame_equal(parallel.rejects, serial.rejects)


def test_write_molecules_formats(tmp_path, capsys):
    df = pd.DataFrame({"smiles": ["CCO", None, "CCN"], "name": ["a", "b", None], "valid": [True, False, True]})
    D.write_molecules(df, tmp_path / "o.smi")
    assert (tmp_path / "o.smi").read_text() == "CCO a\n\nCCN\n"
    D.write_molecules(df[["smiles"]], tmp_path / "o.smi.gz")
    assert gzip.decompress((tmp_path / "o.smi.gz").read_bytes()).decode() == "CCO\n\nCCN\n"
    D.write_molecules(df, tmp_path / "sub" / "o.csv")
    back = pd.read_csv(tmp_path / "sub" / "o.csv")
    assert list(back.columns) == ["smiles", "name", "valid"] and back["valid"].tolist() == [True, False, True]
    D.write_molecules(df, tmp_path / "o.tsv.gz")
    assert pd.read_csv(tmp_path / "o.tsv.gz", sep="\t")["smiles"].iat[2] == "CCN"
    D.write_molecules(df, "-")
    assert capsys.readouterr().out.splitlines()[0] == "smiles,name,valid"
    with pytest.raises(DataError, match="unsupported output type"):
        D.write_molecules(df, tmp_path / "o.xlsx")
    # what write_molecules writes, read_smiles reads back with the same line numbers
    again = D.read_smiles(tmp_path / "o.smi")
    assert again["line"].tolist() == [1, 3] and again["name"].tolist() == ["a", None]


# ------------------------------------------------------------------------------ downloads (loopback only)


@pytest.fixture()
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; ``hits`` counts GET requests per path."""
    root = tmp_path / "www"
    root.mkdir()
    hits: dict[str, int] = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def do_GET(self):
            hits[self.path] = hits.get(self.path, 0) + 1
            super().do_GET()

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


ZINC_TEXT = 'smiles,logP,qed,SAS\n"CCO\n",0.1,0.4,1.0\n"c1ccccc1\n",1.7,0.4,1.0\n"CCN\n",0.2,0.4,1.0\n'


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_zinc_download_cached_and_checked(server, tmp_path):
    root, base, hits = server
    (root / "zinc.csv").write_text(ZINC_TEXT)
    good = {"zinc250k.csv": sha(ZINC_TEXT.encode())}
    dest = tmp_path / "cache"
    (path,) = D.download_dataset("zinc250k", dest, url=f"{base}/zinc.csv", checksums=good, expected_rows=3)
    assert path == dest / "zinc250k.csv" and path.read_text() == ZINC_TEXT
    assert not list(dest.glob("*.part"))  # atomic: no temporary left behind
    D.download_dataset("zinc250k", dest, url=f"{base}/zinc.csv", checksums=good, expected_rows=3)
    assert hits["/zinc.csv"] == 1  # cached: the second call did not download
    assert D.prepare_molecules(path).smiles == ["CCO", "c1ccccc1", "CCN"]

    with pytest.raises(DataError, match="checksum mismatch"):
        D.download_dataset("zinc250k", tmp_path / "c2", url=f"{base}/zinc.csv",
                           checksums={"zinc250k.csv": "0" * 64}, expected_rows=3)
    assert not (tmp_path / "c2" / "zinc250k.csv").exists()  # the bad file is removed
    with pytest.raises(DataError, match="3 rows, expected 5"):
        D.download_dataset("zinc250k", tmp_path / "c3", url=f"{base}/zinc.csv", checksums=good, expected_rows=5)
    assert not (tmp_path / "c3" / "zinc250k.csv").exists()
    with pytest.raises(DataError, match=r"could not download .*404"):
        D.download_dataset("zinc250k", tmp_path / "c4", url=f"{base}/missing.csv")


def make_wheel(path: Path, payloads: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("moses/__init__.py", "")
        for member, data in payloads.items():
            zf.writestr(member, data)
        zf.writestr("molsets-0.3.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: molsets\nVersion: 0.3.1\n")
        zf.writestr("molsets-0.3.1.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("molsets-0.3.1.dist-info/RECORD", "")
    return path


def fake_moses() -> tuple[dict[str, bytes], dict[str, str]]:
    payloads, sums = {}, {}
    for member, (local, _, _) in D.MOSES_FILES.items():
        blob = gzip.compress(f"SMILES\nCCO\nCC{local[6]}\n".encode(), mtime=0)
        payloads[member], sums[local] = blob, sha(blob)
    return payloads, sums


def test_moses_from_wheel_url_and_pip(server, tmp_path):
    root, base, hits = server
    payloads, sums = fake_moses()
    wheel = make_wheel(root / "molsets-0.3.1-py3-none-any.whl", payloads)
    paths = D.download_dataset("moses", tmp_path / "a", wheel=f"{base}/{wheel.name}", checksums=sums)
    assert [p.name for p in paths] == ["moses_train.csv.gz", "moses_test.csv.gz", "moses_test_scaffolds.csv.gz"]
    assert paths[0].read_bytes() == payloads["moses/dataset/data/train.csv.gz"]
    D.download_dataset("moses", tmp_path / "a", wheel=f"{base}/{wheel.name}", checksums=sums)
    assert hits[f"/{wheel.name}"] == 1  # cached
    # the real code path: `pip download --no-deps molsets==0.3.1`, here offline against a local index folder
    paths = D.download_dataset("moses", tmp_path / "b", pip_args=["--no-index", "--find-links", str(root)], checksums=sums)
    assert all(p.exists() for p in paths)
    with pytest.raises(DataError, match="checksum mismatch"):
        D.download_dataset("moses", tmp_path / "c", wheel=wheel)  # the real checksums do not match the fake
    assert not list((tmp_path / "c").iterdir())


def test_named_dataset_cache(tmp_path, monkeypatch, server):
    root, base, hits = server
    (root / "zinc.csv").write_text(ZINC_TEXT)
    monkeypatch.setenv("MOLVAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MOLVAE_ZINC250K_URL", f"{base}/zinc.csv")
    with pytest.raises(DataError, match="molvae data get zinc250k"):
        D.named_dataset("zinc250k", download=False)
    monkeypatch.setattr(datasets, "ZINC250K_SHA256", sha(ZINC_TEXT.encode()))
    monkeypatch.setattr(datasets, "ZINC250K_ROWS", 3)
    path = D.named_dataset("zinc250k")
    assert path == tmp_path / "cache" / "zinc250k.csv" and path.exists()
    assert D.read_smiles("zinc250k")["input"].tolist() == ["CCO", "c1ccccc1", "CCN"]  # names work as sources
    assert hits["/zinc.csv"] == 1
    with pytest.raises(DataError, match="unknown dataset"):
        D.named_dataset("chembl")


# ------------------------------------------------------------------------------ CLI


def test_cli_data_get_exit_codes(server, tmp_path, capsys):
    root, base, _ = server
    payloads, sums = fake_moses()
    wheel = make_wheel(root / "molsets-0.3.1-py3-none-any.whl", payloads)
    # the fake wheel does not match the recorded MOSES checksums: one-line error, exit 1, nothing left
    assert main(["data", "get", "moses", str(tmp_path / "m"), "--wheel", str(wheel), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("molvae data: error: ") and "checksum mismatch" in err and err.count("\n") == 1
    (root / "zinc.csv").write_text(ZINC_TEXT)
    assert main(["data", "get", "zinc250k", str(tmp_path / "z"), "--url", f"{base}/nothing.csv", "-q"]) == 1
    err = capsys.readouterr().err
    assert "could not download" in err and err.count("\n") == 1


def test_cli_data_get_success(server, tmp_path, capsys, monkeypatch):
    root, base, _ = server
    (root / "zinc.csv").write_text(ZINC_TEXT)
    monkeypatch.setattr(datasets, "ZINC250K_SHA256", sha(ZINC_TEXT.encode()))
    monkeypatch.setattr(datasets, "ZINC250K_ROWS", 3)
    assert main(["data", "get", "zinc250k", str(tmp_path / "z"), "--url", f"{base}/zinc.csv", "-q"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "z" / "zinc250k.csv")


def test_cli_data_prepare(tmp_path, capsys):
    f = write(tmp_path / "m.smi", f"CCO a\n{PENTAVALENT} b\nOCC c\n")
    assert main(["data", "prepare", str(f), "--out", str(tmp_path / "o.csv"), "--rejects", str(tmp_path / "r.csv"), "-q"]) == 0
    err = capsys.readouterr().err
    assert "1 kept, 1 invalid, 1 duplicate" in err
    assert pd.read_csv(tmp_path / "o.csv")["smiles"].tolist() == ["CCO"]
    assert pd.read_csv(tmp_path / "r.csv")["line"].tolist() == [2, 3]
    assert main(["data", "prepare", str(tmp_path / "missing.smi")]) == 1
    assert capsys.readouterr().err.strip() == f"molvae data: error: {tmp_path / 'missing.smi'}: file not found"
