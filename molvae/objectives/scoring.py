"""Scoring building blocks, written once and composed into the GuacaMol/PMO tasks.

These follow GuacaMol's definitions (Brown et al. 2019, ``guacamol/score_modifier.py``,
``common_scoring_functions.py``, ``utils/fingerprints.py``, ``utils/descriptors.py``) so that a task
built from them scores a molecule exactly as GuacaMol does:

- *modifiers* map a raw value to a desirability in [0, 1]: :class:`Gaussian`, :class:`MinGaussian`
  (1 below ``mu``), :class:`MaxGaussian` (1 above ``mu``), :class:`Clipped` (linear ramp, clipped),
  :class:`Thresholded` and :class:`Linear`;
- *scorers* map a sanitized RDKit Mol to a float: :class:`Descriptor` (an RDKit descriptor through a
  modifier), :class:`Tanimoto` (similarity to a target with one of GuacaMol's fingerprints),
  :class:`Isomer` (closeness to a molecular formula, atoms counted on the molecule), :class:`Smarts`
  (presence or absence of a substructure), and the means :class:`GeometricMean` /
  :class:`ArithmeticMean` of other scorers.

Fingerprints use RDKit's generator API; they are bit-for-bit the legacy calls GuacaMol makes
(``GetMorganFingerprint(mol, 2)`` etc., unfolded *count* vectors; atom pairs with ``maxLength=10``;
Gobbi 2D pharmacophores), checked in ``scripts/check_objectives_vs_guacamol.py``.
"""

from __future__ import annotations

import math
import re
from typing import Callable, Sequence

from rdkit import Chem, DataStructs
from rdkit.Chem import Descriptors, rdMolDescriptors
from rdkit.Chem import rdFingerprintGenerator as _fpgen

from molvae.chem import quiet_rdkit
from molvae.errors import ObjectiveError

__all__ = [
    "Modifier",
    "Linear",
    "Gaussian",
    "MinGaussian",
    "MaxGaussian",
    "Clipped",
    "Thresholded",
    "geometric_mean",
    "arithmetic_mean",
    "FINGERPRINTS",
    "fingerprint",
    "Scorer",
    "Descriptor",
    "Tanimoto",
    "Isomer",
    "Smarts",
    "GeometricMean",
    "ArithmeticMean",
    "count_atoms",
    "num_atoms",
    "parse_formula",
    "DESCRIPTORS",
]

Scorer = Callable[[Chem.Mol], float]
"""Anything that maps a sanitized Mol to a float."""


# --------------------------------------------------------------------------- modifiers


class Modifier:
    """Maps a raw value to a score; subclasses implement ``__call__(x) -> float``."""

    def __call__(self, x: float) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Linear(Modifier):
    """``slope * x`` (GuacaMol's default modifier with slope 1: the raw value unchanged)."""

    def __init__(self, slope: float = 1.0) -> None:
        self.slope = slope

    def __call__(self, x: float) -> float:
        return self.slope * x


class Gaussian(Modifier):
    """Bell curve ``exp(-((x - mu) / sigma)^2 / 2)``: 1 at ``mu``."""

    def __init__(self, mu: float, sigma: float) -> None:
        self.mu = mu
        self.sigma = sigma

    def __call__(self, x: float) -> float:
        return math.exp(-0.5 * ((x - self.mu) / self.sigma) ** 2.0)


class MinGaussian(Gaussian):
    """1 for ``x <= mu``, a Gaussian fall-off above (GuacaMol ``MinGaussianModifier``: "at most mu")."""

    def __call__(self, x: float) -> float:
        return super().__call__(max(x, self.mu))


class MaxGaussian(Gaussian):
    """1 for ``x >= mu``, a Gaussian fall-off below (GuacaMol ``MaxGaussianModifier``: "at least mu")."""

    def __call__(self, x: float) -> float:
        return super().__call__(min(x, self.mu))


class Clipped(Modifier):
    """Linear ramp from ``(lower_x, low_score)`` to ``(upper_x, high_score)``, clipped to that range.

    With ``upper_x < lower_x`` the ramp goes down. GuacaMol ``ClippedScoreModifier``; the similarity
    tasks use ``Clipped(upper_x=threshold)``: full marks from the threshold up.
    """

    def __init__(self, upper_x: float, lower_x: float = 0.0, high_score: float = 1.0, low_score: float = 0.0) -> None:
        if not low_score < high_score:
            raise ValueError(f"low_score {low_score} must be below high_score {high_score}")
        self.upper_x = upper_x
        self.lower_x = lower_x
        self.high_score = high_score
        self.low_score = low_score
        self._slope = (high_score - low_score) / (upper_x - lower_x)
        self._intercept = high_score - self._slope * upper_x

    def __call__(self, x: float) -> float:
        y = self._slope * x + self._intercept
        return min(max(y, self.low_score), self.high_score)


