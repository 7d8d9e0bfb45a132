"""Figures (temporary: training curves only; the full report module replaces this)."""

from __future__ import annotations

from pathlib import Path


def plot_training_curves(log_csv: str | Path, out: str | Path) -> Path:
    """Reconstruction, KL, beta and validation accuracy per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    log = pd.read_csv(log_csv)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
    for ax, cols, title in zip(axes, [("train_recon", "val_recon"), ("train_kl", "val_kl"), ("beta",),
                                      ("val_token_acc", "val_exact", "sample_validity")],
                               ["reconstruction (nats/mol)", "KL (nats/mol)", "KL weight", "validation"]):
        for c in cols:
            ax.plot(log["epoch"], log[c], marker="o", label=c)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)
