"""molvae: a SELFIES variational autoencoder for generative molecular design.

    >>> from molvae import MolVAE
    >>> model = MolVAE.fit("data/moses_sample.smi", epochs=5)
    >>> model.sample(1000).head()

Heavy modules (torch, RDKit) load on first use, so ``import molvae`` and ``molvae --help`` are quick.
The modules stack in layers, each importing only from those below it (ARCHITECTURE.md, kept true by
tests/test_layers.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["MolVAE", "ModelConfig", "MolVAEError"]
__version__ = "0.1.0"

from molvae.errors import MolVAEError

if TYPE_CHECKING:  # pragma: no cover
    from molvae.api import MolVAE
    from molvae.model import ModelConfig


def __getattr__(name: str):
    if name == "MolVAE":
        from molvae.api import MolVAE

        return MolVAE
    if name == "ModelConfig":
        from molvae.model import ModelConfig

        return ModelConfig
    raise AttributeError(f"module 'molvae' has no attribute {name!r}")