class Thresholded(Modifier):
    """``min(x, threshold) / threshold`` (GuacaMol ``ThresholdedLinearModifier``)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def __call__(self, x: float) -> float:
        return min(x, self.threshold) / self.threshold


# --------------------------------------------------------------------------- means


def geometric_mean(values: Sequence[float]) -> float:
    """``prod(values) ** (1 / n)``, GuacaMol's form (a zero anywhere gives zero)."""
    prod = 1.0
    for v in values:
        prod *= v
    return prod ** (1.0 / len(values))


def arithmetic_mean(values: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """Plain or weighted mean."""
    if weights is None:
        return sum(values) / len(values)
    return sum(w * v for w, v in zip(weights, values)) / sum(weights)


# --------------------------------------------------------------------------- fingerprints

_MORGAN4 = _fpgen.GetMorganGenerator(radius=2)
_MORGAN6 = _fpgen.GetMorganGenerator(radius=3)
_FEATURE4 = _fpgen.GetMorganGenerator(radius=2, atomInvariantsGenerator=_fpgen.GetMorganFeatureAtomInvGen())
_FEATURE6 = _fpgen.GetMorganGenerator(radius=3, atomInvariantsGenerator=_fpgen.GetMorganFeatureAtomInvGen())
_ATOM_PAIR = _fpgen.GetAtomPairGenerator(maxDistance=10)


def _phco(mol: Chem.Mol):
    from rdkit.Chem.Pharm2D import Generate, Gobbi_Pharm2D  # slow import, only the hop tasks need it

    return Generate.Gen2DFingerprint(mol, Gobbi_Pharm2D.factory)


FINGERPRINTS: dict[str, Callable[[Chem.Mol], object]] = {
    "ECFP4": _MORGAN4.GetSparseCountFingerprint,  # Morgan radius 2, unfolded counts
    "ECFP6": _MORGAN6.GetSparseCountFingerprint,  # Morgan radius 3, unfolded counts
    "FCFP4": _FEATURE4.GetSparseCountFingerprint,  # feature-invariant Morgan radius 2, counts
    "FCFP6": _FEATURE6.GetSparseCountFingerprint,
    "AP": _ATOM_PAIR.GetSparseCountFingerprint,  # atom pairs up to 10 bonds apart, counts
    "PHCO": _phco,  # Gobbi 2D pharmacophore fingerprint (sparse bits)
}
"""GuacaMol's fingerprint types by name; each maps a Mol to an RDKit sparse vector."""


def fingerprint(mol: Chem.Mol, fp_type: str):
    """One of :data:`FINGERPRINTS` for ``mol``."""
    try:
        fn = FINGERPRINTS[fp_type]
    except KeyError:
        raise ObjectiveError(f"unknown fingerprint type {fp_type!r}; expected one of {', '.join(FINGERPRINTS)}") from None
    return fn(mol)


# --------------------------------------------------------------------------- descriptors


def num_atoms(mol: Chem.Mol) -> int:
    """All atoms including hydrogens (GuacaMol ``num_atoms``)."""
    return Chem.AddHs(mol).GetNumAtoms()


def count_atoms(mol: Chem.Mol, element: str) -> int:
    """Atoms of one element in the molecule, implicit hydrogens included for ``'H'`` (GuacaMol ``AtomCounter``)."""
    if element == "H":
        mol = Chem.AddHs(mol)
    return sum(1 for a in mol.GetAtoms() if a.GetSymbol() == element)


DESCRIPTORS: dict[str, Callable[[Chem.Mol], float]] = {
    "logp": Descriptors.MolLogP,
    "tpsa": Descriptors.TPSA,
    "mw": Descriptors.MolWt,
    "bertz": Descriptors.BertzCT,
    "qed": Descriptors.qed,
    "hbd": Descriptors.NumHDonors,
    "hba": Descriptors.NumHAcceptors,
    "rotatable_bonds": Descriptors.NumRotatableBonds,
    "rings": rdMolDescriptors.CalcNumRings,
    "aromatic_rings": rdMolDescriptors.CalcNumAromaticRings,
    "num_atoms": num_atoms,
}
"""The RDKit descriptors GuacaMol's tasks use, by name (the same RDKit calls as ``guacamol.utils.descriptors``)."""


def parse_formula(formula: str) -> list[tuple[str, int]]:
    """``'C7H8N2O2'`` -> ``[('C', 7), ('H', 8), ('N', 2), ('O', 2)]`` (GuacaMol ``parse_molecular_formula``)."""
    found = re.findall(r"([A-Z][a-z]*)(\d*)", formula)
    if not found or "".join(e + n for e, n in found) != formula:
        raise ObjectiveError(f"invalid molecular formula {formula!r}; expected e.g. 'C7H8N2O2'")
    return [(element, int(n) if n else 1) for element, n in found]


# --------------------------------------------------------------------------- scorers


def _identity(x: float) -> float:
    return x


class Descriptor:
    """A descriptor of the molecule through a modifier: ``modifier(descriptor(mol))`` (GuacaMol ``RdkitScoringFunction``)."""

    def __init__(self, descriptor: Callable[[Chem.Mol], float] | str, modifier: Callable[[float], float] | None = None) -> None:
        if isinstance(descriptor, str):
            if descriptor not in DESCRIPTORS:
                raise ObjectiveError(f"unknown descriptor {descriptor!r}; expected one of {', '.join(DESCRIPTORS)}")
            descriptor = DESCRIPTORS[descriptor]
        self.descriptor = descriptor
        self.modifier = modifier or _identity

    def __call__(self, mol: Chem.Mol) -> float:
        return float(self.modifier(self.descriptor(mol)))


class Tanimoto:
    """Tanimoto similarity to a target under one of GuacaMol's fingerprints, through a modifier."""

    def __init__(self, target: str, fp_type: str, modifier: Callable[[float], float] | None = None) -> None:
        with quiet_rdkit():  # a bad target is reported below, in one line
            mol = Chem.MolFromSmiles(target)
        if mol is None:
            raise ObjectiveError(f"invalid similarity target {target!r}")
        self.target = target
        self.fp_type = fp_type
        self.modifier = modifier or _identity
        self._target_fp = fingerprint(mol, fp_type)

    def __call__(self, mol: Chem.Mol) -> float:
        sim = DataStructs.TanimotoSimilarity(fingerprint(mol, self.fp_type), self._target_fp)
        return float(self.modifier(sim))


class Isomer:
    """Closeness to a molecular formula (GuacaMol ``IsomerScoringFunction``).

    The mean of a ``Gaussian(mu=n, sigma=1)`` on the count of each element of the formula and a
    ``Gaussian(mu=total, sigma=2)`` on the total number of atoms, hydrogens included. Atoms are
    counted on the molecule (not on the SMILES string, as PMO's oracle did), so every isomer of
    the formula scores exactly 1.0.
    """

    def __init__(self, formula: str, mean: str = "geometric") -> None:
        if mean not in ("geometric", "arithmetic"):
            raise ObjectiveError(f"invalid mean {mean!r}; expected 'geometric' or 'arithmetic'")
        self.formula = formula
        self.mean = geometric_mean if mean == "geometric" else arithmetic_mean
        self.counts = parse_formula(formula)
        self._total = Gaussian(mu=sum(n for _, n in self.counts), sigma=2.0)
        self._element = [(e, Gaussian(mu=n, sigma=1.0)) for e, n in self.counts]

    def __call__(self, mol: Chem.Mol) -> float:
        with_h = Chem.AddHs(mol)
        symbols = [a.GetSymbol() for a in with_h.GetAtoms()]
        scores = [g(symbols.count(e)) for e, g in self._element]
        scores.append(self._total(len(symbols)))
        return float(self.mean(scores))


class Smarts:
    """1.0 if the molecule contains the SMARTS pattern, else 0.0 (reversed with ``inverse=True``)."""

    def __init__(self, pattern: str, inverse: bool = False) -> None:
        with quiet_rdkit():  # a bad pattern is reported below, in one line, not in RDKit's parse log
            query = Chem.MolFromSmarts(pattern) if isinstance(pattern, str) and pattern.strip() else None
        if query is None:
            raise ObjectiveError(f"invalid SMARTS pattern {pattern!r}")
        self.pattern = pattern
        self.inverse = inverse
        self._query = query

    def __call__(self, mol: Chem.Mol) -> float:
        found = mol.HasSubstructMatch(self._query)
        return 1.0 if found != self.inverse else 0.0


class GeometricMean:
    """Geometric mean of several scorers (GuacaMol ``GeometricMeanScoringFunction``)."""

    def __init__(self, scorers: Sequence[Scorer]) -> None:
        self.scorers = list(scorers)

    def __call__(self, mol: Chem.Mol) -> float:
        return float(geometric_mean([s(mol) for s in self.scorers]))


class ArithmeticMean:
    """(Weighted) arithmetic mean of several scorers (GuacaMol ``ArithmeticMeanScoringFunction``)."""

    def __init__(self, scorers: Sequence[Scorer], weights: Sequence[float] | None = None) -> None:
        self.scorers = list(scorers)
        self.weights = list(weights) if weights is not None else None

    def __call__(self, mol: Chem.Mol) -> float:
        return float(arithmetic_mean([s(mol) for s in self.scorers], self.weights))
