"""The 20 RDKit-only goal-directed tasks of the PMO benchmark, in GuacaMol's definitions.

Names are PMO's (Gao et al. 2022, via TDC's oracles); definitions are GuacaMol's v2 suite
(Brown et al. 2019, ``guacamol/standard_benchmarks.py`` and ``benchmark_suites.py``): the same targets,
fingerprints, modifiers and means, built from :mod:`molvae.objectives.scoring`. One deliberate
difference from the numbers PMO published: the four tasks with a molecular-formula term
(``isomers_c7h8n2o2``, ``isomers_c9h10n2o2pf2cl``, ``sitagliptin_mpo``, ``zaleplon_mpo``) count atoms on
the molecule, as GuacaMol does, where PMO's oracle counted element symbols in the SMILES string
(so hydrogens and the total were wrong there).

Each factory returns a scorer ``Mol -> float`` in [0, 1]; :data:`TASKS` maps name -> (factory, description).
"""

from __future__ import annotations

from typing import Callable

from rdkit import Chem
from rdkit.Chem import Descriptors

from molvae.objectives.scoring import (
    ArithmeticMean,
    Clipped,
    Descriptor,
    Gaussian,
    GeometricMean,
    Isomer,
    MaxGaussian,
    MinGaussian,
    Scorer,
    Smarts,
    Tanimoto,
    count_atoms,
)

__all__ = ["TASKS", "TARGETS"]

TARGETS = {
    "celecoxib": "CC1=CC=C(C=C1)C1=CC(=NN1C1=CC=C(C=C1)S(N)(=O)=O)C(F)(F)F",
    "troglitazone": "Cc1c(C)c2OC(C)(COc3ccc(CC4SC(=O)NC4=O)cc3)CCc2c(C)c1O",
    "thiothixene": "CN(C)S(=O)(=O)c1ccc2Sc3ccccc3C(=CCCN4CCN(C)CC4)c2c1",
    "albuterol": "CC(C)(C)NCC(O)c1ccc(O)c(CO)c1",
    "mestranol": "COc1ccc2[C@H]3CC[C@@]4(C)[C@@H](CC[C@@]4(O)C#C)[C@@H]3CCc2c1",
    "camphor": "CC1(C)C2CCC1(C)C(=O)C2",
    "menthol": "CC(C)C1CCC(C)CC1O",
    "tadalafil": "O=C1N(CC(N2C1CC3=C(C2C4=CC5=C(OCO5)C=C4)NC6=C3C=CC=C6)=O)C",
    "sildenafil": "CCCC1=NN(C2=C1N=C(NC2=O)C3=C(C=CC(=C3)S(=O)(=O)N4CCN(CC4)C)OCC)C",
    "osimertinib": "COc1cc(N(C)CCN(C)C)c(NC(=O)C=C)cc1Nc2nccc(n2)c3cn(C)c4ccccc34",
    "fexofenadine": "CC(C)(C(=O)O)c1ccc(cc1)C(O)CCCN2CCC(CC2)C(O)(c3ccccc3)c4ccccc4",
    "ranolazine": "COc1ccccc1OCC(O)CN2CCN(CC(=O)Nc3c(C)cccc3C)CC2",
    "perindopril": "O=C(OCC)C(NC(C(=O)N1C(C(=O)O)CC2CCCCC12)C)CCC",
    "amlodipine": r"Clc1ccccc1C2C(=C(/N/C(=C2/C(=O)OCC)COCCN)C)\C(=O)OC",
    "sitagliptin": "Fc1cc(c(F)cc1F)CC(N)CC(=O)N3Cc2nnc(n2CC3)C(F)(F)F",
    "sitagliptin_valsartan_task": "NC(CC(=O)N1CCn2c(nnc2C(F)(F)F)C1)Cc1cc(F)c(F)cc1F",  # GuacaMol's spelling there
    "zaleplon": "O=C(C)N(CC)C1=CC=CC(C2=CC=NC3=C(C=NN23)C#N)=C1",
    "hop_start": "CCCOc1cc2ncnc(Nc3ccc4ncsc4c3)c2cc1S(=O)(=O)C(C)(C)C",
}
"""Target molecules as GuacaMol writes them."""

