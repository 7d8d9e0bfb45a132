"""molvae.metrics: MOSES / GuacaMol values against straightforward independent computations,
identities, invalid input, the reference cache, and the ``molvae evaluate`` command."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem, DataStructs, RDLogger
from rdkit.Chem import AllChem, Crippen

from molvae import metrics as M
from molvae.cli import main
from molvae.errors import DataError

RDLogger.DisableLog("rdApp.*")

INVALID = [None, "", "C1CC", "not a smiles", "CC(C)(C)(C)(C)C"]
FLAGGED = [  # molecules that fail the MOSES filters, each for a different reason
    "C[N+](C)(C)C",  # charge
    "CC[Si](C)(C)C",  # atom not allowed
    "C1CCCCCCC1",  # ring of 8
    "c1ccccc1N=Nc1ccccc1",  # azo: MCF and PAINS
    "O=C1C=CC(=O)C=C1",  # quinone: PAINS
    "CCCCC=O",  # aldehyde: MCF
]


@pytest.fixture(scope="module")
def sets(sample_smiles):
    gen = sample_smiles[:150] + sample_smiles[:15] + FLAGGED + INVALID
    ref = sample_smiles[150:450]
    train = sample_smiles[100:1000]
    return gen, ref, train


@pytest.fixture(scope="module")
def result(sets, tmp_path_factory):
    gen, ref, train = sets
    cache = tmp_path_factory.mktemp("metrics_cache")
    return M.evaluate(gen, ref=ref, train=train, ref_scaffolds=ref[:200], n_jobs=1, device="cpu",
                      cache_dir=cache, progress=False)


# ---------------------------------------------------------------------------------------------- helpers

def _mol(s):
    return Chem.MolFromSmiles(s) if s else None


def _valid_canonical(smiles):
    return [Chem.MolToSmiles(m) for m in (_mol(s) for s in smiles) if m is not None]


def _fps(smiles):
    return [AllChem.GetMorganFingerprintAsBitVect(Chem.MolFromSmiles(s), 2, nBits=1024) for s in smiles]


def _cos(a: Counter, b: Counter) -> float:
    keys = sorted(set(a) | set(b))
    x = np.array([a[k] for k in keys], float)
    y = np.array([b[k] for k in keys], float)
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


def _filters_slow(mol, alerts=[]) -> bool:
    """MOSES mol_passes_filters written out plainly: every alert matched, no screening."""
    if not alerts:
        with open(Path(M.__file__).parent.with_name("data") / "moses_filters.csv", newline="") as fh:
            alerts.extend(Chem.MolFromSmarts(r["smarts"]) for r in csv.DictReader(fh))
    if any(len(r) >= 8 for r in mol.GetRingInfo().AtomRings()):
        return False
    if any(a.GetFormalCharge() for a in mol.GetAtoms()):
        return False
    if any(a.GetSymbol() not in {"C", "N", "S", "O", "F", "Cl", "Br", "H"} for a in mol.GetAtoms()):
        return False
    h = Chem.AddHs(mol)
    return not any(h.HasSubstructMatch(q) for q in alerts)


# ---------------------------------------------------------------------------------------------- values

def test_counts_validity_uniqueness_novelty(sets, result):
    gen, ref, train = sets
    canon = _valid_canonical(gen)
    assert result["n_generated"] == len(gen)
    assert result["n_valid"] == len(canon) == len(gen) - len(INVALID)
    assert result["validity"] == pytest.approx(len(canon) / len(gen))
    assert result["unique@1000"] == pytest.approx(len(set(canon)) / len(canon))
    assert result["unique@1000"] < 1  # the repeats are there
    train_set = set(_valid_canonical(train))
    assert result["novelty"] == pytest.approx(len(set(canon) - train_set) / len(set(canon)))
    assert 0 < result["novelty"] < 1


def test_internal_diversity_snn_frag_scaf_filters_match_plain_rdkit(sets, result):
    gen, ref, _ = sets
    canon = _valid_canonical(gen)
    fps, ref_fps = _fps(canon), _fps(ref)
    sims = np.array([DataStructs.BulkTanimotoSimilarity(f, fps) for f in fps])
    assert result["IntDiv"] == pytest.approx(1 - sims.mean(axis=1).mean(), abs=1e-6)
    assert result["IntDiv2"] == pytest.approx(1 - np.sqrt((sims ** 2).mean(axis=1)).mean(), abs=1e-6)
    snn = np.mean([max(DataStructs.BulkTanimotoSimilarity(f, ref_fps)) for f in fps])
    assert result["SNN/Test"] == pytest.approx(snn, abs=1e-6)

    def frags(smiles):
        c = Counter()
        for s in smiles:
            c.update(Chem.MolToSmiles(AllChem.FragmentOnBRICSBonds(Chem.MolFromSmiles(s))).split("."))
        return c

    assert result["Frag/Test"] == pytest.approx(_cos(frags(ref), frags(canon)), abs=1e-9)

    def scaffolds(smiles):
        from rdkit.Chem.Scaffolds import MurckoScaffold

        c = Counter()
        for s in smiles:
            sc = MurckoScaffold.GetScaffoldForMol(Chem.MolFromSmiles(s))
            if sc.GetRingInfo().NumRings() >= 2:
                c[Chem.MolToSmiles(sc)] += 1
        return c

    assert result["Scaf/Test"] == pytest.approx(_cos(scaffolds(ref), scaffolds(canon)), abs=1e-9)
    passes = [_filters_slow(Chem.MolFromSmiles(s)) for s in canon]
    assert result["Filters"] == pytest.approx(np.mean(passes))
    assert result["Filters"] < 1


def test_property_distance_matches_scipy(sets, result):
    from scipy.stats import wasserstein_distance

    gen, ref, _ = sets
    logp = lambda smiles: [Crippen.MolLogP(Chem.MolFromSmiles(s)) for s in smiles]  # noqa: E731
    assert result["logP"] == pytest.approx(wasserstein_distance(logp(_valid_canonical(gen)), logp(ref)), abs=1e-9)
    assert result["SA"] > 0 and result["QED"] > 0 and result["weight"] > 0


def test_fcd_matches_fcd_torch(sets, result):
    from fcd_torch import FCD

    gen, ref, _ = sets
    expected = FCD(device="cpu", n_jobs=1)(gen=_valid_canonical(gen), ref=ref)
    assert result["FCD/Test"] == pytest.approx(expected, rel=1e-3)
    assert result["guacamol_fcd_score"] == pytest.approx(np.exp(-0.2 * expected), rel=1e-2)


def test_guacamol_scores(sets, result):
    gen, _, train = sets
    valid = [s for s in gen if _mol(s) is not None]
    nostereo = [Chem.MolToSmiles(_mol(s), isomericSmiles=False) for s in valid]
    assert result["guacamol_validity"] == pytest.approx(len(valid) / len(gen))
    assert result["guacamol_uniqueness"] == pytest.approx(len(set(nostereo)) / len(valid))
    train_ns = {Chem.MolToSmiles(_mol(s), isomericSmiles=False) for s in train}
    unique = list(dict.fromkeys(_valid_canonical(gen)))
    novel = {Chem.MolToSmiles(_mol(s), isomericSmiles=False) for s in unique} - train_ns
    assert result["guacamol_novelty"] == pytest.approx(len(novel) / len(unique))
    assert 0 < result["guacamol_kl_score"] < 1


def test_reference_against_itself(sample_smiles, tmp_path):
    """Identities: a set scored against itself is its own nearest neighbour, with the same
    fragments, scaffolds, properties and ChemNet statistics."""
    ref = sample_smiles[:250]
    m = M.evaluate(ref, ref=ref, train=ref, n_jobs=1, device="cpu", cache_dir=tmp_path, progress=False)
    assert m["validity"] == 1.0 and m["novelty"] == 0.0 and m["guacamol_novelty"] == 0.0
    assert m["SNN/Test"] == pytest.approx(1.0)
    assert m["Frag/Test"] == pytest.approx(1.0) and m["Scaf/Test"] == pytest.approx(1.0)
    assert abs(m["FCD/Test"]) < 1e-3
    assert m["logP"] == pytest.approx(0.0, abs=1e-12) and m["weight"] == pytest.approx(0.0, abs=1e-12)
    assert m["guacamol_kl_score"] == pytest.approx(1.0, abs=1e-6)
    assert m["guacamol_fcd_score"] == pytest.approx(1.0, abs=1e-3)


# ---------------------------------------------------------------------------------------------- building blocks

@pytest.mark.parametrize("mode", ["max", "sums", "max_other"])
def test_tanimoto_reduce_matches_brute_force(mode):
    rng = np.random.default_rng(0)
    a = (rng.random((37, 64)) < 0.2).astype(np.uint8)
    b = (rng.random((53, 64)) < 0.2).astype(np.uint8)
    a[0] = 0
    b[:2] = 0  # empty fingerprints: similarity 1 to each other, as MOSES has it
    b[5] = a[3]
    if mode == "max_other":
        b = a
    inter = a.astype(float) @ b.T.astype(float)
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    sim = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    w = rng.integers(1, 4, len(b)).astype(float)
    res = M._tanimoto_reduce(np.packbits(a, axis=1), np.packbits(b, axis=1), mode, w, col_block=16)
    if mode == "max":
        np.testing.assert_allclose(res[0], sim.max(1), rtol=1e-6)
    elif mode == "sums":
        np.testing.assert_allclose(res[0], sim @ w, rtol=1e-6)
        np.testing.assert_allclose(res[1], (sim ** 2) @ w, rtol=1e-6)
    else:
        np.fill_diagonal(sim, 0)
        np.testing.assert_allclose(res[0], sim.max(1), rtol=1e-6)


def _brute_tanimoto(a, b):
    inter = a.astype(float) @ b.T.astype(float)
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


@pytest.mark.parametrize("bits", [1024, 4096])
def test_tanimoto_popcount_groups_and_process_split_match_brute_force(bits, monkeypatch):
    """Many popcount groups, row tiles, empty rows, duplicates, and columns split over two worker
    processes: the same float32 values as dividing every pair."""
    rng = np.random.default_rng(bits)
    density = rng.uniform(0.005, 0.08, size=(300, 1))
    a = (rng.random((300, bits)) < density).astype(np.uint8)
    a[0], a[7] = 0, a[3]
    b = np.concatenate([a[::-1], (rng.random((500, bits)) < 0.03).astype(np.uint8)])
    pa, pb = np.packbits(a, axis=1), np.packbits(b, axis=1)
    sim = _brute_tanimoto(a, b).astype(np.float32)
    w = rng.integers(1, 4, len(a)).astype(float)
    monkeypatch.setattr(M._similarity, "TANIMOTO_POOL_MIN", 0)  # use the pool even for these small sets
    monkeypatch.setattr(M._similarity, "ROW_TILE", 32)  # and several row tiles
    with M._Runner(2, {"a": pa, "b": pb, "w": w}) as runner:
        (best,) = M._tanimoto(runner, "a", "b", "max", None, "cpu", False, "")
        (other,) = M._tanimoto(runner, "a", "a", "max_other", None, "cpu", False, "")
        s1, s2 = M._tanimoto(runner, "a", "a", "sums", "w", "cpu", False, "")
    np.testing.assert_array_equal(best, sim.max(1))
    self_sim = _brute_tanimoto(a, a).astype(np.float32)
    np.testing.assert_allclose(s1, self_sim.astype(float) @ w, rtol=1e-12)
    np.testing.assert_allclose(s2, (self_sim.astype(float) ** 2) @ w, rtol=1e-12)
    np.fill_diagonal(self_sim, 0)
    np.testing.assert_array_equal(other, self_sim.max(1))


def test_hash_packing_round_trip():
    rng = np.random.default_rng(3)
    h = np.unique(np.r_[rng.integers(0, 2**63, 5000, dtype=np.uint64) * np.uint64(2),
                        np.array([0, 2**64 - 1], dtype=np.uint64)])
    buckets, low = M._pack_hashes(h)
    assert low.shape == (len(h), 6) and buckets.sum() == len(h)
    np.testing.assert_array_equal(M._unpack_hashes(buckets, low), h)


def test_chemnet_tokens_match_fcd_torch():
    from fcd_torch.utils import get_one_hot

    for smi in ["CCO", "ClCBr", "c1ccccc1[Si](C)(C)C", "CC.O", "[Li+].[Cl-]", "C" * 400]:
        expected = get_one_hot(smi, 350).argmax(1)[: int(get_one_hot(smi, 350).sum())]
        assert M._chemnet_tokens(smi) == expected.tolist(), smi


def test_frechet_matches_sqrtm():
    from fcd_torch.utils import calculate_frechet_distance

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(400, 20)), rng.normal(size=(300, 20)) @ rng.normal(size=(20, 20)) * 0.3 + 0.2
    args = (x.mean(0), np.cov(x.T), y.mean(0), np.cov(y.T))
    assert M._frechet(*args) == pytest.approx(calculate_frechet_distance(*args), rel=1e-8)


def test_cosine_does_not_overflow():
    big = {"C": 2**40, "N": 3}
    assert M._cosine(big, dict(big)) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------- input handling

def test_all_invalid_counts_without_crashing(sample_smiles, tmp_path):
    m = M.evaluate(INVALID * 3, ref=sample_smiles[:60], train=sample_smiles[:60], n_jobs=1, device="cpu",
                   cache_dir=tmp_path, progress=False)
    assert m["validity"] == 0.0 and m["n_valid"] == 0
    assert m["IntDiv"] is None and m["FCD/Test"] is None and m["SNN/Test"] is None and m["novelty"] is None


@pytest.mark.parametrize("bad", [[], "missing-file.smi"])
def test_no_molecules_is_a_data_error(bad, tmp_path):
    with pytest.raises(DataError):
        M.evaluate(bad if bad == [] else tmp_path / bad, progress=False)


def test_reference_without_valid_molecule(tmp_path):
    with pytest.raises(DataError, match="no valid molecule"):
        M.evaluate(["CCO"], ref=["xx", "C1CC"], n_jobs=1, device="cpu", cache_dir=tmp_path, progress=False)


def test_reference_statistics_are_cached(sample_smiles, tmp_path, monkeypatch):
    calls = []
    real = M._compute_reference_stats

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(M._reference, "_compute_reference_stats", counting)
    ref_file = tmp_path / "ref.smi"
    ref_file.write_text("\n".join(sample_smiles[:80]) + "\n")
    kw = dict(ref=ref_file, n_jobs=1, device="cpu", cache_dir=tmp_path / "cache", progress=False)
    first = M.evaluate(sample_smiles[200:260], **kw)
    second = M.evaluate(sample_smiles[300:340], **kw)
    assert len(calls) == 1
    assert len(list((tmp_path / "cache").glob("ref-*.npz"))) == 1
    again = M.evaluate(sample_smiles[200:260], **kw)
    assert again == first and second["SNN/Test"] != first["SNN/Test"]
    ref_file.write_text("\n".join(sample_smiles[:81]) + "\n")  # new content, new statistics
    M.evaluate(sample_smiles[200:260], **kw)
    assert len(calls) == 2


def test_train_as_model_hashes(sets, result, tmp_path):
    from molvae.io import smiles_hashes

    gen, ref, train = sets
    hashes = smiles_hashes(_valid_canonical(train))
    m = M.evaluate(gen, train=hashes, n_jobs=1, device="cpu", cache_dir=tmp_path, progress=False)
    assert m["novelty"] == pytest.approx(result["novelty"])
    assert m["guacamol_novelty"] is None  # needs SMILES without stereo, which hashes cannot give


def test_table_and_moses_row(result):
    text = M.format_table(result)
    assert "FCD/Test" in text and "unique@1000" in text
    row = M.moses_table_row(result, model="x")
    assert list(row)[:3] == ["model", "valid", "unique_1k"]
    assert row["fcd_test"] == result["FCD/Test"] and row["intdiv2"] == result["IntDiv2"]


# ---------------------------------------------------------------------------------------------- CLI

def test_cli_evaluate_writes_metrics(sample_smiles, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MOLVAE_CACHE", str(tmp_path / "cache"))
    gen = tmp_path / "gen.smi"
    gen.write_text("\n".join(sample_smiles[:40] + ["", "C1CC"] + sample_smiles[:5]) + "\n")
    ref = tmp_path / "ref.smi"
    ref.write_text("\n".join(sample_smiles[100:160]) + "\n")
    rc = main(["evaluate", str(gen), "--ref", str(ref), "--train", str(ref), "--out", str(tmp_path / "o"),
               "--quiet", "--n-jobs", "1", "--device", "cpu"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "SNN/Test" in out
    data = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert data["n_generated"] == 47 and data["n_valid"] == 45  # the blank line counts as invalid
    assert data["validity"] == pytest.approx(45 / 47)


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_cli_evaluate_empty_file(tmp_path, capsys, content):
    gen = tmp_path / "gen.smi"
    gen.write_text(content)
    rc = main(["evaluate", str(gen), "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert err.startswith("molvae evaluate: error:") and "empty" in err and "\n" not in err


def test_cli_evaluate_unknown_reference(tmp_path, capsys):
    gen = tmp_path / "gen.smi"
    gen.write_text("CCO\n")
    rc = main(["evaluate", str(gen), "--ref", "no-such-set", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and "no-such-set" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------- shipped statistics

@pytest.fixture()
def shipped(sample_smiles, tmp_path, monkeypatch):
    """A shipped-statistics folder holding "moses-test" and "moses-train" built from small lists;
    the named sets' files (what a download would give) are local copies of those lists."""
    from molvae import data as D
    from molvae.io import smiles_hashes

    ref, train = sample_smiles[500:620], sample_smiles[700:900]
    files = {"moses-test": tmp_path / "ref.smi", "moses-train": tmp_path / "train.smi"}
    files["moses-test"].write_text("\n".join(ref) + "\n")
    files["moses-train"].write_text("\n".join(train) + "\n")
    monkeypatch.setattr(M._reference, "REFERENCE_DIR", tmp_path / "reference")
    downloads = []

    def fake_named_dataset(name, *args, **kwargs):
        downloads.append(name)
        return files[name]

    monkeypatch.setattr(D, "named_dataset", fake_named_dataset)
    stats = M.reference_statistics(files["moses-test"], n_jobs=1, device="cpu", cache_dir=tmp_path / "c",
                                   progress=False)
    M._ship_reference(M._reference.REFERENCE_DIR, "moses-test", "sha", stats)
    key, _ = M._source(files["moses-train"], "training set", "train")
    canon = _valid_canonical(train)
    nostereo = [Chem.MolToSmiles(Chem.MolFromSmiles(s), isomericSmiles=False) for s in canon]
    M._ship_train(M._reference.REFERENCE_DIR, "moses-train", key, "sha", np.unique(smiles_hashes(canon)),
                  np.unique(smiles_hashes(nostereo + ["only-without-stereo"])))
    downloads.clear()
    return files, downloads


