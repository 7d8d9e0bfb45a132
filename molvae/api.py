"""``MolVAE``: the one object a pipeline holds: train or load a model, then encode, decode and sample.

    >>> model = MolVAE.fit("data/moses_sample.smi", preset="small", epochs=5, out="runs/demo")
    >>> model.sample(1000)              # DataFrame: smiles, valid, unique, novel
    >>> z = model.encode(["CCO", "c1ccccc1"]); model.decode(z)
    >>> model.log_likelihood(["CCO"], k=100)  # IWAE bound, nats per molecule
    >>> model.ood_score(smiles)         # DataFrame: smiles, score, ood, reason
    >>> cvae = MolVAE.fit(path, conditions=["logp"]); cvae.sample(100, condition={"logp": 3.0})
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from molvae.checkpoint import MODEL_FILES, available_pretrained, load_model, pretrained_path, save_model
from molvae.conditions import ConditionSpec
from molvae.device import resolve_device
from molvae.errors import ConfigError, InvalidSmilesError, MolVAEError
from molvae.generate import (Decoded, PriorStream, decode_latents, lerp, postprocess_pool, prior_batches,
                             sample_accepted, sampling_generator, slerp)
from molvae.likelihood import OODCalibration, score_molecules
from molvae.model import VAE, ModelConfig, build_config, load_config_file  # build_config: re-exported
from molvae.vocab import Vocab, pad_rows

if TYPE_CHECKING:  # pragma: no cover
    from molvae.finetune import BaseModel
    from molvae.guide import PropertyGuide, Steering
    from molvae.latent_flow import LatentFlow
    from molvae.latent_mixture import LatentMixture

__all__ = ["MolVAE", "build_config", "MODEL_FILES"]


class MolVAE:
    """A trained SELFIES VAE with its vocabulary, config and the training set's hashes (for novelty)."""

    def __init__(self, net: VAE, vocab: Vocab, config: ModelConfig, device: torch.device,
                 train_hashes: np.ndarray | None = None, path: Path | None = None,
                 conditions: ConditionSpec | None = None, ood: "OODCalibration | None" = None,
                 likelihood: dict[str, Any] | None = None, guide: "PropertyGuide | None" = None,
                 latent_prior: "LatentMixture | LatentFlow | None" = None):
        self.net = net.to(device).eval()
        self.vocab = vocab
        self.config = config
        self.device = device
        self.train_hashes = np.sort(train_hashes) if train_hashes is not None else np.zeros(0, dtype=np.uint64)
        self.path = path
        self.conditions = conditions  # names and training statistics of a conditional model's conditions
        self.ood = ood  # OOD score calibration (ood.json); None until calibrated
        self.heldout_likelihood = likelihood  # held-out ELBO/IWAE at the end of training (likelihood.json)
        self.guide = guide.to(device).eval() if guide is not None else None  # steers conditional sampling
        self.latent_prior = latent_prior  # a mixture or flow fitted after training to the posteriors (or None)
        if config.n_conditions and conditions is None:
            raise ConfigError("a conditional model needs its condition statistics (conditions.json)")

    def __repr__(self) -> str:
        c = self.config
        return (f"MolVAE(latent_dim={c.latent_dim}, vocab={len(self.vocab)}, enc={c.enc_hidden}x{c.enc_layers}bi, "
                f"dec={c.dec_hidden}x{c.dec_layers}, device={self.device.type}, path={str(self.path) if self.path else None})")

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def condition_names(self) -> list[str]:
        """Properties the model is conditioned on (empty for a plain VAE)."""
        return self.config.condition_names

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
        init: "str | Path | MolVAE | None" = None,
        extend_vocab: bool = False,
        **options: Any,
    ) -> "MolVAE":
        """Train a model on SMILES (a file path, list, Series/DataFrame or RDKit Mols).

        ``config`` is a :class:`ModelConfig`, a mapping or a TOML/YAML/JSON file; ``preset`` one of
        :data:`molvae.model.PRESETS`; any :class:`ModelConfig` field can also be passed as a keyword
        (``epochs=10``, ``latent_dim=64``). With ``out`` the run directory holds the model and its logs
        and ``resume=True`` continues a killed run from its last checkpoint.

        ``init`` (a shipped model's name, a model directory or a :class:`MolVAE`) fine-tunes: the run
        starts from that model's weights, vocabulary and architecture, with the schedule of
        :data:`molvae.finetune.FINETUNE_DEFAULTS` under ``config``/``options`` (a :class:`ModelConfig`
        given here contributes the fields it sets away from the defaults). Molecules with a token
        the model lacks are rejected naming it, unless ``extend_vocab=True`` grows the vocabulary.
        """
        from molvae.train import train

        base = None
        if init is not None and not resume:
            from molvae.finetune import finetune_config

            if preset is not None:
                raise ConfigError("a fine-tuning run takes its architecture from the base model (--from); "
                                  "drop --preset")
            base = _base_model(init)
            if isinstance(config, ModelConfig):  # the settings it changes from the defaults; the rest is the base's
                defaults = ModelConfig().to_dict()
                values = {k: v for k, v in config.to_dict().items() if v != defaults[k]}
            else:
                values = dict(load_config_file(config)) if isinstance(config, (str, Path)) else dict(config or {})
            values.update({k: v for k, v in options.items() if v is not None})
            cfg = finetune_config(base.config, values, base.name)
        else:
            cfg = build_config(config, preset, options)
        changes = None
        if resume:  # the run's saved config decides; options may change its budgets and evaluation settings
            changes = {k: v for k, v in options.items() if v is not None}
        result = train(data, cfg, out_dir=out, device=device, resume=resume, progress=progress,
                       smiles_column=smiles_column, changes=changes, init=base, extend_vocab=extend_vocab)
        from molvae.io import smiles_hashes

        model = cls(result.net, result.vocab, result.config, next(result.net.parameters()).device,
                    smiles_hashes(result.train_smiles), Path(out) if out else None, conditions=result.conditions,
                    ood=result.ood, likelihood=result.likelihood, guide=result.guide,
                    latent_prior=result.latent_prior)
        model.history = result.history
        if out is not None and result.config.final_eval_samples > 0 and os.environ.get("RANK", "0") == "0":
            model.final_evaluation(result.val_smiles, Path(out), progress=progress)
        return model

    def final_evaluation(self, reference: Sequence[str], out: Path, progress: bool = False) -> dict:
        """Score ``config.final_eval_samples`` prior samples with :func:`molvae.metrics.evaluate` against
        held-out molecules (novelty against the training split); written to ``out/metrics.json``."""
        from molvae.metrics import evaluate, format_table

        samples = self.sample(self.config.final_eval_samples, seed=self.config.seed, progress=False)
        metrics = evaluate(samples["smiles"].tolist(), ref=list(reference), train=self.train_hashes,
                           progress=progress)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
        if progress:
            print(f"end-of-training evaluation ({len(samples)} prior samples vs {len(reference)} held-out "
                  f"molecules), written to {out / 'metrics.json'}:\n{format_table(metrics, descriptions=False)}")
        return metrics

    def save(self, path: str | Path) -> Path:
        """Write the model directory (:mod:`molvae.checkpoint`): config.json, vocab.json, model.safetensors,
        train_hashes.npy, and where they exist conditions.json, guide.safetensors, ood.json, likelihood.json,
        the fitted latent prior, and the run's train_log.csv and held-out val.smi."""
        return save_model(path, net=self.net, vocab=self.vocab, config=self.config, train_hashes=self.train_hashes,
                          conditions=self.conditions, guide=self.guide, ood=self.ood,
                          likelihood=self.heldout_likelihood, latent_prior=self.latent_prior, copy_from=self.path)

    @staticmethod
    def available_pretrained() -> list[str]:
        """Names of the models shipped inside the package (``molvae/pretrained/NAME``)."""
        return available_pretrained()

    @classmethod
    def pretrained(cls, name: str, device: str = "auto") -> "MolVAE":
        """A model shipped with molvae, by name; works offline right after ``pip install``."""
        return cls.load(pretrained_path(name), device=device)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> "MolVAE":
        """Load a model directory (:func:`molvae.checkpoint.load_model`). Never executes code from the files."""
        parts = load_model(path)
        return cls(parts.pop("net"), parts.pop("vocab"), parts.pop("config"), resolve_device(device), **parts)

    # ------------------------------------------------------------------ encoding and decoding
    def _tokens(self, molecules: Sequence[Any], skip_unknown: bool,
                label: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded token ids and lengths of molecules; an unusable one is a typed error naming its position
        and input (``label=False``: without the position, for one molecule)."""
        rows = []
        for i, m in enumerate(molecules):
            name = m if isinstance(m, str) else f"molecule {i}"
            where = (f"input {i + 1} {name!r}: ", f"input {i + 1}: ") if label else (f"{name!r}: ", "")
            rows.append(self._token_row(m, skip_unknown, where))
        return pad_rows(rows, self.vocab.pad_id, min_length=1)

    def _token_row(self, molecule: Any, skip_unknown: bool, where: tuple[str, str] = ("", "")) -> list[int]:
        """Token ids of one molecule; errors are prefixed with ``where`` (with and without its input)."""
        from molvae.chem import mol_from_smiles, to_canonical
        from molvae.errors import TooLongError, UnknownTokenError
        from molvae.vocab import smiles_to_selfies

        try:
            mol = mol_from_smiles(molecule)
        except InvalidSmilesError as exc:
            raise InvalidSmilesError(f"{where[1]}{exc}") from None
        selfies = smiles_to_selfies(to_canonical(mol, stereo=self.config.stereo,
                                                 largest_fragment=self.config.largest_fragment))
        if selfies is None:
            raise InvalidSmilesError(f"{where[0]}cannot be encoded as SELFIES")
        try:
            return self.vocab.encode(selfies, max_len=self.config.max_len, skip_unknown=skip_unknown)
        except (UnknownTokenError, TooLongError) as exc:
            raise type(exc)(f"{where[0]}{exc}") from None

    # ------------------------------------------------------------------ conditions
    def _spec(self, condition: Any) -> ConditionSpec | None:
        """The model's :class:`ConditionSpec` (None for a plain VAE, which may not be given a condition)."""
        if not self.config.n_conditions:
            if condition is not None:
                raise ConfigError("this model was trained without conditions; retrain with conditions=[...] "
                                  "(molvae train --condition NAME,...) to sample with a condition")
            return None
        return self.conditions

    def condition_vectors(self, condition: Mapping[str, Any] | None, n: int, seed: int | None = 0) -> np.ndarray | None:
        """Standardized conditions ``(n, C)`` for a request ``{name: value or n values}`` (None for a
        plain VAE). Conditions left out are drawn from the training distribution given the others.

        :raises ConfigError: an unknown condition name (the message lists the model's), a bad value.
        :warns ConditionWarning: a value outside the range seen in training.
        """
        spec = self._spec(condition)
        return spec.request(condition, n, seed=seed) if spec is not None else None

    def molecule_conditions(self, molecules: Sequence[Any],
                            condition: Mapping[str, Any] | None = None) -> np.ndarray | None:
        """Standardized conditions ``(n, C)`` of given molecules: RDKit properties computed from them,
        column conditions from ``condition`` (else the training mean, with a :class:`ConditionWarning`)."""
        from molvae.chem import mol_from_smiles, to_canonical

        spec = self._spec(condition)
        if spec is None:
            return None
        needs_smiles = any(src == "rdkit" and name not in (condition or {}) for name, src in zip(spec.names, spec.sources))
        smiles = [m if isinstance(m, str) else to_canonical(mol_from_smiles(m)) for m in molecules] if needs_smiles \
            else [""] * len(molecules)
        return spec.for_molecules(smiles, condition)

    def _standardized(self, condition: Mapping[str, Any] | np.ndarray | None, n: int,
                      seed: int | None = 0) -> np.ndarray | None:
        """Standardized conditions ``(n, C)`` (:meth:`ConditionSpec.standardized`); None for a plain VAE."""
        spec = self._spec(condition)
        return spec.standardized(condition, n, seed) if spec is not None else None

    # ------------------------------------------------------------------ encoding and decoding
    @torch.no_grad()
    def encode_posterior(self, molecules: Sequence[Any] | str, skip_unknown: bool = False,
                         batch_size: int = 1024, condition: Mapping[str, Any] | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means and log-variances ``(n, latent_dim)`` of molecules (SMILES or RDKit Mols).

        A conditional model's encoder also sees each molecule's conditions (see :meth:`molecule_conditions`).
        """
        _check_count(batch_size, "batch_size", low=1)
        molecules = _as_list(molecules)
        mus, logvars = [], []
        for start in range(0, len(molecules), batch_size):
            chunk = molecules[start:start + batch_size]
            tokens, lengths = self._tokens(chunk, skip_unknown)
            cond = self.molecule_conditions(chunk, condition) if self.config.n_conditions else None
            mu, logvar = self.net.encode(tokens.to(self.device), lengths.to(self.device),
                                         torch.as_tensor(cond, device=self.device) if cond is not None else None)
            mus.append(mu.float().cpu())
            logvars.append(logvar.float().cpu())
        if not mus:
            return np.zeros((0, self.latent_dim), np.float32), np.zeros((0, self.latent_dim), np.float32)
        return torch.cat(mus).numpy(), torch.cat(logvars).numpy()

    def encode(self, molecules: Sequence[Any] | str, skip_unknown: bool = False, batch_size: int = 1024,
               condition: Mapping[str, Any] | None = None) -> np.ndarray:
        """Latent means ``(n, latent_dim)`` float32 (a conditional model: given the molecules' own conditions).

        :raises InvalidSmilesError: a molecule does not parse (the message names its position).
        :raises UnknownTokenError: a molecule uses a token the model never saw (unless ``skip_unknown``).
        :raises TooLongError: a molecule has more tokens than ``config.max_len``.
        """
        return self.encode_posterior(molecules, skip_unknown, batch_size, condition)[0]

    def decode(self, z: np.ndarray | torch.Tensor, temperature: float = 0.0, seed: int | None = None,
               batch_size: int = 1024, n_workers: int | None = None, progress: bool = False,
               condition: Mapping[str, Any] | np.ndarray | None = None,
               as_frame: bool = False) -> list[str | None] | pd.DataFrame:
        """Canonical SMILES for latent points ``(n, latent_dim)``; ``None`` where decoding is empty or invalid.

        Greedy when ``temperature`` is 0, multinomial sampling (reproducible with ``seed``) otherwise.
        A conditional model decodes at ``condition`` (``{name: value}``, or standardized ``(n, C)``
        vectors); by default at the training mean of every condition.

        A point is decoded as it is, never redrawn: with ``as_frame`` the answer is a DataFrame with
        ``smiles``, ``selfies`` and ``repaired`` (True where the SELFIES decoder had to alter the token
        string the model wrote: a molecule :meth:`sample` would have rejected).
        """
        decoded = self._decode(z, temperature, seed, batch_size, n_workers, progress, condition)
        if not as_frame:
            return decoded.smiles
        return pd.DataFrame({"smiles": pd.Series(decoded.smiles, dtype=object), "selfies": decoded.selfies,
                             "repaired": decoded.repaired})

    def _decode(self, z, temperature, seed, batch_size, n_workers, progress, condition=None) -> Decoded:
        _check_count(batch_size, "batch_size", low=1)
        _check_sampling(temperature)
        z = self._latents(z)
        c = self._standardized(condition, len(z))
        z = z if c is None else torch.cat([z, torch.as_tensor(c)], dim=1)
        batches = (z[i:i + batch_size] for i in range(0, len(z), batch_size))
        return decode_latents(self.net, self.vocab, batches, max_len=self.config.max_len, device=self.device,
                              temperature=temperature, seed=seed, stereo=self.config.stereo,
                              keep_radicals=self.config.keep_radicals, n_workers=n_workers, total=len(z),
                              progress=progress)

    def _latents(self, z: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Latent points as float32 ``(n, latent_dim)`` (one point may be given as ``(latent_dim,)``)."""
        try:
            z = torch.as_tensor(np.asarray(z, dtype=np.float32) if not isinstance(z, torch.Tensor) else z).float()
        except (TypeError, ValueError):
            raise ConfigError(f"latent points must be numbers of shape (n, {self.latent_dim})") from None
        z = z[None, :] if z.ndim == 1 else z
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ConfigError(f"latent points must have shape (n, {self.latent_dim}), got {tuple(z.shape)}")
        return z

    def prior_sample(self, n: int, seed: int | None = 0,
                     condition: Mapping[str, Any] | np.ndarray | None = None) -> np.ndarray:
        """``n`` latent points ``(n, latent_dim)`` float32 from the model's prior (N(0, I), the VampPrior,
        or the conditional prior ``p(z|c)`` at ``condition``: a request or standardized ``(n, C)``;
        default the training mean)."""
        _check_count(n, "n")
        cond = self._standardized(condition, n, seed)  # (checked; only a conditional prior uses it)
        batches = list(prior_batches(self.net, n, seed, 4096, cond))
        return torch.cat(batches).numpy() if batches else np.zeros((0, self.latent_dim), np.float32)

    def _use_fitted_prior(self, prior: str) -> bool:
        if prior not in ("auto", "model", "fitted"):
            raise ConfigError(f"prior must be auto, model or fitted, got {prior!r}")
        if prior == "fitted" and self.latent_prior is None:
            raise ConfigError("this model has no fitted latent prior (MolVAE.fit_latent_prior / "
                              "molvae fit-prior); use prior='model'")
        return prior != "model" and self.latent_prior is not None

    def fit_latent_prior(self, molecules: Sequence[Any] | str, components: int = 10, seed: int = 0,
                         save: bool = True, skip_unknown: bool = True, kind: str = "mixture",
                         scale: float = 1.0, progress: bool = False) -> "LatentMixture | LatentFlow":
        """Fit a prior to the latent posteriors of ``molecules`` (the training set, or a sample of it) and
        sample from it from now on; saved in the model's directory when ``save``. ``kind``:
        ``mixture``, a ``components``-Gaussian mixture over the posterior means
        (:mod:`molvae.latent_mixture`); ``aggregate``, the molecules' posteriors themselves (one
        component each, their widths times ``scale``); ``flow``, a normalizing flow trained on draws
        from the posteriors, widths times ``scale`` (:mod:`molvae.latent_flow`; a few CPU-minutes).
        Molecules that do not parse or do not fit the vocabulary are left out."""
        from molvae.latent_flow import LatentFlow
        from molvae.latent_mixture import LATENT_PRIOR_FILE, LatentMixture

        if self.config.n_conditions:
            raise ConfigError("a fitted latent prior is for unconditional models (a CVAE samples at conditions)")
        if kind not in ("mixture", "aggregate", "flow"):
            raise ConfigError(f"latent prior kind must be 'mixture', 'aggregate' or 'flow', got {kind!r}")
        if not 0.0 <= scale <= 1.0 or (kind == "aggregate" and scale == 0):
            raise ConfigError(f"the posterior scale must be in (0, 1] (flow: [0, 1]), got {scale!r}")
        if isinstance(molecules, (str, Path)):
            from molvae.data import read_smiles

            molecules = read_smiles(molecules)["input"].tolist()
        rows = []
        for m in molecules:  # each molecule parsed once; the unusable ones are skipped
            try:
                rows.append(self._token_row(m, skip_unknown))
            except (InvalidSmilesError, ValueError):
                continue
        need = {"aggregate": 1, "flow": 100}.get(kind, 2 * components)
        if len(rows) < need:
            raise ConfigError(f"need at least {need} usable molecules to fit the latent prior, got {len(rows)}")
        mu, logvar = self.net.encode_batches(pad_rows(rows[s:s + 1024], self.vocab.pad_id, min_length=1)
                                             for s in range(0, len(rows), 1024))
        if kind == "aggregate":
            self.latent_prior = LatentMixture.aggregate(mu, logvar, scale)
        elif kind == "flow":
            self.latent_prior = LatentFlow.fit(mu, mu_logvar=(mu, logvar), posterior_scale=scale, seed=seed,
                                               progress=progress)
        else:
            self.latent_prior = LatentMixture.fit(mu, components=components, seed=seed)
        if save and self.path is not None:
            self.latent_prior.save(self.path / LATENT_PRIOR_FILE)
        return self.latent_prior

    @torch.no_grad()
    def prior_log_prob(self, z: np.ndarray | torch.Tensor,
                       condition: Mapping[str, Any] | np.ndarray | None = None) -> np.ndarray:
        """``log p(z)`` ``(n,)`` under the model's prior: how "in distribution" latent points are (the
        conditional prior: ``log p(z|c)`` at ``condition``, as in :meth:`prior_sample`; default the mean)."""
        z = self._latents(z)
        cond = self._standardized(condition, len(z))  # (checked; only a conditional prior uses it)
        c = torch.as_tensor(cond, device=self.device) if cond is not None else None
        return self.net.prior_log_prob(z.to(self.device), cond=c).double().cpu().numpy()

    def sample(self, n: int, temperature: float = 1.0, seed: int | None = 0, batch_size: int = 1024,
               n_workers: int | None = None, progress: bool = True,
               condition: Mapping[str, Any] | None = None, guidance: float = 1.0,
               steer: float | None = None, prior: str = "auto", keep_repaired: bool = False) -> pd.DataFrame:
        """Decode ``n`` samples from the prior (N(0, I), the VampPrior's mixture, or ``p(z|c)``).

        Every sample is a token string the model wrote as the SELFIES decoder reads it: a string the
        decoder had to repair (:func:`molvae.vocab.selfies_repaired`) is the model's mistake, as an
        invalid SMILES is a SMILES model's, and is replaced by a fresh draw (at the same condition)
        until ``n`` are accepted. ``df.attrs["acceptance_rate"]`` is the accepted share of all strings
        decoded (``df.attrs["n_decoded"]``). ``keep_repaired=True`` returns the raw stream instead,
        repaired strings included and marked in the ``repaired`` column (what molvae sampled before it
        rejected repairs).

        ``prior``: ``auto`` samples from the mixture fitted after training to the latent means
        (:meth:`fit_latent_prior`) when the model has one, else from the model's own prior; ``model``
        always from the model's own; ``fitted`` from the fitted mixture (an error without one).

        Returns a DataFrame with ``smiles`` (None if invalid), ``selfies``, ``valid``, ``unique``
        (first occurrence within this call), ``novel`` (not in the training set) and ``repaired``
        (False for every row unless ``keep_repaired``). A conditional
        model samples at ``condition`` (``{"logp": 3.0}``; values or arrays of ``n``); conditions not
        given are drawn from the training distribution given those that are, and every condition used
        is returned as a column ``condition_<name>``. ``guidance`` > 1 strengthens the condition's pull
        on every decoding step (``VAE.generate``); 1 is plain conditional decoding. ``steer`` is the
        strength of property-guided decoding toward the requested conditions (:mod:`molvae.guide`):
        by default ``config.guide_strength`` when the model has a guide and a condition is requested;
        0 turns it off.

        :raises ConfigError: a condition the model was not trained on, or a condition for a plain VAE;
            ``steer`` > 0 without a requested condition or without a guide.
        :warns ConditionWarning: a requested value outside the training range.
        """
        _check_count(n, "n")
        _check_count(batch_size, "batch_size", low=1)
        _check_sampling(temperature, guidance)
        cond = self.condition_vectors(condition, n, seed)
        steering = self._steering(condition, steer)
        mixture = self.latent_prior if self._use_fitted_prior(prior) else None
        stream = PriorStream(self.net, seed, batch_size, mixture)
        decoded, n_decoded, n_accepted = self._sample_rows(stream, n, cond, temperature, seed, n_workers,
                                                           progress, guidance, steering, keep_repaired)
        df = self._annotate(decoded.smiles, decoded.selfies)
        df["repaired"] = decoded.repaired
        df.attrs.update(acceptance_rate=n_accepted / max(n_decoded, 1), n_decoded=n_decoded)
        if cond is not None:
            raw = self.conditions.unstandardize(cond)
            for j, name in enumerate(self.condition_names):
                df[f"condition_{name}"] = raw[:, j]
        return df

    def _sample_rows(self, stream: PriorStream, n: int, cond: np.ndarray | None, temperature: float,
                     seed: int | None, n_workers: int | None, progress: bool, guidance: float,
                     steering: "Steering | None", keep_repaired: bool) -> tuple[Decoded, int, int]:
        """Decode ``n`` prior draws, redrawing repaired ones (:func:`molvae.generate.sample_accepted`);
        one worker pool, one sampling generator and one progress bar for every round."""
        from functools import partial

        from molvae.progress import progress_bar

        with postprocess_pool(n, n_workers) as pool, \
                progress_bar(total=n, disable=not progress, desc="sampling", unit="mol") as bar:
            decode = partial(decode_latents, self.net, self.vocab, max_len=self.config.max_len, device=self.device,
                             temperature=temperature, generator=sampling_generator(temperature, seed, self.device),
                             stereo=self.config.stereo, keep_radicals=self.config.keep_radicals, n_workers=0,
                             executor=pool, bar=bar, guidance=guidance, steer=steering)
            result = sample_accepted(decode, stream, n, cond, keep_repaired=keep_repaired, stereo=self.config.stereo,
                                     keep_radicals=self.config.keep_radicals)
            bar.total = result[1]
            bar.refresh()
        return result

    def _steering(self, condition: Mapping[str, Any] | None, steer: float | None) -> "Steering | None":
        """The :class:`molvae.guide.Steering` for a request (None: no steering)."""
        if steer is not None and not steer >= 0:
            raise ConfigError(f"steer must be >= 0, got {steer!r}")
        if steer is None:
            steer = self.config.guide_strength if self.guide is not None and condition else 0.0
        if steer == 0:
            return None
        if not condition:
            raise ConfigError("steer needs a condition to steer toward (condition={'logp': 3.0}; "
                              "molvae sample --condition logp=3.0)")
        if self.guide is None:
            raise ConfigError("this model has no property guide (guide.safetensors); train one with "
                              "model.fit_guide(smiles) or train with config guide_epochs > 0")
        from molvae.guide import Steering

        which = torch.tensor([name in condition for name in self.condition_names])
        return Steering(self.guide, which.to(self.device), float(steer))

    def fit_guide(self, molecules: Sequence[Any], condition: Mapping[str, Any] | None = None,
                  epochs: int | None = None, samples: int | None = None, progress: bool = True) -> dict[str, Any]:
        """Train (or retrain) the property guide (:mod:`molvae.guide`) on molecules, normally the training
        set, and ``samples`` of the model's own (default ``config.guide_samples``) for ``epochs`` (default
        ``config.guide_epochs``, or 10 where that is 0); conditions are computed with RDKit, column
        conditions come from ``condition`` (arrays). Replaces ``self.guide``; :meth:`save` writes it.
        Returns the guide's summary (its held-out error once a molecule is complete)."""
        from molvae.train_guide import fit_guide

        if not self.config.n_conditions:
            raise ConfigError("a property guide steers toward conditions; this model was trained without any")
        for value, name in ((epochs, "epochs"), (samples, "samples")):
            if value is not None:
                _check_count(value, name)
        molecules = list(molecules)
        tokens, lengths = self._tokens(molecules, skip_unknown=False)
        cond = torch.as_tensor(self.molecule_conditions(molecules, condition))
        config = self.config.replace(guide_epochs=epochs or self.config.guide_epochs or 10,
                                     guide_samples=self.config.guide_samples if samples is None else samples)
        self.guide = fit_guide(self.net, self.vocab, config, self.conditions,
                               (tokens.to(self.device), lengths.to(self.device), cond.to(self.device)), progress)
        return self.guide.summary

    def _bounds(self, molecules: Sequence[Any], k: int, seed: int | None, condition: Mapping[str, Any] | None = None,
                quiet: bool = False, batch_elems: int = 4096, progress: bool = False) -> dict[str, np.ndarray]:
        """Likelihood bounds of molecules at their own conditions (:func:`molvae.likelihood.score_molecules`);
        ``quiet``: without warnings about out-of-range or missing conditions."""
        tokens, lengths = self._tokens(molecules, skip_unknown=False)
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore")
            cond = self.molecule_conditions(molecules, condition)
        return score_molecules(self.net, tokens, lengths, cond, k=k, seed=seed, batch_elems=batch_elems,
                               progress=progress)

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
        """Encode then decode (greedy by default): columns ``input``, ``smiles``, ``exact``, ``repaired``
        (the SELFIES decoder had to alter the string the model wrote: see :meth:`decode`)."""
        from molvae.chem import canonicalize

        molecules = _as_list(molecules)
        z = self.encode(molecules)
        cond = self.molecule_conditions(molecules) if self.config.n_conditions else None
        out = self.decode(z, temperature=temperature, seed=seed, condition=cond, as_frame=True)
        decoded = out["smiles"].tolist()
        inputs = [m if isinstance(m, str) else _mol_smiles(m) for m in molecules]
        canon = [canonicalize(s, stereo=self.config.stereo) for s in inputs]
        return pd.DataFrame({"input": inputs, "smiles": out["smiles"],
                             "exact": [d is not None and d == c for d, c in zip(decoded, canon)],
                             "repaired": out["repaired"]})

    def interpolate(self, a: Any, b: Any, steps: int = 8, method: str = "slerp") -> pd.DataFrame:
        """Decode ``steps`` points on the path between two molecules' latent means (``linear`` or ``slerp``):
        columns ``step``, ``t``, ``smiles`` and ``repaired`` (see :meth:`decode`)."""
        if method not in ("linear", "slerp"):
            raise ConfigError(f"interpolation method must be linear or slerp, got {method!r}")
        if steps < 2:
            raise ConfigError(f"interpolation needs at least 2 steps, got {steps}")
        za, zb = self.encode([a, b])
        t = np.linspace(0.0, 1.0, steps)
        z = (slerp if method == "slerp" else lerp)(za, zb, t)
        out = self.decode(z, as_frame=True)
        return pd.DataFrame({"step": np.arange(steps), "t": t, "smiles": out["smiles"], "repaired": out["repaired"]})

    def neighbours(self, molecule: Any, n: int = 50, radius: float = 0.5, seed: int | None = 0,
                   unique: bool = True) -> pd.DataFrame:
        """Molecules decoded at random points within ``radius`` (L2) of a molecule's latent mean.

        Columns: ``smiles``, ``distance`` (latent), ``similarity`` (Morgan r2 Tanimoto to the input) and
        ``repaired`` (see :meth:`decode`), sorted by similarity; with ``unique`` each molecule appears once.
        """
        from rdkit import DataStructs

        from molvae.chem import mol_from_smiles, morgan_fingerprint, parse_smiles

        z0 = self.encode([molecule])[0]
        gen = np.random.default_rng(seed)
        directions = gen.standard_normal((n, self.latent_dim))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        distances = radius * gen.uniform(0, 1, n) ** (1.0 / self.latent_dim)  # uniform in the ball
        z = z0[None, :] + directions * distances[:, None]
        out = self.decode(z, as_frame=True)
        smiles = out["smiles"].tolist()
        fp0 = morgan_fingerprint(mol_from_smiles(molecule))
        sims = []
        for s in smiles:
            mol = parse_smiles(s)[0] if s else None
            sims.append(DataStructs.TanimotoSimilarity(fp0, morgan_fingerprint(mol)) if mol else np.nan)
        df = pd.DataFrame({"smiles": smiles, "distance": distances, "similarity": sims,
                           "repaired": out["repaired"]}).dropna(subset=["smiles"])
        if unique:
            df = df.sort_values("distance").drop_duplicates("smiles")
        return df.sort_values("similarity", ascending=False).reset_index(drop=True)

    # ------------------------------------------------------------------ likelihood and out-of-distribution
    def likelihood(self, molecules: Sequence[Any] | str, k: int = 100, seed: int | None = 0,
                   condition: Mapping[str, Any] | None = None, batch_elems: int = 4096,
                   progress: bool = False) -> pd.DataFrame:
        """Per-molecule likelihood bounds in nats (see :mod:`molvae.likelihood`).

        Columns: ``smiles`` (canonical), ``n_tokens``, ``elbo`` (mean single-sample ELBO), ``iwae``
        (the ``k``-sample bound on ``log p(x)``; equals an ELBO estimate at ``k=1``), ``recon``
        (``-log p(x | z=mu)``) and ``kl`` (Monte-Carlo ``KL(q(z|x) || p(z))``). The ``k`` samples of
        many molecules are decoded together on the device.

        :raises InvalidSmilesError, UnknownTokenError, TooLongError: as :meth:`encode`.
        """
        molecules = _as_list(molecules)
        b = self._bounds(molecules, k, seed, condition, batch_elems=batch_elems, progress=progress)
        from molvae.chem import mol_from_smiles, to_canonical

        canon = [to_canonical(mol_from_smiles(m), stereo=self.config.stereo,
                              largest_fragment=self.config.largest_fragment) for m in molecules]
        return pd.DataFrame({"smiles": canon, "n_tokens": b["n_tokens"].astype(int), "elbo": b["elbo"],
                             "iwae": b["iwae"], "recon": b["recon"], "kl": b["kl"]})

    def log_likelihood(self, molecules: Sequence[Any] | str, k: int = 100, seed: int | None = 0,
                       condition: Mapping[str, Any] | None = None, batch_elems: int = 4096,
                       progress: bool = False) -> np.ndarray:
        """The importance-weighted lower bound on ``log p(x)`` ``(n,)`` in nats, with ``k`` samples
        (``k=1``: the ELBO, in expectation). Higher is more probable under the model."""
        return self.likelihood(molecules, k, seed, condition, batch_elems, progress)["iwae"].to_numpy()

    def calibrate_ood(self, molecules: Sequence[Any] | None = None, k: int | None = None,
                      quantile: float | None = None, seed: int = 0, progress: bool = False) -> "OODCalibration":
        """Fit the OOD score's scaling and threshold on held-out molecules like the training set
        (default: the first ``config.n_val_likelihood`` of the run's ``val.smi``, ``config.eval_iwae_k``
        samples, ``config.ood_quantile``); sets and returns :attr:`ood` (written as ``ood.json`` by :meth:`save`)."""
        if molecules is None:
            val = self.path / "val.smi" if self.path is not None else None
            if val is None or not val.exists():
                raise ConfigError("no held-out molecules to calibrate the OOD score on: pass molecules "
                                  "(held-out SMILES like the training set) to calibrate_ood()")
            molecules = val.read_text().split()[: self.config.n_val_likelihood]  # as at the end of training
        molecules = list(molecules)
        if len(molecules) < 2:
            raise ConfigError(f"calibrating the OOD score needs at least 2 molecules, got {len(molecules)}")
        k = k or self.config.eval_iwae_k or 32
        quantile = self.config.ood_quantile if quantile is None else quantile
        if not 0.0 < quantile < 1.0:
            raise ConfigError(f"quantile must be in (0, 1), got {quantile}")
        _check_count(k, "k", low=1)
        bounds = self._bounds(molecules, k, seed, quiet=True, progress=progress)
        self.ood = OODCalibration.fit(bounds, k, quantile, seed)
        return self.ood

    def ood_score(self, molecules: Sequence[Any] | str, seed: int = 0, progress: bool = False) -> pd.DataFrame:
        """How unlike the training set each molecule is: columns ``smiles``, ``score`` (higher = less
        like it), ``ood`` (``score`` above the calibrated threshold) and ``reason``.

        The score is the larger of two z-scores against held-out molecules: of the negative IWAE
        bound (improbable as a whole) and of the reconstruction error per token (unfamiliar at each
        step, which also catches tiny molecules); see :class:`molvae.likelihood.OODCalibration`.
        Molecules the model cannot read at all (invalid
        SMILES, unknown tokens, too long) are scored ``inf`` and flagged, with the reason. An
        uncalibrated model (no ``ood.json``) is calibrated first on its run's ``val.smi``.
        """
        molecules = _as_list(molecules)
        if self.ood is None:
            self.calibrate_ood(progress=progress)
        cal = self.ood
        ok, reasons = [], [None] * len(molecules)
        for i, m in enumerate(molecules):
            try:
                self._tokens([m], skip_unknown=False, label=False)
                ok.append(i)
            except MolVAEError as exc:
                reasons[i] = str(exc)
        score = np.full(len(molecules), np.inf)
        if ok:  # out-of-range properties are what is being measured here: quiet
            score[ok] = cal.score(self._bounds([molecules[i] for i in ok], cal.k, seed, quiet=True, progress=progress))
        inputs = [m if isinstance(m, str) else _mol_smiles(m) for m in molecules]
        return pd.DataFrame({"smiles": inputs, "score": score, "ood": score > cal.threshold,
                             "reason": pd.Series(reasons, dtype=object)})


def _as_list(molecules: Sequence[Any] | str) -> list[Any]:
    """One SMILES or many, as a list."""
    return [molecules] if isinstance(molecules, str) else list(molecules)


def _check_count(value: Any, name: str, low: int = 0) -> None:
    """An integer option of at least ``low``. :raises ConfigError: anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_sampling(temperature: Any, guidance: Any = 1.0) -> None:
    """Sampling options: ``temperature`` >= 0 (0 is greedy), ``guidance`` >= 0. :raises ConfigError."""
    for value, name in ((temperature, "temperature"), (guidance, "guidance")):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 <= value < float("inf"):
            raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")


def _base_model(init: "str | Path | MolVAE") -> "BaseModel":
    """The :class:`molvae.finetune.BaseModel` of a shipped model's name, a model directory or a MolVAE."""
    from molvae.finetune import BaseModel

    if isinstance(init, MolVAE):
        model, name = init, str(init.path or "<MolVAE>")
    else:  # a directory or a shipped model's name (MolVAE.load takes both)
        model, name = MolVAE.load(init, device="cpu"), str(init)
    weights = {k: v.detach().cpu().clone() for k, v in model.net.state_dict().items()}
    return BaseModel(name, model.config, model.vocab, weights)


def _mol_smiles(mol: Any) -> str:
    from rdkit import Chem

    return Chem.MolToSmiles(mol)
