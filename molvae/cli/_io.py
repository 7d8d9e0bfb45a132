"""Helpers the CLI's subcommands share: loading a model, reading inputs against it, writing tables."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from molvae.api import MolVAE
    from molvae.data import PreparedData

__all__ = ["load_model", "write_table", "prepared_input", "check_out"]


def check_out(out: str | None) -> None:
    """An ``--out`` file name: checked before any work (a directory there is an error, not a traceback
    at the end). :raises ConfigError:"""
    from molvae.errors import ConfigError

    if out and out != "-" and Path(out).is_dir():
        raise ConfigError(f"{out}: is a directory; --out takes a file name")


def load_model(spec: str, device: str = "auto") -> "MolVAE":
    """A model directory (or, where shipped, a pretrained model's name: :meth:`MolVAE.load` takes both)."""
    from molvae.api import MolVAE

    return MolVAE.load(spec, device=device)


def write_table(df: Any, out: str | None) -> None:
    """Write a table to ``out`` (format by file name; CSV on stdout without one)."""
    from molvae.data import write_molecules

    write_molecules(df, out)
    if out and out != "-":
        print(f"wrote {len(df)} rows to {out}", file=sys.stderr)


def prepared_input(model: "MolVAE", path: str, smiles_column: str | None, skip_unknown: bool,
                   out: str | None) -> "PreparedData":
    """Clean an input file against the model (vocabulary, max length); rejects go beside the output."""
    from molvae.data import prepare_molecules

    data = prepare_molecules(path, max_len=model.config.max_len, stereo=model.config.stereo,
                             largest_fragment=model.config.largest_fragment, smiles_column=smiles_column,
                             vocab=model.vocab, skip_unknown=skip_unknown, dedupe=False)
    print(data.summary(), file=sys.stderr)
    if len(data.rejects):
        base = Path(out) if out and out != "-" else Path(path)
        rejects = base.with_name(base.name.split(".")[0] + ".rejects.csv")
        data.write_rejects(rejects)
        print(f"{len(data.rejects)} rejected rows written to {rejects}", file=sys.stderr)
    return data
