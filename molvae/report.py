"""Figures people would rather look at than read: PNGs and an ``index.html`` that shows them.

This module adds what needs a model (:func:`plot_latent_pca`, sampling a run's model) to the
figures of :mod:`molvae.figures`, and writes the report page.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from molvae.checkpoint import model_location
from molvae.errors import DataError, MolVAEError
from molvae.figures import (  # the figures that need no model; re-exported, they lived here before
    REPORT_PROPERTIES,
    plot_interpolation,
    plot_molecule_grid,
    plot_property_distributions,
    plot_training_curves,
    property_values,
    pyplot,
    save_figure,
    smiles_list,
    valid_mols,
)

if TYPE_CHECKING:  # pragma: no cover
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
    mols = valid_mols(smiles_list(smiles, "molecules"), max_molecules, seed)
    kept, z = _encodable(model, [s for s, _ in mols])
    if len(kept) < 3:
        raise DataError(f"latent PCA: only {len(kept)} molecules could be encoded by the model; need at least 3")
    by_smiles = dict(mols)
    values = property_values([(s, by_smiles[s]) for s in kept], [color_by])[:, 0]
    zc = z.astype(np.float64) - z.mean(axis=0)
    _, sv, vt = np.linalg.svd(zc, full_matrices=False)
    xy = zc @ vt[:2].T
    explained = sv[:2] ** 2 / max((sv ** 2).sum(), 1e-12)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.2, 5.2))
    order = np.argsort(values)
    sc = ax.scatter(xy[order, 0], xy[order, 1], c=values[order], s=9, cmap="viridis", alpha=0.85, linewidths=0)
    fig.colorbar(sc, ax=ax, label=REPORT_PROPERTIES.get(color_by, color_by))
    ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({explained[1]:.0%} of variance)")
    ax.set_title(f"latent means of {len(kept)} molecules", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return save_figure(fig, out)


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
    from molvae.chem import quiet_rdkit

    with quiet_rdkit():  # generated molecules are data: RDKit's warnings about them are not news
        return _write_report(source, out, ref=ref, model=model, train=train, metrics=metrics, n_sample=n_sample,
                             color_by=color_by, n_jobs=n_jobs, device=device, cache_dir=cache_dir,
                             progress=progress)


def _write_report(source: Any, out: str | Path, ref: Any = None, model: "MolVAE | str | Path | None" = None,
                  train: Any = None, metrics: dict | None = None, n_sample: int = 2000, color_by: str = "logp",
                  n_jobs: int | None = None, device: str = "auto", cache_dir: str | Path | None = None,
                  progress: bool = True) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures: list[Path] = []
    notes: list[str] = []
    generated: list[str | None] | None = None
    interpolation = None
    src_path = model_location(source) if isinstance(source, (str, Path)) else None
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
            try:
                metrics = json.loads((src_path / "metrics.json").read_text(encoding="utf-8"))
            except ValueError as exc:
                raise DataError(f"{src_path / 'metrics.json'}: unreadable ({exc})") from None
    elif src_path is not None and _is_interpolation(src_path):
        interpolation = src_path
    else:
        generated = smiles_list(source, "generated molecules")

    if model is not None and not hasattr(model, "encode"):
        from molvae.api import MolVAE

        model = MolVAE.load(model, device=device)
    sampled = None
    if generated is None and interpolation is None and model is not None:
        sampled = model.sample(n_sample, seed=0, progress=progress)
        generated = sampled["smiles"].tolist()
        notes.append(f"{n_sample} molecules sampled from the model (temperature 1, seed 0); "
                     f"{sampled.attrs['acceptance_rate']:.1%} of the {sampled.attrs['n_decoded']} token strings "
                     "decoded needed no SELFIES repair (the others were drawn again).")

    if generated is not None:
        if metrics is None and (ref is not None or train is not None):
            from molvae.metrics import evaluate

            metrics = evaluate(generated, ref=ref, train=train, n_jobs=n_jobs, device=device,
                               cache_dir=cache_dir, progress=progress)
            if sampled is not None:
                metrics["acceptance_rate"] = sampled.attrs["acceptance_rate"]
        if any(isinstance(s, str) and s for s in generated):
            figures.append(plot_property_distributions(generated, out / "properties.png", ref=ref))
            figures.append(plot_molecule_grid(generated, out / "molecules.png"))
        else:
            notes.append("No valid generated molecule: no property or molecule figures.")
    if interpolation is not None:
        figures.append(plot_interpolation(interpolation, out / "interpolation.png"))
    if model is not None:
        pool = smiles_list(ref, "reference set") if ref is not None else (generated or [])
        _model_figures(model, pool, out, color_by, interpolation is None, figures, notes)
    if metrics is not None:
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    index = out / "index.html"
    index.write_text(_html(source, figures, metrics, notes), encoding="utf-8")
    return index


def _model_figures(model: "MolVAE", pool: list, out: Path, color_by: str, interpolate: bool, figures: list[Path],
                   notes: list[str]) -> None:
    """The latent PCA of ``pool`` and (``interpolate``) a path between two of its molecules; a figure
    that cannot be drawn becomes a note."""
    try:
        figures.append(plot_latent_pca(model, pool, out / "latent_pca.png", color_by=color_by))
    except DataError as exc:
        notes.append(f"No latent PCA: {exc}")
    if interpolate:
        ends = [s for s, _ in valid_mols(pool, limit=None)[:2]]
        try:
            path = model.interpolate(ends[0], ends[1], steps=8) if len(ends) == 2 else None
        except MolVAEError as exc:  # an unencodable end point costs one figure, not the report
            path, reason = None, str(exc).splitlines()[0]
        else:
            reason = "fewer than two valid molecules to interpolate between"
        if path is None:
            notes.append(f"No interpolation: {reason}")
        else:
            path.to_csv(out / "interpolation.csv", index=False)
            figures.append(plot_interpolation(path, out / "interpolation.png"))


_SAMPLING_METRICS = {"acceptance_rate": "share of the token strings sampled that needed no SELFIES repair "
                                        "(the others were drawn again)"}


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
                         f"<td>{html.escape(METRIC_DESCRIPTIONS.get(k, _SAMPLING_METRICS.get(k, '')))}</td></tr>")
        parts.append("</table>")
    for fig in figures:
        caption = _FIGURES.get(fig.name, fig.stem)
        parts.append(f"<figure><img src='{html.escape(fig.name)}' alt='{html.escape(fig.stem)}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
