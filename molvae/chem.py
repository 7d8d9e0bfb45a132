"""RDKit helpers: parsing with reasons, canonical SMILES, fingerprints and properties.

Everything that touches RDKit directly lives here so the rest of molvae speaks SMILES strings.
Bulk helpers treat an invalid molecule as data (``None``), single-molecule parsing at the API
boundary raises :class:`InvalidSmilesError`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

import numpy as np
from rdkit import Chem, DataStructs, RDConfig, RDLogger
from rdkit.Chem import Crippen, Descriptors, QED, rdMolDescriptors
from rdkit.Chem import rdFingerprintGenerator
from rdkit.Chem.MolStandardize import rdMolStandardize

from molvae.errors import ConfigError, InvalidSmilesError

sys.path.append(os.path.join(RDConfig.RDContribDir, "SA_Score"))
import sascorer  # noqa: E402  (RDKit Contrib: Ertl & Schuffenhauer synthetic accessibility)

__all__ = [
    "quiet_rdkit",
    "parse_smiles",
    "mol_from_smiles",
    "to_canonical",
    "fill_radicals",
    "canonicalize",
    "morgan_fingerprint",
    "morgan_fingerprints",
    "PROPERTIES",
    "compute_property",
    "compute_properties",
    "sa_score",
]


_QUIET_DEPTH = 0


@contextlib.contextmanager
def quiet_rdkit() -> Iterator[None]:
    """Silence RDKit's C++ log while parsing many molecules (errors are reported our way). Nests."""
    global _QUIET_DEPTH
    if _QUIET_DEPTH == 0:
        RDLogger.DisableLog("rdApp.*")
    _QUIET_DEPTH += 1
    try:
        yield
    finally:
        _QUIET_DEPTH -= 1
        if _QUIET_DEPTH == 0:
            RDLogger.EnableLog("rdApp.*")


def parse_smiles(smiles: str) -> tuple[Chem.Mol | None, str | None]:
    """Parse and sanitize one SMILES; return ``(mol, None)`` or ``(None, reason)``.

    The reason is RDKit's own message where it gives one (e.g. a valence error), so a rejects
    file tells the chemist what to fix.
    """
    if not isinstance(smiles, str) or not smiles.strip():
        return None, "empty SMILES"
    with quiet_rdkit():
        mol = Chem.MolFromSmiles(smiles.strip(), sanitize=False)
        if mol is None:
            return None, "SMILES parse error"
        try:
            Chem.SanitizeMol(mol)
        except Exception as exc:  # RDKit raises several sanitization exception types
            return None, f"sanitization failed: {str(exc).strip()}"
    if mol.GetNumAtoms() == 0:
        return None, "molecule has no atoms"
    return mol, None


def mol_from_smiles(smiles: str | Chem.Mol) -> Chem.Mol:
    """Return a sanitized Mol, raising :class:`InvalidSmilesError` naming the input if it fails."""
    if isinstance(smiles, Chem.Mol):
        return smiles
    mol, reason = parse_smiles(smiles)
    if mol is None:
        raise InvalidSmilesError(f"invalid SMILES {smiles!r}: {reason}")
    return mol


def fill_radicals(mol: Chem.Mol) -> Chem.Mol:
    """Give every atom with unpaired electrons hydrogens in their place, in place, and return ``mol``.

    A decoded SELFIES token with an explicit hydrogen count (``[C@@H1]``, ``[NH1]``) on an atom that ends
    up with fewer bonds than the token assumed reads as a radical (``C[CH]O``): a quarter of the shipped
    ``zinc250k``'s samples had one (BENCHMARKS.md), where ZINC has none. Generated molecules are read as the atom with
    its usual valence instead (``CCO``)."""
    changed = False
    for atom in mol.GetAtoms():
        if atom.GetNumRadicalElectrons():
            atom.SetNumRadicalElectrons(0)
            atom.SetNoImplicit(False)
            changed = True
    if changed:
        Chem.SanitizeMol(mol)
    return mol


_FRAGMENT_CHOOSER = None


