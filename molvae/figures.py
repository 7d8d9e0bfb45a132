"""Figures that need no model: property distributions, molecule grids, training curves, interpolations.

Each ``plot_*`` function writes one PNG and returns its path:

* :func:`plot_property_distributions`: logP, SA, QED, molecular weight and ring count, generated vs reference;
* :func:`plot_molecule_grid`: molecules drawn by RDKit, with SMILES and properties as legends;
* :func:`plot_training_curves`: reconstruction, KL, KL weight and validation scores per epoch;
* :func:`plot_interpolation`: a decoded latent path as a strip of molecule images.

The training loop draws its curves from here; :mod:`molvae.report` adds the figures that need a
model (the latent PCA) and the ``index.html`` around them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from molvae.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "plot_property_distributions",
    "plot_molecule_grid",
    "plot_training_curves",
    "plot_interpolation",
    "REPORT_PROPERTIES",
    "smiles_list",
    "valid_mols",
    "property_values",
    "save_figure",
    "pyplot",
]

REPORT_PROPERTIES = {"logp": "logP", "sa": "SA score", "qed": "QED", "mw": "molecular weight", "rings": "rings"}
"""Properties drawn in the distribution figure (keys of :data:`molvae.chem.PROPERTIES`) and their labels."""

_GEN_COLOUR, _REF_COLOUR = "#d95f02", "#1b9e77"


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def smiles_list(source: Any, what: str) -> list[str | None]:
    """:func:`molvae.data.read_generated` of ``source``, errors prefixed with ``what`` it is."""
    from molvae.data import read_generated

    try:
        return read_generated(source)
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from None


def valid_mols(smiles: Sequence[str | None], limit: int | None = None, seed: int = 0,
               unique: bool = True) -> list[tuple[str, Any]]:
    """(SMILES, Mol) of valid molecules, optionally a random subset of ``limit`` (reproducible)."""
    from molvae.chem import parse_smiles, to_canonical

    rng = np.random.default_rng(seed)
    if limit is not None and len(smiles) > 2 * limit:  # big sets (a named reference): parse only a sample
        smiles = [smiles[i] for i in np.sort(rng.choice(len(smiles), 2 * limit, replace=False))]
    seen, out = set(), []
    for s in smiles:
        mol, _ = parse_smiles(s) if isinstance(s, str) and s else (None, None)
        if mol is None:
            continue
        can = to_canonical(mol)
        if unique and can in seen:
            continue
        seen.add(can)
        out.append((can, mol))
    if limit is not None and len(out) > limit:
        keep = np.sort(rng.choice(len(out), limit, replace=False))
        out = [out[i] for i in keep]
    return out


def property_values(mols: list, names: Sequence[str]) -> np.ndarray:
    """Properties ``(n, len(names))`` of ``(SMILES, Mol)`` pairs (names of :data:`molvae.chem.PROPERTIES`), NaN
    where RDKit cannot compute one."""
    from molvae.chem import PROPERTIES, quiet_rdkit

    out = np.full((len(mols), len(names)), np.nan)
    with quiet_rdkit():
        for i, (_, mol) in enumerate(mols):
            for j, name in enumerate(names):
                try:
                    out[i, j] = PROPERTIES[name](mol)
                except Exception:  # a property RDKit cannot compute for this molecule: left out of the plot
                    pass
    return out


def plot_property_distributions(generated: Any, out: str | Path, ref: Any = None,
                                properties: Sequence[str] = tuple(REPORT_PROPERTIES), max_molecules: int = 3000,
                                seed: int = 0, labels: tuple[str, str] = ("generated", "reference")) -> Path:
    """Histograms of molecular properties of generated (and reference) molecules, one panel each.

    Invalid SMILES are skipped; at most ``max_molecules`` unique molecules per set are drawn at random
    (``seed``). With a reference, each panel's title gives the Wasserstein-1 distance between the two.
    """
    from scipy.stats import wasserstein_distance

    gen = valid_mols(smiles_list(generated, "generated molecules"), max_molecules, seed)
    if not gen:
        raise DataError("generated molecules: no valid molecule to plot")
    refm = valid_mols(smiles_list(ref, "reference set"), max_molecules, seed) if ref is not None else []
    names = list(properties)
    pg, pr = property_values(gen, names), property_values(refm, names)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.1))
    for k, (ax, name) in enumerate(zip(np.atleast_1d(axes), names)):
        g = pg[:, k][np.isfinite(pg[:, k])]
        r = pr[:, k][np.isfinite(pr[:, k])] if len(refm) else np.zeros(0)
        both = np.concatenate([g, r])
        discrete = name in ("rings", "hbd", "hba", "heavy_atoms")
        if discrete:
            bins = np.arange(both.min() - 0.5, both.max() + 1.5)
        else:
            lo, hi = np.percentile(both, [0.5, 99.5]) if len(both) > 20 else (both.min(), both.max())
            bins = np.linspace(lo, hi if hi > lo else lo + 1, 40)
        if len(r):
            ax.hist(r, bins=bins, density=True, color=_REF_COLOUR, alpha=0.45, label=f"{labels[1]} ({len(r)})")
        ax.hist(g, bins=bins, density=True, histtype="step", linewidth=1.8, color=_GEN_COLOUR,
                label=f"{labels[0]} ({len(g)})")
        title = REPORT_PROPERTIES.get(name, name)
        if len(r) and len(g):
            title += f"\nW1 = {wasserstein_distance(g, r):.3g}"
        ax.set_title(title, fontsize=10)
        ax.set_yticks([])
        ax.spines[["top", "right", "left"]].set_visible(False)
    np.atleast_1d(axes)[0].legend(fontsize=8, frameon=False, loc="upper left")
    fig.tight_layout()
    return save_figure(fig, out)


def save_figure(fig: Any, out: str | Path) -> Path:
    """Write a figure as PNG (creating the folder) and close it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    pyplot().close(fig)
    return out


