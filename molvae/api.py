"""``MolVAE``: the one object a pipeline holds: train or load a model, then encode, decode and sample.

    >>> model = MolVAE.fit("data/moses_sample.smi", preset="small", epochs=5, out="runs/demo")
    >>> model.sample(1000)              # DataFrame: smiles, valid, unique, novel
    >>> z = model.encode(["CCO", "c1ccccc1"]); model.decode(z)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from molvae.errors import CheckpointError, ConfigError, InvalidSmilesError
from molvae.model import PRESETS, VAE, ModelConfig, load_config_file
from molvae.vocab import Vocab

__all__ = ["MolVAE"]

MODEL_FILES = ("config.json", "vocab.json", "model.safetensors")


class MolVAE:
    """A trained SELFIES VAE with its vocabulary, config and the training set's hashes (for novelty)."""

    def __init__(self, net: VAE, vocab: Vocab, config: ModelConfig, device: torch.device,
                 train_hashes: np.ndarray | None = None, path: Path | None = None):
        self.net = net.to(device).eval()
        self.vocab = vocab
        self.config = config
        self.device = device
        self.train_hashes = np.sort(train_hashes) if train_hashes is not None else np.zeros(0, dtype=np.uint64)
        self.path = path

    def __repr__(self) -> str:
        c = self.config
        return (f"MolVAE(latent_dim={c.latent_dim}, vocab={len(self.vocab)}, enc={c.enc_hidden}x{c.enc_layers}bi, "
                f"dec={c.dec_hidden}x{c.dec_layers}, device={self.device.type}, path={str(self.path) if self.path else None})")

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    # ------------------------------------------------------------------ training, saving, loading
    @classmethod
    def fit(
        cls,
        data: Any,
        *,
        out: str | Path | None = None,
        config: ModelConfig | str | Path | dict | None = None,
        preset: str | None = None,
        device: str = "auto",
        resume: bool = False,
        progress: bool = True,
        smiles_column: str | None = None,
        **options: Any,
    ) -> "MolVAE":
        """Train a model on SMILES (a file path, list, Series/DataFrame or RDKit Mols).

        ``config`` is a :class:`ModelConfig`, a mapping or a TOML/YAML/JSON file; ``preset`` one of
        :data:`molvae.model.PRESETS`; any :class:`ModelConfig` field can also be passed as a keyword
        (``epochs=10``, ``latent_dim=64``). With ``out`` the run directory holds the model and its logs
        and ``resume=True`` continues a killed run from its last checkpoint.
        """
        from molvae.train import train

        cfg = build_config(config, preset, options)
        result = train(data, cfg, out_dir=out, device=device, resume=resume, progress=progress,
                       smiles_column=smiles_column)
        from molvae.io import smiles_hashes

        model = cls(result.net, result.vocab, result.config, next(result.net.parameters()).device,
                    smiles_hashes(result.train_smiles), Path(out) if out else None)
        model.history = result.history
        return model

    def save(self, path: str | Path) -> Path:
        """Write the model directory: config.json, vocab.json, model.safetensors, train_hashes.npy."""
        from molvae.io import save_weights

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.config.save(path / "config.json")
        self.vocab.save(path / "vocab.json")
        save_weights(self.net.state_dict(), path / "model.safetensors", metadata={"format": "molvae-1"})
        np.save(path / "train_hashes.npy", self.train_hashes, allow_pickle=False)
        if self.path is not None and (self.path / "train_log.csv").exists() and self.path.resolve() != path.resolve():
            (path / "train_log.csv").write_text((self.path / "train_log.csv").read_text())
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> "MolVAE":
        """Load a model directory (or a shipped pretrained name). Never executes code from the files."""
        from molvae.io import load_weights
        from molvae.train import resolve_device

        path = Path(path)
        if not path.is_dir():
            raise CheckpointError(f"{path}: model directory not found")
        missing = [f for f in MODEL_FILES if not (path / f).exists()]
        if missing:
            raise CheckpointError(f"{path}: not a molvae model directory (missing {', '.join(missing)})")
        try:
            config = ModelConfig.load(path / "config.json")
        except ConfigError as exc:
            raise CheckpointError(str(exc)) from None
        vocab = Vocab.load(path / "vocab.json")
        net = VAE(config, len(vocab))
        weights = load_weights(path / "model.safetensors")
        try:
            net.load_state_dict({k: v.float() for k, v in weights.items()})
        except RuntimeError as exc:
            first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
            raise CheckpointError(f"{path / 'model.safetensors'}: weights do not match config.json ({first})") from None
        hashes = None
        if (path / "train_hashes.npy").exists():
            try:
                hashes = np.load(path / "train_hashes.npy", allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise CheckpointError(f"{path / 'train_hashes.npy'}: unreadable ({exc})") from None
        return cls(net, vocab, config, resolve_device(device), hashes, path)

    # ------------------------------------------------------------------ encoding and decoding
    def _tokens(self, molecules: Sequence[Any], skip_unknown: bool) -> tuple[torch.Tensor, torch.Tensor]:
        from molvae.chem import mol_from_smiles, to_canonical
        from molvae.errors import TooLongError, UnknownTokenError
        from molvae.vocab import smiles_to_selfies

        rows = []
        for i, m in enumerate(molecules):
            label = m if isinstance(m, str) else f"molecule {i}"
            try:
                mol = mol_from_smiles(m)
            except InvalidSmilesError as exc:
                raise InvalidSmilesError(f"input {i + 1}: {exc}") from None
            selfies = smiles_to_selfies(to_canonical(mol, stereo=self.config.stereo,
                                                     largest_fragment=self.config.largest_fragment))
            if selfies is None:
                raise InvalidSmilesError(f"input {i + 1} {label!r}: cannot be encoded as SELFIES")
            try:
                rows.append(self.vocab.encode(selfies, max_len=self.config.max_len, skip_unknown=skip_unknown))
            except (UnknownTokenError, TooLongError) as exc:
                raise type(exc)(f"input {i + 1} {label!r}: {exc}") from None
        lengths = torch.tensor([max(len(r), 1) for r in rows], dtype=torch.long)
        tokens = torch.full((len(rows), int(lengths.max()) if rows else 1), self.vocab.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            tokens[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return tokens, lengths

    @torch.no_grad()
    def encode_posterior(self, molecules: Sequence[Any] | str, skip_unknown: bool = False,
                         batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means and log-variances ``(n, latent_dim)`` of molecules (SMILES or RDKit Mols)."""
        if isinstance(molecules, str):
            molecules = [molecules]
        molecules = list(molecules)
        mus, logvars = [], []
        for start in range(0, len(molecules), batch_size):
            tokens, lengths = self._tokens(molecules[start:start + batch_size], skip_unknown)
            mu, logvar = self.net.encode(tokens.to(self.device), lengths.to(self.device))
            mus.append(mu.float().cpu())
            logvars.append(logvar.float().cpu())
        if not mus:
            return np.zeros((0, self.latent_dim), np.float32), np.zeros((0, self.latent_dim), np.float32)
        return torch.cat(mus).numpy(), torch.cat(logvars).numpy()

    def encode(self, molecules: Sequence[Any] | str, skip_unknown: bool = False, batch_size: int = 1024) -> np.ndarray:
        """Latent means ``(n, latent_dim)`` float32.

        :raises InvalidSmilesError: a molecule does not parse (the message names its position).
        :raises UnknownTokenError: a molecule uses a token the model never saw (unless ``skip_unknown``).
        :raises TooLongError: a molecule has more tokens than ``config.max_len``.
        """
        return self.encode_posterior(molecules, skip_unknown, batch_size)[0]

    def decode(self, z: np.ndarray | torch.Tensor, temperature: float = 0.0, seed: int | None = None,
               batch_size: int = 1024, n_workers: int | None = None, progress: bool = False) -> list[str | None]:
        """Canonical SMILES for latent points ``(n, latent_dim)``; ``None`` where decoding is empty or invalid.

        Greedy when ``temperature`` is 0, multinomial sampling (reproducible with ``seed``) otherwise.
        """
        return self._decode(z, temperature, seed, batch_size, n_workers, progress)[0]

    def _decode(self, z, temperature, seed, batch_size, n_workers, progress) -> tuple[list[str | None], list[str]]:
        from molvae.generate import decode_latents

        z = torch.as_tensor(np.asarray(z, dtype=np.float32) if not isinstance(z, torch.Tensor) else z).float()
        if z.ndim == 1:
            z = z[None, :]
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"latent points must have shape (n, {self.latent_dim}), got {tuple(z.shape)}")
        batches = (z[i:i + batch_size] for i in range(0, len(z), batch_size))
        return decode_latents(self.net, self.vocab, batches, max_len=self.config.max_len, device=self.device,
                              temperature=temperature, seed=seed, stereo=self.config.stereo, n_workers=n_workers,
                              total=len(z), progress=progress)

    def sample(self, n: int, temperature: float = 1.0, seed: int | None = 0, batch_size: int = 1024,
               n_workers: int | None = None, progress: bool = True) -> pd.DataFrame:
        """Decode ``n`` prior samples z ~ N(0, I).

        Returns a DataFrame with ``smiles`` (None if invalid), ``selfies``, ``valid``, ``unique``
        (first occurrence within this call) and ``novel`` (not in the training set).
        """
        from molvae.generate import prior_latents

        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        batches = prior_latents(n, self.latent_dim, seed, batch_size)
        from molvae.generate import decode_latents

        smiles, selfies = decode_latents(self.net, self.vocab, batches, max_len=self.config.max_len,
                                         device=self.device, temperature=temperature, seed=seed,
                                         stereo=self.config.stereo, n_workers=n_workers, total=n, progress=progress)
        return self._annotate(smiles, selfies)

    def _annotate(self, smiles: list[str | None], selfies: list[str] | None = None) -> pd.DataFrame:
        df = pd.DataFrame({"smiles": pd.Series(smiles, dtype=object)})
        if selfies is not None:
            df["selfies"] = selfies
        df["valid"] = df["smiles"].notna()
        df["unique"] = df["valid"] & ~df["smiles"].duplicated()
        novel = np.zeros(len(df), dtype=bool)
        valid_idx = np.flatnonzero(df["valid"].to_numpy())
        if len(valid_idx):
            novel[valid_idx] = self.is_novel([smiles[i] for i in valid_idx])
        df["novel"] = novel
        return df

    def is_novel(self, smiles: Sequence[str]) -> np.ndarray:
        """True where a canonical SMILES is not in the training set (by 64-bit hash)."""
        from molvae.io import smiles_hashes

        return ~np.isin(smiles_hashes(smiles), self.train_hashes)

    # ------------------------------------------------------------------ latent-space exploration
    def reconstruct(self, molecules: Sequence[Any] | str, temperature: float = 0.0, seed: int | None = 0) -> pd.DataFrame:
        """Encode then decode (greedy by default): columns ``input``, ``smiles``, ``exact``."""
        from molvae.chem import canonicalize

        molecules = [molecules] if isinstance(molecules, str) else list(molecules)
        decoded = self.decode(self.encode(molecules), temperature=temperature, seed=seed)
        inputs = [m if isinstance(m, str) else _mol_smiles(m) for m in molecules]
        canon = [canonicalize(s, stereo=self.config.stereo) for s in inputs]
        return pd.DataFrame({"input": inputs, "smiles": decoded,
                             "exact": [d is not None and d == c for d, c in zip(decoded, canon)]})

    def interpolate(self, a: Any, b: Any, steps: int = 8, method: str = "slerp") -> pd.DataFrame:
        """Decode ``steps`` points on the path between two molecules' latent means (``linear`` or ``slerp``)."""
        from molvae.generate import lerp, slerp

        if method not in ("linear", "slerp"):
            raise ConfigError(f"interpolation method must be linear or slerp, got {method!r}")
        if steps < 2:
            raise ConfigError(f"interpolation needs at least 2 steps, got {steps}")
        za, zb = self.encode([a, b])
        t = np.linspace(0.0, 1.0, steps)
        z = (slerp if method == "slerp" else lerp)(za, zb, t)
        return pd.DataFrame({"step": np.arange(steps), "t": t, "smiles": self.decode(z)})

    def neighbours(self, molecule: Any, n: int = 50, radius: float = 0.5, seed: int | None = 0,
                   unique: bool = True) -> pd.DataFrame:
        """Molecules decoded at random points within ``radius`` (L2) of a molecule's latent mean.

        Columns: ``smiles``, ``distance`` (latent), ``similarity`` (Morgan r2 Tanimoto to the input),
        sorted by similarity; with ``unique`` each molecule appears once.
        """
        from rdkit import DataStructs

        from molvae.chem import mol_from_smiles, morgan_fingerprint, parse_smiles

        z0 = self.encode([molecule])[0]
        gen = np.random.default_rng(seed)
        directions = gen.standard_normal((n, self.latent_dim))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        distances = radius * gen.uniform(0, 1, n) ** (1.0 / self.latent_dim)  # uniform in the ball
        z = z0[None, :] + directions * distances[:, None]
        smiles = self.decode(z)
        fp0 = morgan_fingerprint(mol_from_smiles(molecule))
        sims = []
        for s in smiles:
            mol = parse_smiles(s)[0] if s else None
            sims.append(DataStructs.TanimotoSimilarity(fp0, morgan_fingerprint(mol)) if mol else np.nan)
        df = pd.DataFrame({"smiles": smiles, "distance": distances, "similarity": sims}).dropna(subset=["smiles"])
        if unique:
            df = df.sort_values("distance").drop_duplicates("smiles")
        return df.sort_values("similarity", ascending=False).reset_index(drop=True)


def _mol_smiles(mol: Any) -> str:
    from rdkit import Chem

    return Chem.MolToSmiles(mol)


def build_config(config: ModelConfig | str | Path | dict | None, preset: str | None,
                 options: dict[str, Any]) -> ModelConfig:
    """Resolve preset < config file/mapping < keyword options into one validated :class:`ModelConfig`."""
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    values: dict[str, Any] = dict(PRESETS.get(preset or "default", {}))
    if isinstance(config, ModelConfig):
        values.update(config.to_dict())
    elif isinstance(config, dict):
        values.update(config)
    elif config is not None:
        values.update(load_config_file(config))
    values.update({k: v for k, v in options.items() if v is not None})
    return ModelConfig.from_dict(values, source="options")