_SCAFFOLD = "[#7]-c1n[c;h1]nc2[c;h1]c(-[#8])[c;h0][c;h1]c12"


def _rediscovery(target: str) -> Callable[[], Scorer]:
    # GuacaMol: similarity(..., fp_type='ECFP4', threshold=1.0, rediscovery=True)
    return lambda: Tanimoto(TARGETS[target], "ECFP4", Clipped(upper_x=1.0))


def _similarity(target: str, fp_type: str) -> Callable[[], Scorer]:
    # GuacaMol: similarity(..., threshold=0.75): full marks from 0.75 similarity up
    return lambda: Tanimoto(TARGETS[target], fp_type, Clipped(upper_x=0.75))


def _median1() -> Scorer:
    return GeometricMean([Tanimoto(TARGETS["menthol"], "ECFP4"), Tanimoto(TARGETS["camphor"], "ECFP4")])


def _median2() -> Scorer:
    return GeometricMean([Tanimoto(TARGETS["tadalafil"], "ECFP6"), Tanimoto(TARGETS["sildenafil"], "ECFP6")])


def _osimertinib() -> Scorer:
    s = TARGETS["osimertinib"]
    return GeometricMean([
        Tanimoto(s, "FCFP4", Clipped(upper_x=0.8)),
        Tanimoto(s, "ECFP6", MinGaussian(mu=0.85, sigma=0.1)),
        Descriptor("tpsa", MaxGaussian(mu=100, sigma=10)),
        Descriptor("logp", MinGaussian(mu=1, sigma=1)),
    ])


def _fexofenadine() -> Scorer:
    return GeometricMean([
        Tanimoto(TARGETS["fexofenadine"], "AP", Clipped(upper_x=0.8)),
        Descriptor("tpsa", MaxGaussian(mu=90, sigma=10)),
        Descriptor("logp", MinGaussian(mu=4, sigma=1)),
    ])


def _ranolazine() -> Scorer:
    return GeometricMean([
        Tanimoto(TARGETS["ranolazine"], "AP", Clipped(upper_x=0.7)),
        Descriptor("logp", MaxGaussian(mu=7, sigma=1)),
        Descriptor(lambda m: count_atoms(m, "F"), Gaussian(mu=1, sigma=1.0)),
        Descriptor("tpsa", MaxGaussian(mu=95, sigma=20)),
    ])


def _perindopril() -> Scorer:
    return GeometricMean([
        Tanimoto(TARGETS["perindopril"], "ECFP4"),
        Descriptor("aromatic_rings", Gaussian(mu=2, sigma=0.5)),
    ])


def _amlodipine() -> Scorer:
    return GeometricMean([
        Tanimoto(TARGETS["amlodipine"], "ECFP4"),
        Descriptor("rings", Gaussian(mu=3, sigma=0.5)),
    ])


def _sitagliptin() -> Scorer:
    s = TARGETS["sitagliptin"]
    mol = Chem.MolFromSmiles(s)
    return GeometricMean([
        Tanimoto(s, "ECFP4", Gaussian(mu=0, sigma=0.1)),
        Descriptor("logp", Gaussian(mu=Descriptors.MolLogP(mol), sigma=0.2)),
        Descriptor("tpsa", Gaussian(mu=Descriptors.TPSA(mol), sigma=5)),
        Isomer("C16H15F6N5O"),
    ])


def _zaleplon() -> Scorer:
    return GeometricMean([Tanimoto(TARGETS["zaleplon"], "ECFP4"), Isomer("C19H17N3O2")])


def _valsartan() -> Scorer:
    # the valsartan substructure with sitagliptin's logP, TPSA and Bertz complexity
    other = Chem.MolFromSmiles(TARGETS["sitagliptin_valsartan_task"])
    return GeometricMean([
        Smarts("CN(C=O)Cc1ccc(c2ccccc2)cc1"),
        Descriptor("logp", Gaussian(mu=Descriptors.MolLogP(other), sigma=0.2)),
        Descriptor("tpsa", Gaussian(mu=Descriptors.TPSA(other), sigma=5)),
        Descriptor("bertz", Gaussian(mu=Descriptors.BertzCT(other), sigma=30)),
    ])