def test_shipped_statistics_serve_named_sets_without_download(shipped, sample_smiles, tmp_path):
    files, downloads = shipped
    gen = sample_smiles[:60] + INVALID
    kw = dict(n_jobs=1, device="cpu", progress=False)
    named = M.evaluate(gen, ref="moses-test", train="moses-train", cache_dir=tmp_path / "empty", **kw)
    assert downloads == [] and not (tmp_path / "empty").exists()  # nothing fetched, nothing computed
    from_files = M.evaluate(gen, ref=files["moses-test"], train=files["moses-train"], cache_dir=tmp_path / "e2", **kw)
    computed = M.evaluate(gen, ref=sample_smiles[500:620], train=sample_smiles[700:900],
                          cache_dir=tmp_path / "e3", **kw)
    assert named == from_files == computed
    assert (tmp_path / "e3").exists() and not (tmp_path / "e2").exists()  # the same bytes use the shipped file


def test_shipped_statistics_of_another_rdkit_or_stale_are_recomputed(shipped, sample_smiles, tmp_path):
    files, downloads = shipped
    index_path = M._reference.REFERENCE_DIR / "index.json"
    index = json.loads(index_path.read_text())
    good = M.evaluate(sample_smiles[:40], ref="moses-test", n_jobs=1, device="cpu", cache_dir=tmp_path / "a",
                      progress=False)
    index["sets"]["moses-test"]["rdkit"] = "1999.03.1"
    index_path.write_text(json.dumps(index))
    other = M.evaluate(sample_smiles[:40], ref="moses-test", n_jobs=1, device="cpu", cache_dir=tmp_path / "b",
                       progress=False)
    assert downloads == ["moses-test"] and other == good
    index["sets"]["moses-test"]["rdkit"] = Chem.rdBase.rdkitVersion
    index["sets"]["moses-test"]["file"] = "moses-train.npz"  # a file that is not this set's
    index_path.write_text(json.dumps(index))
    with pytest.warns(UserWarning, match="stale"):
        stale = M.evaluate(sample_smiles[:40], ref="moses-test", n_jobs=1, device="cpu",
                           cache_dir=tmp_path / "c", progress=False)
    assert stale == good and (tmp_path / "c").exists()


def test_shipped_files_load():
    """What ships in molvae/reference/ loads without pickle and holds what the metrics need."""
    sets = M._shipped_index()
    if not sets:
        pytest.skip("no shipped statistics in this checkout")
    for name, entry in sets.items():
        if M._shipped(name, entry["kind"]) is None:
            continue  # built with another RDKit: evaluate recomputes (tested above)
        if entry["kind"] == "ref":
            stats = M._load_shipped_reference(entry["key"])
            assert stats.fps.dtype == np.uint8 and stats.fps.shape[1] == M.FP_BITS // 8
            assert stats.fcd_sigma.shape == (512, 512) and len(stats.props) == stats.n_input - stats.n_invalid
            assert stats.frag and stats.scaf
        else:
            stereo, nostereo = M._load_shipped_train(entry["key"])
            assert len(stereo) and np.all(np.diff(stereo) > 0) and np.all(np.diff(nostereo) > 0)
