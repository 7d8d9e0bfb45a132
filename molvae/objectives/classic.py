"""Single-property objectives and penalized logP as the VAE literature defines it.

Penalized logP (Gomez-Bombarelli et al. 2018; JT-VAE, Jin et al. 2018) is logP minus the synthetic
accessibility score minus a penalty for rings longer than six atoms. Papers report it two ways, so
molvae has both and names them apart:

- ``penalized_logp``: each term standardized with the ZINC-250k means and standard deviations that
  the JT-VAE / GCPN / TDC code hard-codes (statistics of ``250k_rndm_zinc_drugs_clean``, from Kusner
  et al. 2017), as JT-VAE reports it (ZINC-250k's best: 4.52);
- ``penalized_logp_raw``: the plain sum logP - SA - max(largest ring - 6, 0), as GCPN and LIMO report
  it (ZINC-250k's best: 5.07).

The ring term uses the largest cycle of ``networkx.cycle_basis`` on the heavy-atom graph, as the
reference code does (it can differ from RDKit's smallest rings in bridged systems).
"""

from __future__ import annotations

from rdkit import Chem
from rdkit.Chem import Crippen

from molvae.chem import sa_score

__all__ = [
    "LOGP_MEAN",
    "LOGP_STD",
    "SA_MEAN",
    "SA_STD",
    "CYCLE_MEAN",
    "CYCLE_STD",
    "largest_ring",
    "ring_penalty",
    "penalized_logp",
    "penalized_logp_raw",
]

# ZINC-250k statistics of logP, -SA and -ring penalty used by the JT-VAE literature (Kusner et al. 2017;
# Jin et al. 2018; the same numbers in GCPN's and TDC's penalized_logp).
LOGP_MEAN = 2.4570953396190123
LOGP_STD = 1.434324401111988
SA_MEAN = -3.0525811293166134
SA_STD = 0.8335207024513095
CYCLE_MEAN = -0.0485696876403053
CYCLE_STD = 0.2860212110245455


def largest_ring(mol: Chem.Mol) -> int:
    """Size of the largest cycle in networkx's cycle basis of the molecular graph (0 if acyclic)."""
    if mol.GetRingInfo().NumRings() == 0:
        return 0
    import networkx as nx  # a torch dependency; imported here to keep `import molvae.objectives` light

    cycles = nx.cycle_basis(nx.Graph(Chem.rdmolops.GetAdjacencyMatrix(mol)))
    return max((len(c) for c in cycles), default=0)


def ring_penalty(mol: Chem.Mol) -> int:
    """``max(largest ring - 6, 0)``: the long-ring term of penalized logP."""
    return max(largest_ring(mol) - 6, 0)


def penalized_logp_raw(mol: Chem.Mol) -> float:
    """logP - SA - ring penalty, unstandardized (GCPN / LIMO convention)."""
    return float(Crippen.MolLogP(mol) - sa_score(mol) - ring_penalty(mol))


def penalized_logp(mol: Chem.Mol) -> float:
    """Standardized logP + standardized (-SA) + standardized (-ring penalty) (JT-VAE convention)."""
    logp = (Crippen.MolLogP(mol) - LOGP_MEAN) / LOGP_STD
    sa = (-sa_score(mol) - SA_MEAN) / SA_STD
    cycle = (-ring_penalty(mol) - CYCLE_MEAN) / CYCLE_STD
    return float(logp + sa + cycle)