def _draw_grid(mols: list, legends: list[str], out: str | Path, per_row: int, size: tuple[int, int]) -> Path:
    """Molecules drawn by RDKit in a grid, each with a (multi-line) legend set by matplotlib, as PNG.

    ``None`` in ``mols`` leaves an empty cell with its legend (an invalid decode, say).
    """
    import io

    import matplotlib.image as mpimg
    from rdkit.Chem.Draw import rdMolDraw2D

    plt = pyplot()
    per_row = max(1, min(per_row, len(mols)))
    rows = math.ceil(len(mols) / per_row)
    cell_w, cell_h = size[0] / 100, size[1] / 100
    text_h = 0.16 * (1 + max(legend.count("\n") for legend in legends))
    fig, axes = plt.subplots(rows, per_row, figsize=(per_row * cell_w, rows * (cell_h + text_h)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, mol, legend in zip(axes.flat, mols, legends):
        if mol is not None and mol.GetNumAtoms():
            drawer = rdMolDraw2D.MolDraw2DCairo(*size)
            drawer.drawOptions().clearBackground = True
            drawer.DrawMolecule(mol)
            drawer.FinishDrawing()
            ax.imshow(mpimg.imread(io.BytesIO(drawer.GetDrawingText()), format="png"))
        else:
            ax.imshow(np.ones((size[1], size[0], 3)))
        ax.text(0.5, 0.0, legend, transform=ax.transAxes, ha="center", va="top", fontsize=8.5, linespacing=1.35)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.99, bottom=text_h / (cell_h + text_h) / rows + 0.005,
                        hspace=text_h / cell_h + 0.05, wspace=0.05)
    return save_figure(fig, out)


def _short(smiles: str, width: int = 30) -> str:
    return smiles if len(smiles) <= width else smiles[: width - 1] + "\u2026"


def _legend(smiles: str, mol, properties: Sequence[str]) -> str:
    from molvae.chem import PROPERTIES

    labels = {"qed": "QED", "logp": "logP", "sa": "SA", "mw": "MW", "tpsa": "TPSA", "rings": "rings"}
    parts = []
    for p in properties:
        try:
            v = PROPERTIES[p](mol)
        except Exception:  # shown as missing rather than failing the whole figure
            continue
        parts.append(f"{labels.get(p, p)} {v:.0f}" if p in ("mw", "rings") else f"{labels.get(p, p)} {v:.2f}")
    return _short(smiles) + "\n" + "  ".join(parts)


def plot_molecule_grid(smiles: Any, out: str | Path, n: int = 24, per_row: int = 6,
                       properties: Sequence[str] = ("qed", "logp", "sa"), size: tuple[int, int] = (260, 240),
                       seed: int | None = None) -> Path:
    """The first ``n`` unique valid molecules (a random ``n`` with ``seed``) drawn in a grid, with
    SMILES and properties as legends."""
    mols = valid_mols(smiles_list(smiles, "molecules"))
    if not mols:
        raise DataError("molecules: no valid molecule to draw")
    if seed is not None and len(mols) > n:
        mols = [mols[i] for i in np.sort(np.random.default_rng(seed).choice(len(mols), n, replace=False))]
    mols = mols[:n]
    return _draw_grid([m for _, m in mols], [_legend(s, m, properties) for s, m in mols], out, per_row, size)


def plot_training_curves(log: str | Path, out: str | Path) -> Path:
    """Reconstruction, KL, KL weight (beta) and validation scores per epoch from a ``train_log.csv``
    (or a run directory holding one)."""
    import pandas as pd

    log = Path(log)
    if log.is_dir():
        log = log / "train_log.csv"
    if not log.exists():
        raise DataError(f"{log}: training log not found")
    try:
        df = pd.read_csv(log)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise DataError(f"{log}: cannot read training log ({exc})") from None
    if df.empty or "epoch" not in df.columns:
        raise DataError(f"{log}: no epochs logged (expected an 'epoch' column and at least one row)")
    panels = [
        ("reconstruction (nats/molecule)", ("train_recon", "val_recon")),
        ("KL (nats/molecule)", ("train_kl", "val_kl")),
        ("KL weight beta", ("beta",)),
        ("validation", ("val_token_acc", "val_exact", "sample_validity", "sample_uniqueness")),
    ]
    panels = [(t, [c for c in cols if c in df.columns and df[c].notna().any()]) for t, cols in panels]
    panels = [(t, cols) for t, cols in panels if cols]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.3), squeeze=False)
    x = df["epoch"]
    for ax, (title, cols) in zip(axes[0], panels):
        for c in cols:
            ax.plot(x, df[c], marker="o", markersize=3, label=c.replace("_", " "))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if len(cols) > 1 or title == "validation":
            ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save_figure(fig, out)