def _deco_hop() -> Scorer:
    # keep the quinazoline scaffold and the pharmacophore, change the decorations
    return ArithmeticMean([
        Tanimoto(TARGETS["hop_start"], "PHCO", Clipped(upper_x=0.85)),
        Smarts("CS([#6])(=O)=O", inverse=True),
        Smarts("[#7]-c1ccc2ncsc2c1", inverse=True),
        Smarts(_SCAFFOLD),
    ])


def _scaffold_hop() -> Scorer:
    # keep the decorations and the pharmacophore, change the scaffold
    return ArithmeticMean([
        Tanimoto(TARGETS["hop_start"], "PHCO", Clipped(upper_x=0.75)),
        Smarts("[#6]-[#6]-[#6]-[#8]-[#6]~[#6]~[#6]~[#6]~[#6]-[#7]-c1ccc2ncsc2c1"),
        Smarts(_SCAFFOLD, inverse=True),
    ])


TASKS: dict[str, tuple[Callable[[], Scorer], str]] = {
    "albuterol_similarity": (_similarity("albuterol", "FCFP4"), "FCFP4 similarity to albuterol, full marks from 0.75"),
    "amlodipine_mpo": (_amlodipine, "geometric mean: ECFP4 similarity to amlodipine, 3 rings"),
    "celecoxib_rediscovery": (_rediscovery("celecoxib"), "ECFP4 (count) Tanimoto similarity to celecoxib"),
    "deco_hop": (_deco_hop, "keep the quinazoline scaffold and pharmacophore, replace the decorations"),
    "fexofenadine_mpo": (_fexofenadine, "geometric mean: AP similarity to fexofenadine, TPSA >= 90, logP <= 4"),
    "isomers_c7h8n2o2": (lambda: Isomer("C7H8N2O2"), "closeness to the formula C7H8N2O2 (1.0 for any isomer)"),
    "isomers_c9h10n2o2pf2cl": (lambda: Isomer("C9H10N2O2PF2Cl"), "closeness to the formula C9H10N2O2PF2Cl"),
    "median1": (_median1, "geometric mean of ECFP4 similarities to camphor and menthol"),
    "median2": (_median2, "geometric mean of ECFP6 similarities to tadalafil and sildenafil"),
    "mestranol_similarity": (_similarity("mestranol", "AP"), "atom-pair similarity to mestranol, full marks from 0.75"),
    "osimertinib_mpo": (_osimertinib, "geometric mean: similar to osimertinib but not too similar, TPSA >= 100, logP <= 1"),
    "perindopril_mpo": (_perindopril, "geometric mean: ECFP4 similarity to perindopril, 2 aromatic rings"),
    "qed": (lambda: Descriptor("qed"), "quantitative estimate of drug-likeness (RDKit QED)"),
    "ranolazine_mpo": (_ranolazine, "geometric mean: AP similarity to ranolazine, logP >= 7, one F, TPSA >= 95"),
    "scaffold_hop": (_scaffold_hop, "keep the decorations and pharmacophore, replace the quinazoline scaffold"),
    "sitagliptin_mpo": (_sitagliptin, "sitagliptin's logP, TPSA and formula C16H15F6N5O, dissimilar structure"),
    "thiothixene_rediscovery": (_rediscovery("thiothixene"), "ECFP4 (count) Tanimoto similarity to thiothixene"),
    "troglitazone_rediscovery": (_rediscovery("troglitazone"), "ECFP4 (count) Tanimoto similarity to troglitazone"),
    "valsartan_smarts": (_valsartan, "valsartan's biphenyl-amide SMARTS with sitagliptin's logP, TPSA, Bertz"),
    "zaleplon_mpo": (_zaleplon, "geometric mean: ECFP4 similarity to zaleplon, formula C19H17N3O2"),
}
