"""The VAE network and the one config dataclass that sizes and schedules it.

Shapes: token ids ``(B, T)`` -> embedding ``(B, T, E)`` -> bidirectional GRU -> ``mu, logvar (B, Z)``
-> ``z (B, Z)`` -> GRU decoder (z sets the initial hidden state and is concatenated to every input)
-> logits ``(B, T+1, V)``.

A conditional model (CVAE, ``config.conditions``/``condition_columns``) takes standardized property
values ``c (B, C)``: the encoder sees them beside its summary of the tokens, and the decoder's latent
input is ``zc = [z, c] (B, Z+C)`` everywhere ``z`` appears above. The prior over ``z`` is the standard
normal, a VampPrior or (a conditional model only) the learned ``p(z|c)`` (:mod:`molvae.priors`), chosen
by ``config.prior``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch import _VF

from molvae.errors import ConfigError
from molvae.priors import (ConditionalPrior, VampPrior, diag_normal_log_prob, gaussian_kl, mixture_log_prob,
                           normal_log_prob, sample_mixture)
from molvae.vocab import teacher_forcing

if TYPE_CHECKING:
    from molvae.guide import Steering

_LOG_2PI = math.log(2.0 * math.pi)

__all__ = ["ModelConfig", "VAE", "build_config", "load_config_file", "PRESETS"]


@dataclass
class ModelConfig:
    """Every size, schedule and data option of a model; saved as ``config.json`` beside the weights."""

    # --- data ---
    max_len: int = 100  # SELFIES tokens; longer molecules are rejected (and written to rejects.csv)
    stereo: bool = True  # keep stereochemistry in canonical SMILES
    keep_radicals: bool = False  # generated molecules keep unpaired electrons (for training data with genuine
    #   radicals); by default they are read as the atom with hydrogens instead (molvae.chem.fill_radicals)
    largest_fragment: bool = False  # reduce salts/mixtures to their largest fragment
    val_fraction: float = 0.05  # held out for validation, split deterministically by `seed`
    # --- network ---
    embed_dim: int = 64
    enc_hidden: int = 256  # per direction (the encoder is bidirectional)
    enc_layers: int = 1
    latent_dim: int = 128
    dec_hidden: int = 512
    dec_layers: int = 3
    dropout: float = 0.0  # between stacked GRU layers
    # --- loss and posterior-collapse defences ---
    beta: float = 0.1  # final KL weight (below 1, as the MOSES VAE's 0.05: at 1 the posterior collapses)
    kl_schedule: str = "linear"  # linear | cyclical | constant
    kl_warmup_epochs: float = 3.0  # linear: epochs to ramp beta from 0; cyclical: ramp part of each cycle
    kl_cycles: int = 4  # cyclical: number of cycles over the run
    free_bits: float = 0.0  # nats per latent dim below which KL is not penalized (0 = off)
    word_dropout: float = 0.0  # probability of hiding a decoder input token (0 = off)
    # --- optimization ---
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    lr_schedule: str = "cosine"  # cosine | constant (both after a short linear warm-up)
    warmup_steps: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    max_minutes: float = 0.0  # wall-clock budget: end the run (with a full evaluation) after this (0 = none)
    early_stopping_patience: int = 5  # epochs without a better validation loss (0 = never stop early)
    keep_best: bool = True  # end with the weights of the best validation epoch (False: the last epoch's)
    precision: str = "auto"  # auto (bf16 autocast on CUDA and on CPUs with native bf16) | bf16 | fp32
    checkpoint_every: int = 500  # steps between mid-epoch checkpoints (also written at every epoch end)
    compact_checkpoint: bool = False  # optimizer moments in bfloat16 in checkpoint.pt (half its size; weights stay fp32)
    eval_every_steps: int = 0  # also evaluate (a log row, best weights) every this many steps within an epoch (0 = off)
    seed: int = 0
    # --- per-epoch evaluation ---
    n_prior_samples: int = 300  # prior samples for validity/uniqueness after each epoch
    n_val_reconstruct: int = 500  # validation molecules reconstructed greedily after each epoch
    final_eval_samples: int = 1000  # prior samples scored with molvae.metrics against val.smi at the end (0 = off)
    # --- conditional generation (CVAE) ---
    # RDKit properties the encoder and decoder are conditioned on (logp, qed, sa, mw, tpsa, hbd, hba, ...)
    conditions: list[str] = field(default_factory=list)
    condition_columns: list[str] = field(default_factory=list)  # numeric data columns used as conditions
    # --- prior ---
    # normal (N(0, I)) | vampprior (mixture of posteriors at learned pseudo-inputs)
    # | conditional (learned N(mu(c), sigma(c)^2), N(0, I) at the mean condition; CVAE only: samples at c
    #   come from where molecules with c lie)
    prior: str = "normal"
    vamp_components: int = 100  # vampprior: number of pseudo-inputs K
    vamp_length: int = 32  # vampprior: tokens per pseudo-input (in embedding space)
    # --- property guide (CVAE only; molvae.guide): steers decoding toward requested conditions ---
    guide_epochs: int = 10  # trained after the VAE on the training molecules and its own samples (0 = no guide)
    guide_samples: int = 50000  # molecules sampled from the trained model to train the guide on as well
    guide_hidden: int = 256  # the guide's GRU width
    guide_strength: float = 4.0  # default steering strength when sampling at a condition (0 = off)
    # --- held-out likelihood and out-of-distribution calibration, once at the end of training ---
    eval_iwae_k: int = 32  # importance samples for the held-out IWAE bound and the OOD score (0 = skip both)
    n_val_likelihood: int = 1000  # validation molecules scored (the OOD threshold is their quantile)
    ood_quantile: float = 0.99  # quantile of held-out OOD scores used as the threshold
    # --- a prior fitted after training (molvae.latent_mixture), which sampling then uses ---
    latent_prior_components: int = 0  # > 0: a Gaussian mixture of this many components over the training
    #   molecules' latent means (at most 50,000), saved as latent_prior.safetensors; fine-tuning sets 20

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values that cannot work."""
        positive = ["max_len", "embed_dim", "enc_hidden", "enc_layers", "latent_dim", "dec_hidden",
                    "dec_layers", "epochs", "batch_size", "checkpoint_every", "vamp_components", "vamp_length",
                    "n_val_likelihood", "guide_hidden"]
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"config {name} must be a positive integer, got {value!r}")
        if self.kl_schedule not in ("linear", "cyclical", "constant"):
            raise ConfigError(f"config kl_schedule must be linear, cyclical or constant, got {self.kl_schedule!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ConfigError(f"config precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ConfigError(f"config lr_schedule must be cosine or constant, got {self.lr_schedule!r}")
        for name in ("val_fraction", "word_dropout", "dropout"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise ConfigError(f"config {name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.beta < 0 or self.free_bits < 0 or self.lr <= 0:
            raise ConfigError("config beta and free_bits must be >= 0 and lr > 0")
        if self.prior not in ("normal", "vampprior", "conditional"):
            raise ConfigError(f"config prior must be normal, vampprior or conditional, got {self.prior!r}")
        if not isinstance(self.eval_iwae_k, int) or self.eval_iwae_k < 0:
            raise ConfigError(f"config eval_iwae_k must be an integer >= 0, got {self.eval_iwae_k!r}")
        for name in ("guide_epochs", "guide_samples", "eval_every_steps", "latent_prior_components"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"config {name} must be an integer >= 0, got {value!r}")
        if not float(self.guide_strength) >= 0:
            raise ConfigError(f"config guide_strength must be >= 0, got {self.guide_strength!r}")
        if not 0.0 < float(self.ood_quantile) < 1.0:
            raise ConfigError(f"config ood_quantile must be in (0, 1), got {self.ood_quantile!r}")
        self.conditions = _name_list(self.conditions, "conditions")
        self.condition_columns = _name_list(self.condition_columns, "condition_columns")
        names = self.conditions + self.condition_columns
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ConfigError(f"config condition {dup!r} is named twice (conditions and condition_columns must differ)")
        if self.conditions:
            from molvae.conditions import CONDITION_PROPERTIES

            unknown = [n for n in self.conditions if n not in CONDITION_PROPERTIES]
            if unknown:
                raise ConfigError(f"config conditions: unknown property {unknown[0]!r}; known: "
                                  f"{', '.join(CONDITION_PROPERTIES)} (data columns go in condition_columns)")
        if self.prior == "conditional" and not names:
            raise ConfigError("config prior conditional is p(z|c) and needs conditions (conditions or "
                              "condition_columns; molvae train --condition PROP,...)")

    @property
    def condition_names(self) -> list[str]:
        """RDKit-computed conditions, then data-column conditions: the order of ``c``'s columns."""
        return list(self.conditions) + list(self.condition_columns)

    @property
    def n_conditions(self) -> int:
        return len(self.conditions) + len(self.condition_columns)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "ModelConfig":
        """Build from a mapping; unknown keys and wrong types are errors that name the key."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"{source}: unknown config key {unknown[0]!r}; known keys: {', '.join(known)}")
        kwargs = {}
        for key, value in data.items():
            default = known[key].default
            if key in _LIST_FIELDS:
                value = _name_list(value, key, source)
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ConfigError(f"{source}: {key} must be true or false, got {value!r}")
            elif isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
            elif isinstance(default, float):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"{source}: {key} must be a number, got {value!r}")
                value = float(value)
            elif isinstance(default, str) and not isinstance(value, str):
                raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
            kwargs[key] = value
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with some fields changed (validated like a config file)."""
        return ModelConfig.from_dict({**self.to_dict(), **changes}, source="options")

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "ModelConfig":
        return cls.from_dict(_read_mapping(Path(path)), source=str(path))


_LIST_FIELDS = ("conditions", "condition_columns")


def _name_list(value: Any, key: str, source: str = "config") -> list[str]:
    """A list of names from a list of strings or one comma-separated string (``"logp,qed"``)."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{source}: {key} must be a list of names (or 'a,b'), got {value!r}")
    return list(value)


PRESETS: dict[str, dict[str, Any]] = {
    # The MOSES VAE's size (GRU encoder 256, decoder 3x512, latent 128): the default.
    "default": {},
    # Small enough to train on a laptop CPU in minutes (the quick start).
    "small": {"embed_dim": 48, "enc_hidden": 128, "latent_dim": 64, "dec_hidden": 256, "dec_layers": 2},
    # Seconds-scale model for tests.
    "tiny": {"embed_dim": 16, "enc_hidden": 32, "latent_dim": 16, "dec_hidden": 64, "dec_layers": 1,
             "batch_size": 32, "warmup_steps": 10, "n_prior_samples": 50, "n_val_reconstruct": 50,
             "final_eval_samples": 0, "guide_hidden": 64, "guide_samples": 600},
}
"""Named starting points for :class:`ModelConfig`; a config file or options override them."""


def _read_mapping(path: Path) -> dict[str, Any]:
    """Read a JSON, TOML or YAML file into a dict (no code is executed)."""
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        elif path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"{path}: config must be .json, .toml, .yaml or .yml")
    except ConfigError:
        raise
    except Exception as exc:  # parser errors carry line numbers in their message
        raise ConfigError(f"{path}: cannot parse config: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: config must be a mapping of key = value")
    return data


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Keys of a TOML/YAML/JSON config file, checked against :class:`ModelConfig` (a ``preset`` key is allowed)."""
    data = _read_mapping(Path(path))
    preset = data.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"{path}: unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    merged = {**PRESETS.get(preset or "default", {}), **data}
    ModelConfig.from_dict(merged, source=str(path))  # validate now, with the file's name in errors
    return merged


def build_config(config: "ModelConfig | str | Path | dict | None", preset: str | None,
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


# Moved in the layering of issue 13: importable from here for one release (a DeprecationWarning says where).
_MOVED = {"kl_weight": "molvae.schedules", "lr_factor": "molvae.schedules"}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib
        import warnings

        warnings.warn(f"molvae.model.{name} moved to {_MOVED[name]}.{name}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'molvae.model' has no attribute {name!r}")


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each row of ``x (B, T, ...)`` reversed over its first ``lengths[i]`` positions (padding stays put)."""
    t = torch.arange(x.shape[1], device=x.device)
    n = lengths.to(x.device).view(-1, 1)
    idx = torch.where(t < n, n - 1 - t, t)  # an involution: applying it twice gives x back
    return x.gather(1, idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x))


def bidirectional_final_states(gru: nn.GRU, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Final hidden states ``(layers*2, B, H)`` of a batch-first bidirectional ``gru`` over padded
    ``x (B, T, E)``, exactly as over the packed sequences (each row read to its own length).

    Why not ``pack_padded_sequence``: on the CPU, the backward pass of a packed GRU zero-fills a
    full-size gradient buffer at every time step (quadratic in the length; 40% of a training step).
    Here each direction runs over padded rows, the backward one over every row reversed within its
    length, and the states are read at each row's last position.
    """
    lengths = lengths.clamp(min=1).to(x.device)
    last = (lengths - 1).view(-1, 1, 1)
    finals = []
    layer_input = x
    for layer in range(gru.num_layers):
        outs = []
        for suffix in ("", "_reverse"):
            names = [f"weight_ih_l{layer}{suffix}", f"weight_hh_l{layer}{suffix}",
                     f"bias_ih_l{layer}{suffix}", f"bias_hh_l{layer}{suffix}"]
            weights = [getattr(gru, n) for n in names]
            seq = layer_input if not suffix else reverse_within_length(layer_input, lengths)
            h0 = seq.new_zeros(1, seq.shape[0], gru.hidden_size)
            out, _ = _VF.gru(seq, h0, weights, True, 1, 0.0, gru.training, False, True)
            finals.append(out.gather(1, last.expand(-1, 1, out.shape[-1])).squeeze(1))
            outs.append(out if not suffix else reverse_within_length(out, lengths))
        layer_input = torch.cat(outs, dim=-1)
        if gru.dropout and gru.training and layer < gru.num_layers - 1:
            layer_input = F.dropout(layer_input, gru.dropout, training=True)
    return torch.stack(finals)


class VAE(nn.Module):
    """Bidirectional-GRU encoder, Gaussian posterior, GRU decoder conditioned on z at every step."""

    def __init__(self, config: ModelConfig, vocab_size: int, pad_id: int = 0, bos_id: int = 1, eos_id: int = 2):
        super().__init__()
        self.config = config
        self.vocab_size, self.pad_id, self.bos_id, self.eos_id = vocab_size, pad_id, bos_id, eos_id
        c = config
        self.n_cond = nc = c.n_conditions
        self.embed = nn.Embedding(vocab_size, c.embed_dim, padding_idx=pad_id)
        self.encoder = nn.GRU(c.embed_dim, c.enc_hidden, c.enc_layers, batch_first=True, bidirectional=True,
                              dropout=c.dropout if c.enc_layers > 1 else 0.0)
        self.to_mu = nn.Linear(2 * c.enc_hidden + nc, c.latent_dim)
        self.to_logvar = nn.Linear(2 * c.enc_hidden + nc, c.latent_dim)
        self.latent_to_hidden = nn.Linear(c.latent_dim + nc, c.dec_layers * c.dec_hidden)
        self.decoder = nn.GRU(c.embed_dim + c.latent_dim + nc, c.dec_hidden, c.dec_layers, batch_first=True,
                              dropout=c.dropout if c.dec_layers > 1 else 0.0)
        self.output = nn.Linear(c.dec_hidden, vocab_size)
        self.prior = (VampPrior(c.vamp_components, c.vamp_length, c.embed_dim, nc)
                      if c.prior == "vampprior" else None)
        self.cond_prior = ConditionalPrior(nc, c.latent_dim) if c.prior == "conditional" else None

    # --- conditions ---
    def with_conditions(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's input ``zc = [z, c]`` ``(B, Z+C)``; ``c`` defaults to 0 (the training mean).

        Already-joined input (width Z+C) passes through unchanged; an unconditional model ignores ``c``.
        """
        if self.n_cond == 0 or z.shape[-1] == self.config.latent_dim + self.n_cond:
            return z
        if cond is None:
            cond = z.new_zeros(z.shape[0], self.n_cond)
        return torch.cat([z, cond.to(device=z.device, dtype=z.dtype)], dim=-1)

    def _cond(self, cond: torch.Tensor | None, b: int, device: torch.device) -> torch.Tensor | None:
        if self.n_cond == 0:
            return None
        if cond is None:
            return torch.zeros(b, self.n_cond, device=device)
        if cond.shape != (b, self.n_cond):
            raise ValueError(f"conditions must have shape ({b}, {self.n_cond}), got {tuple(cond.shape)}")
        return cond.to(device)

    # --- encoder ---
    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor,
               cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters ``(mu, logvar)``, each ``(B, Z)``, for padded token ids ``(B, T)``
        (and standardized conditions ``(B, C)`` for a conditional model; default 0)."""
        h = bidirectional_final_states(self.encoder, self.embed(tokens), lengths)  # (layers*2, B, H)
        return self._posterior(h, self._cond(cond, tokens.shape[0], tokens.device))

    @torch.no_grad()
    def encode_batches(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mu, logvar)`` float32 on the CPU, each ``(N, Z)``, of unconditional molecules given as
        padded ``(tokens, lengths)`` batches (each trimmed to its longest molecule): what a fitted latent
        prior is estimated from."""
        was_training, device = self.training, next(self.parameters()).device
        self.eval()
        out = [self.encode(t[:, : int(n.max())].to(device), n.to(device)) for t, n in batches]
        self.train(was_training)
        return torch.cat([m.float().cpu() for m, _ in out]), torch.cat([v.float().cpu() for _, v in out])

    def _posterior(self, h: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.cat([h[-2], h[-1]], dim=-1)  # last layer, both directions
        if cond is not None:
            h = torch.cat([h, cond.to(h.dtype)], dim=-1)
        return self.to_mu(h), self.to_logvar(h).clamp(-12.0, 8.0)

    # --- prior ---
    def prior_components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """VampPrior mixture components ``(mu_k, logvar_k)``, each ``(K, Z)``: the encoder's posteriors
        at the pseudo-inputs (recomputed on every call, so they follow the encoder's weights)."""
        if self.prior is None:
            raise ValueError("this model has a standard normal prior (no mixture components)")
        _, h = self.encoder(self.prior.pseudo_inputs)
        return self._posterior(h, self.prior.pseudo_conditions)

    def conditional_prior(self, cond: torch.Tensor | None, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu(c), logvar(c))`` float32, each ``(b, Z)``, of the conditional prior ``p(z|c)``
        (``c`` defaults to 0, the training mean)."""
        if self.cond_prior is None:
            raise ValueError("this model has no conditional prior (config.prior is not 'conditional')")
        dev = self.cond_prior.net[0].weight.device
        mu, logvar = self.cond_prior(self._cond(cond, b, dev).float())
        return mu.float(), logvar.float()

    def prior_log_prob(self, z: torch.Tensor, components: tuple[torch.Tensor, torch.Tensor] | None = None,
                       cond: torch.Tensor | None = None) -> torch.Tensor:
        """``log p(z)`` ``(B,)`` float32 under the model's prior (pass ``components`` to reuse them);
        the conditional prior's ``log p(z|c)`` at ``cond (B, C)`` (default: the mean condition, 0)."""
        if self.cond_prior is not None:
            return diag_normal_log_prob(z, *self.conditional_prior(cond, z.shape[0]))
        if self.prior is None:
            return normal_log_prob(z)
        mu_k, logvar_k = components if components is not None else self.prior_components()
        return mixture_log_prob(z, mu_k, logvar_k)

    @torch.no_grad()
    def prior_sample(self, n: int, generator: torch.Generator | None = None,
                     cond: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` latent points ``(n, Z)`` float32 drawn from the prior (on the generator's device); the
        conditional prior's at ``cond (n, C)`` (default: the mean condition, 0)."""
        dev = generator.device if generator is not None else torch.device("cpu")
        if self.prior is None:
            z = torch.randn(n, self.config.latent_dim, generator=generator, device=dev)
            return z if self.cond_prior is None else self.shift_to_prior(z, cond)
        mu_k, logvar_k = self.prior_components()
        return sample_mixture(n, mu_k.float().to(dev), logvar_k.float().to(dev), generator)

    @torch.no_grad()
    def shift_to_prior(self, eps: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Standard-normal noise ``(n, Z)`` -> ``mu(c) + sigma(c) * eps``, a draw from ``p(z|c)`` (float32,
        on ``eps``'s device); the identity for a model without a conditional prior."""
        if self.cond_prior is None:
            return eps
        mu, logvar = self.conditional_prior(cond, eps.shape[0])
        return (mu + torch.exp(0.5 * logvar) * eps.to(mu.device).float()).to(eps.device)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
        return mu + eps * torch.exp(0.5 * logvar)

    # --- decoder (``z`` below is the decoder's latent input: ``[z, c]`` for a conditional model) ---
    def initial_hidden(self, z: torch.Tensor) -> torch.Tensor:
        c = self.config
        h = torch.tanh(self.latent_to_hidden(z))
        return h.view(z.shape[0], c.dec_layers, c.dec_hidden).transpose(0, 1).contiguous()

    def decode_teacher_forced(self, z: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, V)`` for decoder inputs ``(B, T)`` (``<bos>`` + tokens), teacher forcing."""
        emb = self.embed(inputs)
        zs = z.unsqueeze(1).expand(-1, inputs.shape[1], -1)
        out, _ = self.decoder(torch.cat([emb, zs.to(emb.dtype)], dim=-1), self.initial_hidden(z))
        return self.output(out)

    def decode_step(self, z: torch.Tensor, token: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One autoregressive step: logits ``(B, V)`` and the new hidden state."""
        x = torch.cat([self.embed(token), z], dim=-1).unsqueeze(1)
        out, hidden = self.decoder(x, hidden)
        return self.output(out.squeeze(1)), hidden

    @torch.no_grad()
    def generate(self, z: torch.Tensor, max_len: int, temperature: float = 0.0,
                 generator: torch.Generator | None = None, first_allowed: torch.Tensor | None = None,
                 guidance: float = 1.0, steer: "Steering | None" = None) -> torch.Tensor:
        """Decode latent points ``(B, Z)`` to token ids ``(B, <=max_len+1)``; greedy when temperature is 0.

        ``<pad>`` and ``<bos>`` are never emitted; ``first_allowed`` (bool ``(V,)``) restricts the first
        token (to atoms, so no decoding is empty). Stops as soon as every sequence has emitted ``<eos>``;
        positions after it are ``<pad>``. A conditional model takes ``[z, c]`` ``(B, Z+C)``; given only
        ``z`` it decodes at the mean condition (``c = 0``). ``guidance`` w != 1 (conditional models)
        steers each step with ``l(c=0) + w * (l(c) - l(c=0))``: the condition's effect on the logits,
        amplified (as classifier-free guidance does, with the mean condition as the reference).
        ``steer`` (a conditional model's :class:`molvae.guide.Steering`) adds, at the sampling
        temperature's scale, ``strength * log N(c; guide(prefix + token))`` for every candidate token:
        the guide's belief that the finished molecule will have the requested conditions ``c``.
        """
        z = self.with_conditions(z)
        b = z.shape[0]
        guided = self.n_cond > 0 and guidance != 1.0
        if guided:  # one batch of 2B rows: B at c, B at the mean condition; both follow the same tokens
            z = torch.cat([z, torch.cat([z[:, :-self.n_cond], torch.zeros_like(z[:, -self.n_cond:])], dim=1)])
        never = torch.zeros(self.vocab_size, dtype=torch.bool, device=z.device)
        never[[self.pad_id, self.bos_id]] = True
        first_never = never | (~first_allowed.to(z.device) if first_allowed is not None else never)
        out = torch.full((b, max_len + 1), self.pad_id, dtype=torch.long, device=z.device)
        # Only unfinished sequences are decoded: rows leave the batch as soon as they emit <eos>.
        active = torch.arange(b, device=z.device)
        hidden = self.initial_hidden(z)
        token = torch.full((b,), self.bos_id, dtype=torch.long, device=z.device)
        if steer is not None:
            if self.n_cond == 0:
                raise ValueError("steering needs a conditional model")
            steer_hidden = steer.guide.start(b, z.device)
            steer_scale = steer.strength * (temperature if temperature and temperature > 0 else 1.0)
        width = 0
        for t in range(max_len + 1):
            logits, hidden = self.decode_step(z, token.repeat(2) if guided else token, hidden)
            if guided:
                at_c, at_mean = logits.float().chunk(2)
                logits = at_mean + guidance * (at_c - at_mean)
            if steer is not None:  # the rows at c come first in z (see guidance above)
                steer_hidden = steer.guide.advance(token, steer_hidden)
                target = z[:len(token), -self.n_cond:]
                logits = logits.float() + steer_scale * steer.guide.log_likelihood(steer_hidden, target, steer.which)
            if t == max_len:  # out of room: end here
                logits = torch.full_like(logits, float("-inf"))
                logits[:, self.eos_id] = 0.0
            logits = logits.masked_fill(first_never if t == 0 else never, float("-inf"))
            if temperature and temperature > 0:
                # inverse-CDF sampling: one uniform per row (multinomial draws one per token)
                cdf = torch.softmax(logits.float() / temperature, dim=-1).cumsum(-1)
                u = torch.rand(len(cdf), 1, device=cdf.device, generator=generator) * cdf[:, -1:]
                token = torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=self.vocab_size - 1)
            else:
                token = logits.argmax(dim=-1)
            out[active, t] = token
            width = t + 1
            going = token != self.eos_id
            if not bool(going.any()):
                break
            if not bool(going.all()):
                both = going.repeat(2) if guided else going
                active, token, z, hidden = active[going], token[going], z[both], hidden[:, both]
                if steer is not None:
                    steer_hidden = steer_hidden[:, going]
        return out[:, :width]

    # --- loss ---
    def loss(self, tokens: torch.Tensor, lengths: torch.Tensor, beta: float,
             generator: torch.Generator | None = None, eps: torch.Tensor | None = None,
             drop: torch.Tensor | None = None, scale: float = 1.0,
             cond: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Negative ELBO terms, per molecule, averaged over the batch.

        ``recon`` is the summed token cross-entropy, ``kl`` the analytic KL to N(0, I) (normal prior) or
        to ``p(z|c)`` (conditional prior), or the single-sample estimate ``log q(z|x) - log p(z)`` (VampPrior);
        ``loss = recon + beta * max(kl_d, free_bits)`` summed over dims (VampPrior: free bits bound the
        total, ``max(kl, free_bits * Z)``). ``eps`` (B, Z) and ``drop`` (B, T+1, word-dropout mask) may
        be given instead of drawing them from ``generator``: data-parallel ranks take their rows of the
        global batch's noise. ``scale`` multiplies ``loss`` (a rank's share). ``cond`` (B, C): the
        standardized conditions of a conditional model.
        """
        c = self.config
        cond = self._cond(cond, tokens.shape[0], tokens.device)
        mu, logvar = self.encode(tokens, lengths, cond)
        if eps is None:  # as reparameterize() draws it
            eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
        if self.prior is None:
            z = mu + eps.to(mu.dtype) * torch.exp(0.5 * logvar)
        else:  # float32: log q(z|x) must see the same z as log p(z), not a bf16-rounded one
            z = mu.float() + eps.float() * torch.exp(0.5 * logvar.float())
        b = tokens.shape[0]
        inputs, targets = teacher_forcing(tokens, lengths, self.bos_id, self.eos_id, self.pad_id)
        if self.training and c.word_dropout > 0:
            if drop is None:
                drop = torch.rand(inputs.shape, device=inputs.device, generator=generator) < c.word_dropout
            drop = drop.clone()
            drop[:, 0] = False
            inputs = inputs.masked_fill(drop, self.pad_id)
        logits = self.decode_teacher_forced(self.with_conditions(z, cond), inputs)
        ce = F.cross_entropy(logits.float().reshape(-1, self.vocab_size), targets.reshape(-1),
                             ignore_index=self.pad_id, reduction="sum")
        recon = ce / b
        if self.prior is None:  # closed form, to N(0, I) or to the conditional prior p(z|c)
            mu_p, logvar_p = (self.conditional_prior(cond, b) if self.cond_prior is not None
                              else (torch.zeros_like(mu), torch.zeros_like(logvar)))
            kl_dims = gaussian_kl(mu, logvar, mu_p, logvar_p).mean(0)  # (Z,)
            kl = kl_dims.sum()
            kl_penalized = kl_dims.clamp(min=c.free_bits).sum() if c.free_bits > 0 else kl
        else:  # no closed form: the single-sample Monte-Carlo estimate, averaged over the batch
            log_q = -0.5 * (eps.float().pow(2) + logvar.float() + _LOG_2PI).sum(-1)  # log N(z; mu, sigma) exactly
            kl = (log_q - self.prior_log_prob(z)).mean()
            kl_penalized = kl.clamp(min=c.free_bits * c.latent_dim) if c.free_bits > 0 else kl
        with torch.no_grad():
            mask = targets != self.pad_id
            correct = (logits.argmax(-1) == targets) & mask
            token_acc = correct.sum().float() / mask.sum().clamp(min=1)
            exact = (correct | ~mask).all(dim=1).float().mean()
        return {"loss": (recon + beta * kl_penalized) * scale, "recon": recon, "kl": kl, "mu": mu,
                "token_acc": token_acc, "exact_tf": exact}