def to_canonical(mol: Chem.Mol, stereo: bool = True, largest_fragment: bool = False) -> str:
    """Canonical SMILES of a Mol, optionally without stereo and/or reduced to its largest fragment."""
    global _FRAGMENT_CHOOSER
    if largest_fragment and len(Chem.GetMolFrags(mol)) > 1:
        if _FRAGMENT_CHOOSER is None:
            _FRAGMENT_CHOOSER = rdMolStandardize.LargestFragmentChooser(preferOrganic=True)
        mol = _FRAGMENT_CHOOSER.choose(mol)
    return Chem.MolToSmiles(mol, isomericSmiles=stereo)


def canonicalize(smiles: str | None, stereo: bool = True, largest_fragment: bool = False) -> str | None:
    """Canonical SMILES, or ``None`` if the input does not parse (bulk-friendly)."""
    if smiles is None:
        return None
    mol, _ = parse_smiles(smiles)
    if mol is None:
        return None
    return to_canonical(mol, stereo=stereo, largest_fragment=largest_fragment)


_MORGAN = {}


def morgan_fingerprint(mol: Chem.Mol, radius: int = 2, n_bits: int = 2048):
    """Bit-vector Morgan (ECFP-like) fingerprint, as an RDKit ExplicitBitVect."""
    key = (radius, n_bits)
    if key not in _MORGAN:
        _MORGAN[key] = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    return _MORGAN[key].GetFingerprint(mol)


def morgan_fingerprints(smiles: list[str], radius: int = 2, n_bits: int = 2048) -> np.ndarray:
    """Morgan fingerprints as a uint8 array (n, n_bits); rows of invalid SMILES are all zero."""
    out = np.zeros((len(smiles), n_bits), dtype=np.uint8)
    for i, smi in enumerate(smiles):
        mol, _ = parse_smiles(smi)
        if mol is not None:
            DataStructs.ConvertToNumpyArray(morgan_fingerprint(mol, radius, n_bits), out[i])
    return out


def sa_score(mol: Chem.Mol) -> float:
    """Synthetic accessibility score (1 easy .. 10 hard), RDKit Contrib implementation."""
    return float(sascorer.calculateScore(mol))


PROPERTIES = {
    "logp": lambda m: float(Crippen.MolLogP(m)),
    "qed": lambda m: float(QED.qed(m)),
    "sa": sa_score,
    "mw": lambda m: float(Descriptors.MolWt(m)),
    "tpsa": lambda m: float(rdMolDescriptors.CalcTPSA(m)),
    "hbd": lambda m: float(rdMolDescriptors.CalcNumHBD(m)),
    "hba": lambda m: float(rdMolDescriptors.CalcNumHBA(m)),
    "rings": lambda m: float(rdMolDescriptors.CalcNumRings(m)),
    "heavy_atoms": lambda m: float(m.GetNumHeavyAtoms()),
}
"""RDKit properties by name; each takes a sanitized Mol and returns a float."""


class UnknownPropertyError(ConfigError, KeyError):
    """A property name that is not in :data:`PROPERTIES` (a :class:`KeyError` too, as it was before)."""

    __str__ = Exception.__str__  # the message, not KeyError's quoted repr


def compute_property(name: str, mol: Chem.Mol | str) -> float:
    """One named property of one molecule (see :data:`PROPERTIES`)."""
    if name not in PROPERTIES:
        raise UnknownPropertyError(f"unknown property {name!r}; expected one of {', '.join(PROPERTIES)}")
    return PROPERTIES[name](mol_from_smiles(mol))


def compute_properties(smiles: list[str | None], names: list[str] | tuple[str, ...] = ("logp", "qed", "sa", "mw")) -> "np.ndarray":
    """Properties (n, len(names)) for a list of SMILES; NaN rows where a SMILES is invalid."""
    unknown = [n for n in names if n not in PROPERTIES]
    if unknown:
        raise UnknownPropertyError(f"unknown property {unknown[0]!r}; expected one of {', '.join(PROPERTIES)}")
    out = np.full((len(smiles), len(names)), np.nan, dtype=np.float64)
    for i, smi in enumerate(smiles):
        mol, _ = parse_smiles(smi) if smi else (None, None)
        if mol is not None:
            out[i] = [PROPERTIES[n](mol) for n in names]
    return out
