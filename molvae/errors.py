"""Typed errors for mistakes a user can fix; the CLI prints them as one line and exits non-zero."""

from __future__ import annotations

__all__ = [
    "MolVAEError",
    "InvalidSmilesError",
    "DataError",
    "UnknownTokenError",
    "TooLongError",
    "CheckpointError",
    "ConfigError",
    "ObjectiveError",
]


class MolVAEError(Exception):
    """Base class of user-facing errors: the message alone says what went wrong and where."""


class InvalidSmilesError(MolVAEError, ValueError):
    """A single SMILES handed to the API could not be parsed or sanitized."""


class DataError(MolVAEError, ValueError):
    """An input file or table cannot be used (empty, missing column, no usable molecule, ...)."""


class UnknownTokenError(MolVAEError, ValueError):
    """A molecule uses a SELFIES token that is not in the model's vocabulary."""


class TooLongError(MolVAEError, ValueError):
    """A molecule has more tokens than the model's maximum length."""


class CheckpointError(MolVAEError):
    """A model directory or checkpoint is missing, corrupt or incompatible."""


class ConfigError(MolVAEError, ValueError):
    """A configuration value or file is invalid (unknown key, wrong type, bad value)."""


class ObjectiveError(MolVAEError, ValueError):
    """An objective name, SMARTS pattern or user function cannot be used."""