def plot_interpolation(path: "str | Path | pd.DataFrame", out: str | Path,
                       properties: Sequence[str] = ("qed",), size: tuple[int, int] = (230, 230)) -> Path:
    """A decoded latent path (columns ``step, t, smiles``, as ``model.interpolate`` returns and
    ``molvae interpolate`` writes) as one strip of molecules; invalid decodes are shown as such."""
    import pandas as pd
    from rdkit import Chem

    from molvae.chem import parse_smiles

    if isinstance(path, (str, Path)):
        try:
            df = pd.read_csv(path)
        except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
            raise DataError(f"{path}: cannot read interpolation table ({exc})") from None
    else:
        df = path
    missing = [c for c in ("t", "smiles") if c not in df.columns]
    if missing or df.empty:
        raise DataError(f"interpolation table: expected columns step, t, smiles and at least one row"
                        f"{'; missing ' + ', '.join(missing) if missing else ''}")
    mols, legends = [], []
    for t, smi in zip(df["t"], df["smiles"]):
        mol, _ = parse_smiles(smi) if isinstance(smi, str) and smi else (None, None)
        if mol is None:
            mols.append(None)
            legends.append(f"t = {float(t):.2f}\n(invalid)")
        else:
            legends.append(f"t = {float(t):.2f}\n" + _legend(Chem.MolToSmiles(mol), mol, properties))
            mols.append(mol)
    return _draw_grid(mols, legends, out, per_row=len(mols), size=size)
