"""Figures people would rather look at than read: PNGs and an ``index.html`` that shows them.

    >>> from molvae.report import write_report
    >>> write_report("runs/zinc", "report/", ref="moses-test")     # a run directory (model + train_log.csv)
    >>> write_report("sampled.smi", "report/", ref="ref.smi")      # any file of generated SMILES

Each ``plot_*`` function writes one PNG and returns its path:

* :func:`plot_property_distributions`: logP, SA, QED, molecular weight and ring count, generated vs reference;
* :func:`plot_molecule_grid`: molecules drawn by RDKit, with SMILES and properties as legends;
* :func:`plot_training_curves`: reconstruction, KL, KL weight and validation scores per epoch;
* :func:`plot_latent_pca`: a 2-D PCA of latent means, coloured by a property (needs a model);
* :func:`plot_interpolation`: a decoded latent path as a strip of molecule images.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from molvae.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from molvae.api import MolVAE

__all__ = [
    "plot_property_distributions",
    "plot_molecule_grid",
    "plot_training_curves",
    "plot_latent_pca",
    "plot_interpolation",
    "write_report",
    "REPORT_PROPERTIES",
]

REPORT_PROPERTIES = {"logp": "logP", "sa": "SA score", "qed": "QED", "mw": "molecular weight", "rings": "rings"}
"""Properties drawn in the distribution figure (keys of :data:`molvae.chem.PROPERTIES`) and their labels."""

_GEN_COLOUR, _REF_COLOUR = "#d95f02", "#1b9e77"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _smiles_list(source: Any, what: str) -> list[str | None]:
    from molvae.metrics import _read_generated

    try:
        return _read_generated(source)
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from None


def _valid_mols(smiles: Sequence[str | None], limit: int | None = None, seed: int = 0, unique: bool = True):
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


def _props(mols: list, names: Sequence[str]) -> np.ndarray:
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

    gen = _valid_mols(_smiles_list(generated, "generated molecules"), max_molecules, seed)
    if not gen:
        raise DataError("generated molecules: no valid molecule to plot")
    refm = _valid_mols(_smiles_list(ref, "reference set"), max_molecules, seed) if ref is not None else []
    names = list(properties)
    pg, pr = _props(gen, names), _props(refm, names)
    plt = _plt()
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
    return _save(fig, out)


def _save(fig, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    _plt().close(fig)
    return out


def _draw_grid(mols: list, legends: list[str], out: str | Path, per_row: int, size: tuple[int, int]) -> Path:
    """Molecules drawn by RDKit in a grid, each with a (multi-line) legend set by matplotlib, as PNG.

    ``None`` in ``mols`` leaves an empty cell with its legend (an invalid decode, say).
    """
    import io

    import matplotlib.image as mpimg
    from rdkit.Chem.Draw import rdMolDraw2D

    plt = _plt()
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
    return _save(fig, out)


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
    mols = _valid_mols(_smiles_list(smiles, "molecules"))
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
    plt = _plt()
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
    return _save(fig, out)


def _encodable(model: "MolVAE", smiles: list[str]) -> tuple[list[str], np.ndarray]:
    """Latent means of the molecules the model can encode (unknown tokens / too long are left out)."""
    from molvae.errors import MolVAEError

    kept, zs = [], []
    for start in range(0, len(smiles), 512):
        chunk = smiles[start:start + 512]
        try:
            zs.append(model.encode(chunk))
            kept += chunk
        except MolVAEError:
            for s in chunk:
                try:
                    zs.append(model.encode([s]))
                    kept.append(s)
                except MolVAEError:
                    continue
    return kept, (np.concatenate(zs) if zs else np.zeros((0, model.latent_dim), np.float32))


def plot_latent_pca(model: "MolVAE", smiles: Any, out: str | Path, color_by: str = "logp",
                    max_molecules: int = 2000, seed: int = 0) -> Path:
    """Latent means of (up to ``max_molecules``) molecules projected on their first two principal
    components, coloured by a property of :data:`molvae.chem.PROPERTIES`."""
    from molvae.chem import PROPERTIES

    if color_by not in PROPERTIES:
        from molvae.errors import ConfigError

        raise ConfigError(f"unknown property {color_by!r} to colour by; expected one of {', '.join(PROPERTIES)}")
    mols = _valid_mols(_smiles_list(smiles, "molecules"), max_molecules, seed)
    kept, z = _encodable(model, [s for s, _ in mols])
    if len(kept) < 3:
        raise DataError(f"latent PCA: only {len(kept)} molecules could be encoded by the model; need at least 3")
    by_smiles = dict(mols)
    values = _props([(s, by_smiles[s]) for s in kept], [color_by])[:, 0]
    zc = z.astype(np.float64) - z.mean(axis=0)
    _, sv, vt = np.linalg.svd(zc, full_matrices=False)
    xy = zc @ vt[:2].T
    explained = sv[:2] ** 2 / max((sv ** 2).sum(), 1e-12)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 5.2))
    order = np.argsort(values)
    sc = ax.scatter(xy[order, 0], xy[order, 1], c=values[order], s=9, cmap="viridis", alpha=0.85, linewidths=0)
    fig.colorbar(sc, ax=ax, label=REPORT_PROPERTIES.get(color_by, color_by))
    ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({explained[1]:.0%} of variance)")
    ax.set_title(f"latent means of {len(kept)} molecules", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _save(fig, out)


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


# ------------------------------------------------------------------------------------------ the report

_FIGURES = {
    "training_curves.png": "Training curves: reconstruction and KL terms of the ELBO, the KL weight, "
                           "and validation scores per epoch.",
    "properties.png": "Property distributions of the generated molecules against the reference set "
                      "(W1: Wasserstein-1 distance).",
    "molecules.png": "Generated molecules (the first unique valid ones), with SMILES and properties.",
    "latent_pca.png": "Latent space: PCA of the encoder's posterior means, coloured by a property.",
    "interpolation.png": "A path through latent space between two molecules, decoded step by step.",
}


def _is_interpolation(path: Path) -> bool:
    if path.suffix.lower() not in (".csv", ".tsv"):
        return False
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = fh.readline().strip().replace("\t", ",").split(",")
    return {"t", "smiles"} <= set(header)


def write_report(source: Any, out: str | Path, ref: Any = None, model: "MolVAE | str | Path | None" = None,
                 train: Any = None, metrics: dict | None = None, n_sample: int = 2000, color_by: str = "logp",
                 n_jobs: int | None = None, device: str = "auto", cache_dir: str | Path | None = None,
                 progress: bool = True) -> Path:
    """Write the figures that apply to ``source`` and an ``index.html`` showing them; return its path.

    ``source``: a run/model directory (training curves; ``n_sample`` molecules are sampled from its
    model), an interpolation CSV (``step, t, smiles``), or generated SMILES (a file or a list).
    ``model`` (a :class:`~molvae.api.MolVAE` or its directory) adds the latent PCA (of ``ref``, else
    of the generated molecules) and an interpolation between two of those molecules. With ``ref``
    the metrics are computed (:func:`molvae.metrics.evaluate`) unless ``metrics`` are given or a
    ``metrics.json`` sits in the run directory.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures: list[Path] = []
    notes: list[str] = []
    generated: list[str | None] | None = None
    interpolation = None
    src_path = Path(source) if isinstance(source, (str, Path)) else None
    if src_path is not None and not src_path.exists():
        raise DataError(f"{source}: no such file or directory")

    if src_path is not None and src_path.is_dir():
        if (src_path / "train_log.csv").exists():
            figures.append(plot_training_curves(src_path / "train_log.csv", out / "training_curves.png"))
        else:
            notes.append(f"{src_path} has no train_log.csv: no training curves.")
        if model is None and (src_path / "config.json").exists():
            model = src_path
        if metrics is None and ref is None and (src_path / "metrics.json").exists():
            metrics = json.loads((src_path / "metrics.json").read_text(encoding="utf-8"))
    elif src_path is not None and _is_interpolation(src_path):
        interpolation = src_path
    else:
        generated = _smiles_list(source, "generated molecules")

    if model is not None and not hasattr(model, "encode"):
        from molvae.api import MolVAE

        model = MolVAE.load(model, device=device)
    if generated is None and interpolation is None and model is not None:
        generated = model.sample(n_sample, seed=0, progress=progress)["smiles"].tolist()
        notes.append(f"{n_sample} molecules sampled from the model (temperature 1, seed 0).")

    if generated is not None:
        if metrics is None and (ref is not None or train is not None):
            from molvae.metrics import evaluate

            metrics = evaluate(generated, ref=ref, train=train, n_jobs=n_jobs, device=device,
                               cache_dir=cache_dir, progress=progress)
        if any(isinstance(s, str) and s for s in generated):
            figures.append(plot_property_distributions(generated, out / "properties.png", ref=ref))
            figures.append(plot_molecule_grid(generated, out / "molecules.png"))
        else:
            notes.append("No valid generated molecule: no property or molecule figures.")
    if interpolation is not None:
        figures.append(plot_interpolation(interpolation, out / "interpolation.png"))
    if model is not None:
        pool = _smiles_list(ref, "reference set") if ref is not None else (generated or [])
        try:
            figures.append(plot_latent_pca(model, pool, out / "latent_pca.png", color_by=color_by))
        except DataError as exc:
            notes.append(f"No latent PCA: {exc}")
        if interpolation is None:
            ends = [s for s, _ in _valid_mols(pool, limit=None)[:2]]
            try:
                path = model.interpolate(ends[0], ends[1], steps=8)
                path.to_csv(out / "interpolation.csv", index=False)
                figures.append(plot_interpolation(path, out / "interpolation.png"))
            except Exception as exc:  # noqa: BLE001 - an unencodable end point costs one figure, not the report
                notes.append(f"No interpolation: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    if metrics is not None:
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    index = out / "index.html"
    index.write_text(_html(source, figures, metrics, notes), encoding="utf-8")
    return index


def _html(source: Any, figures: list[Path], metrics: dict | None, notes: list[str]) -> str:
    from molvae.metrics import METRIC_DESCRIPTIONS

    label = str(source) if isinstance(source, (str, Path)) else f"{len(source)} molecules"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>molvae report: {html.escape(label)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1500px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;font-size:14px}td,th{padding:3px 12px;border-bottom:1px solid #ddd;"
        "text-align:left}td.v{text-align:right;font-variant-numeric:tabular-nums}"
        "figure{margin:1.5em 0}img{max-width:100%;border:1px solid #eee}figcaption{color:#555}</style>",
        f"</head><body><h1>molvae report</h1><p>source: <code>{html.escape(label)}</code></p>",
    ]
    if metrics:
        parts.append("<h2>Metrics</h2><table><tr><th>metric</th><th>value</th><th>meaning</th></tr>")
        for k, v in metrics.items():
            if v is None:
                text = "-"
            elif isinstance(v, int) and not isinstance(v, bool):
                text = f"{v:,}"
            else:
                text = f"{float(v):.4f}"
            parts.append(f"<tr><td>{html.escape(k)}</td><td class='v'>{text}</td>"
                         f"<td>{html.escape(METRIC_DESCRIPTIONS.get(k, ''))}</td></tr>")
        parts.append("</table>")
    for fig in figures:
        caption = _FIGURES.get(fig.name, fig.stem)
        parts.append(f"<figure><img src='{html.escape(fig.name)}' alt='{html.escape(fig.stem)}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
