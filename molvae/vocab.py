"""SELFIES encoding and the token vocabulary (saved with the model as ``vocab.json``).

Special tokens: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, then SELFIES tokens in sorted order.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import selfies as sf

from molvae.errors import CheckpointError, TooLongError, UnknownTokenError

if TYPE_CHECKING:  # torch is imported only where token ids become tensors
    import torch

__all__ = ["Vocab", "tokenize", "pad_rows", "teacher_forcing", "smiles_to_selfies", "selfies_to_smiles",
           "selfies_repaired", "split_selfies", "PAD", "BOS", "EOS"]

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
_STRUCTURAL = re.compile(r"^\[[=#\\/]?(Branch|Ring|nop)")
SPECIALS = (PAD, BOS, EOS)


def smiles_to_selfies(smiles: str) -> str | None:
    """SELFIES string for a SMILES, or ``None`` if SELFIES cannot encode it."""
    try:
        return sf.encoder(smiles, strict=True)
    except sf.EncoderError:
        return None


def selfies_to_smiles(selfies: str) -> str:
    """SMILES for a SELFIES string ('' for an empty string: an empty decoding)."""
    try:
        return sf.decoder(selfies)
    except sf.DecoderError:
        return ""


def selfies_repaired(selfies: str, smiles: str) -> bool:
    """True when the SELFIES decoder altered ``selfies`` to give ``smiles`` (its decoding): re-encoding
    ``smiles`` does not give the same string back.

    The decoder keeps every string valid by dropping or weakening tokens that would break a valence
    (and by reading dangling rings and branches its own way). A string encoded from a real molecule
    always comes back unchanged; a generated one that does not is what a SMILES model would have
    written as an invalid string: its low-likelihood mistakes (Skinnider 2024), which molvae rejects by
    default. An empty decoding counts as repaired. Costs one SELFIES encoding (about 0.4 ms).
    """
    return not smiles or smiles_to_selfies(smiles) != selfies


def split_selfies(selfies: str) -> list[str]:
    """Tokens of a SELFIES string, e.g. ``'[C][=O]' -> ['[C]', '[=O]']``."""
    return list(sf.split_selfies(selfies))


class Vocab:
    """Maps SELFIES tokens to integer ids and back.

    ``encode`` raises :class:`UnknownTokenError` naming a token the model never saw (or drops it
    when ``skip_unknown=True``) and :class:`TooLongError` past ``max_len`` tokens.
    """

    def __init__(self, tokens: Iterable[str]):
        tokens = [t for t in tokens if t not in SPECIALS]
        self.itos: list[str] = list(SPECIALS) + sorted(set(tokens))
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}

    pad_id, bos_id, eos_id = 0, 1, 2

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    @classmethod
    def from_selfies(cls, selfies_list: Iterable[str]) -> "Vocab":
        """Vocabulary of every token used in a corpus of SELFIES strings."""
        tokens: set[str] = set()
        for s in selfies_list:
            tokens.update(sf.split_selfies(s))
        return cls(tokens)

    def encode(self, selfies: str, max_len: int | None = None, skip_unknown: bool = False) -> list[int]:
        """Token ids of a SELFIES string, without ``<bos>``/``<eos>``."""
        ids = []
        for tok in sf.split_selfies(selfies):
            i = self.stoi.get(tok)
            if i is None:
                if skip_unknown:
                    continue
                raise UnknownTokenError(f"token {tok} is not in the model's vocabulary ({len(self)} tokens)")
            ids.append(i)
        if max_len is not None and len(ids) > max_len:
            raise TooLongError(f"molecule has {len(ids)} SELFIES tokens, the model's maximum is {max_len}")
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """SELFIES string for token ids; stops at ``<eos>``, ignores ``<pad>``/``<bos>``."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i >= len(SPECIALS):
                out.append(self.itos[i])
        return "".join(out)

    def starts_molecule(self) -> list[bool]:
        """Per token id: can this token begin a molecule? (atoms only: a SELFIES string that starts with a
        branch or ring token decodes to nothing, so generation masks those at the first step)."""
        return [t not in SPECIALS and not _STRUCTURAL.match(t) for t in self.itos]

    def to_json(self) -> str:
        return json.dumps({"tokens": self.itos}, indent=0)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "Vocab":
        try:
            data = json.loads(Path(path).read_text())
            tokens = data["tokens"]
            if list(tokens[: len(SPECIALS)]) != list(SPECIALS) or not all(isinstance(t, str) for t in tokens):
                raise ValueError("special tokens missing")
        except FileNotFoundError:
            raise CheckpointError(f"{path}: vocabulary file not found") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path}: not a molvae vocabulary ({exc})") from None
        vocab = cls(tokens)
        if vocab.itos != list(tokens):
            raise CheckpointError(f"{path}: vocabulary tokens are not in canonical order")
        return vocab


def pad_rows(rows: list[list[int]], pad_id: int = 0, min_length: int = 0) -> "tuple[torch.Tensor, torch.Tensor]":
    """Token-id rows padded with ``pad_id`` into ``(N, max_tokens)`` int64 (at least one column), and their
    lengths ``(N,)``, each at least ``min_length`` (1 for the encoder of a model that must read something)."""
    import torch

    lengths = torch.tensor([max(len(r), min_length) for r in rows], dtype=torch.long)
    width = int(lengths.max()) if len(rows) else 1
    tokens = torch.full((len(rows), max(width, 1)), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return tokens, lengths


def tokenize(selfies: list[str], vocab: Vocab, max_len: int) -> "tuple[torch.Tensor, torch.Tensor]":
    """Pad token ids into ``(N, max_tokens)`` int64 and lengths ``(N,)``."""
    return pad_rows([vocab.encode(s, max_len=max_len) for s in selfies], vocab.pad_id)


def teacher_forcing(tokens: "torch.Tensor", lengths: "torch.Tensor", bos_id: int = Vocab.bos_id,
                    eos_id: int = Vocab.eos_id, pad_id: int = Vocab.pad_id) -> "tuple[torch.Tensor, torch.Tensor]":
    """Decoder inputs (``<bos>`` + tokens) and targets (tokens + ``<eos>``, then ``<pad>``), each ``(B, T+1)``,
    for padded token ids ``(B, T)`` and their lengths ``(B,)``."""
    import torch

    bos = torch.full((tokens.shape[0], 1), bos_id, dtype=tokens.dtype, device=tokens.device)
    inputs = torch.cat([bos, tokens], dim=1)
    targets = torch.cat([tokens, torch.full_like(bos, pad_id)], dim=1)
    targets.scatter_(1, lengths.view(-1, 1), eos_id)
    return inputs, targets
