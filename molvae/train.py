"""The training loop: ELBO with KL annealing, length-bucketed batches, checkpoints and exact resume.

A run directory is also the model directory: ``config.json``, ``vocab.json``, ``model.safetensors``
(best weights by validation loss), ``train_log.csv``, ``train_hashes.npy`` (novelty), ``val.smi``,
``rejects.csv``, ``data_report.txt``, ``checkpoint.pt`` (resume state) and ``training_curves.png``;
``conditions.json`` for a conditional model; ``likelihood.json`` (held-out ELBO and IWAE bound) and
``ood.json`` (the OOD score's calibration), computed once with the final weights; a conditional model's
``guide.safetensors`` (:mod:`molvae.guide`), trained last (a resumed run whose VAE had finished trains
only the guide).

Resuming is exact: batch order is a pure function of ``(seed, epoch)``, the noise generator's state
and the running sums of the epoch are in the checkpoint, so a resumed run logs the same losses as
one that was never interrupted.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from molvae.conditions import ConditionSpec, condition_values
from molvae.errors import CheckpointError, DataError
from molvae.figures import plot_training_curves  # re-exported, it lived here before
from molvae.guide import GUIDE_FILE, PropertyGuide, save_guide
from molvae.io import content_hash, load_checkpoint, load_weights, save_checkpoint, save_weights, smiles_hashes
from molvae.latent_mixture import LATENT_PRIOR_FILE, LatentMixture
from molvae.likelihood import OODCalibration
from molvae.device import resolve_device, use_bf16  # resolve_device: re-exported, it lived here before
from molvae.model import VAE, ModelConfig
from molvae.schedules import kl_weight, lr_factor
from molvae.train_guide import fit_guide  # re-exported, it lived here before
from molvae.vocab import Vocab, tokenize  # tokenize: re-exported, it lived here before

__all__ = ["train", "restore_run_files", "TrainResult", "TrainState", "LOG_COLUMNS", "RESUME_SETTINGS", "resolve_device", "tokenize",
           "fit_guide"]

LOG_COLUMNS = ["epoch", "step", "lr", "beta", "train_loss", "train_recon", "train_kl", "val_loss", "val_recon",
               "val_kl", "val_elbo", "val_token_acc", "val_exact", "active_units", "sample_validity", "sample_uniqueness",
               "sample_acceptance",
               "seconds", "train_minutes", "cpu_minutes"]

RESUME_SETTINGS = ("max_minutes", "epochs", "checkpoint_every", "eval_every_steps", "early_stopping_patience",
                   "n_prior_samples", "n_val_reconstruct", "final_eval_samples", "eval_iwae_k", "n_val_likelihood",
                   "compact_checkpoint", "latent_prior_components", "keep_radicals")
"""Config fields a resumed run may change (``train(..., resume=True, changes=...)``): budgets, evaluation
and checkpoint settings. ``epochs`` stretches the learning-rate schedule from the step reached."""


@dataclass
class TrainResult:
    net: VAE
    vocab: Vocab
    config: ModelConfig
    history: list[dict[str, float]]
    train_smiles: list[str]
    val_smiles: list[str]
    out_dir: Path | None
    conditions: ConditionSpec | None = None  # the conditions of a conditional model
    ood: OODCalibration | None = None  # the OOD score's calibration
    likelihood: dict[str, Any] | None = None  # held-out ELBO / IWAE of the final weights
    guide: PropertyGuide | None = None  # the property guide of a conditional model (config.guide_epochs > 0)
    latent_prior: LatentMixture | None = None  # fitted after training (config.latent_prior_components > 0)


def bucketed_batches(lengths: torch.Tensor, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """Batches of similar length (little padding) in a random order that depends only on (seed, epoch)."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(len(lengths), generator=gen)
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(perm), chunk):
        idx = perm[start:start + chunk]
        idx = idx[torch.argsort(lengths[idx], stable=True)]
        batches.extend(idx[i:i + batch_size] for i in range(0, len(idx), batch_size))
    order = torch.randperm(len(batches), generator=gen)
    return [batches[i] for i in order]


def compact_optimizer_state(state: dict[str, Any]) -> dict[str, Any]:
    """An optimizer state dict with its floating-point moments in bfloat16: half the bytes of the
    checkpoint's optimizer part, for training state kept in a repository. The weights stay float32."""
    slim = {idx: {k: (v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() and v.dim() > 0 else v)
                  for k, v in per_param.items()} for idx, per_param in state["state"].items()}
    return {"state": slim, "param_groups": state["param_groups"], "compact": True}


def expand_optimizer_state(state: dict[str, Any], opt: torch.optim.Optimizer) -> dict[str, Any]:
    """The inverse of :func:`compact_optimizer_state` (float32 moments again); a full state passes through."""
    if not state.get("compact"):
        return state
    dtype = next(p for group in opt.param_groups for p in group["params"]).dtype
    full = {idx: {k: (v.to(dtype) if torch.is_tensor(v) and v.dtype == torch.bfloat16 else v)
                  for k, v in per_param.items()} for idx, per_param in state["state"].items()}
    return {"state": full, "param_groups": state["param_groups"]}


class _Interrupted(Exception):
    pass


@dataclass
class Ranks:
    """This process's place in a data-parallel job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def rows(self) -> slice:
        """This rank's rows of a global batch: disjoint across ranks, together the whole batch."""
        return slice(self.rank, None, self.world)


def setup_distributed(device: str | torch.device) -> tuple[Ranks, torch.device]:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE`` > 1): NCCL on GPUs, gloo on CPUs."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world <= 1:
        return Ranks(), dev
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Ranks(rank, world), dev


class _Objective(torch.nn.Module):
    """The VAE's loss as ``forward``, so DistributedDataParallel can wrap it."""

    def __init__(self, net: VAE):
        super().__init__()
        self.net = net

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        return self.net.loss(*args, **kwargs)


def train(
    data: Any,
    config: ModelConfig,
    *,
    out_dir: str | Path | None = None,
    device: str | torch.device = "auto",
    resume: bool = False,
    progress: bool = True,
    smiles_column: str | None = None,
    changes: dict[str, Any] | None = None,
    init: Any = None,
    extend_vocab: bool = False,
    _crash_at_step: int | None = None,
) -> TrainResult:
    """Train a VAE on ``data`` (a path or an in-memory collection of molecules) under ``config``.

    With ``out_dir`` every artefact is written there and ``resume=True`` continues from its
    ``checkpoint.pt``. Under ``torchrun`` each rank trains on its share of every global batch
    (``config.batch_size`` molecules in all) and rank 0 alone writes files; a checkpoint holds only
    global positions, so a run can resume with another number of processes. ``_crash_at_step``
    simulates a killed process (for tests). ``changes`` sets :data:`RESUME_SETTINGS` fields of a resumed
    run's saved config (a new stretch's ``max_minutes``); any other field is an error.

    ``init`` (a :class:`molvae.finetune.BaseModel`) starts a new run from a trained model's weights and
    vocabulary: molecules with tokens it lacks are rejected, or with ``extend_vocab`` the vocabulary
    grows (:func:`molvae.finetune.transfer_weights`).

    Cleaned and tokenized data are cached by content (:mod:`molvae.prepared`), so a resumed run starts
    training within seconds.
    """
    ranks, dev = setup_distributed(device)
    progress = progress and ranks.main
    out = _run_dir(out_dir)
    writer = out if ranks.main else None  # the one process that writes files
    saved, config = _open_run(out, resume, config, changes)
    if writer is not None:
        writer.mkdir(parents=True, exist_ok=True)
    ds = _prepare(data, config, saved, init, extend_vocab, smiles_column, dev, progress)
    if writer is not None:
        ds.write_inputs(writer, config)
    loop = _Loop(config, ds, _build(config, ds, dev, ranks, init, saved), dev, ranks, writer, progress, saved)
    try:
        while loop.st.epoch < config.epochs and not loop.stopped:
            loop.train_epoch(_crash_at_step)
            loop.end_epoch()
    except KeyboardInterrupt:
        loop.checkpoint()
        raise
    return _finish(loop, out)


def restore_run_files(data: Any, out_dir: str | Path, *, smiles_column: str | None = None,
                      progress: bool = True) -> Path:
    """Rebuild, without training, what a run directory kept in git leaves out: ``val.smi``,
    ``train_hashes.npy``, ``rejects.csv`` and (from the checkpoint, when its weights are the best
    evaluation's) ``model.safetensors``. A campaign committed on one machine is evaluated on another.

    :raises CheckpointError: no checkpoint, different data, or weights past the best evaluation.
    """
    out = Path(out_dir)
    saved, config = _open_run(out, True, ModelConfig(), None)
    ds = _prepare(data, config, saved, None, False, smiles_column, torch.device("cpu"), progress)
    ds.write_inputs(out, config)
    if not (out / "model.safetensors").exists():
        if saved["bad_epochs"]:
            raise CheckpointError(f"{out}: the checkpoint's weights are {saved['bad_epochs']} evaluation(s) past "
                                  "the best one and model.safetensors is gone; cannot restore the best weights")
        save_weights(saved["model"], out / "model.safetensors")
    return out


def _run_dir(out_dir: str | Path | None) -> Path | None:
    """The run directory, which must be a directory if it exists. :raises ConfigError: an existing file."""
    if out_dir is None:
        return None
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        from molvae.errors import ConfigError

        raise ConfigError(f"{out}: exists and is not a directory (--out names the run directory)")
    return out


def _open_run(out: Path | None, resume: bool, config: ModelConfig,
              changes: dict[str, Any] | None) -> tuple[dict[str, Any] | None, ModelConfig]:
    """The checkpoint to resume from (None for a new run) and the config to train under: a resumed
    run's own, with the :data:`RESUME_SETTINGS` in ``changes`` applied."""
    if not resume:
        return None, config
    if out is None:
        raise CheckpointError("resume needs the run directory (--out)")
    state = load_checkpoint(out / "checkpoint.pt")
    state["run_dir"] = str(out)  # for messages; not written back
    config = ModelConfig.from_dict(state["config"], source=str(out / "checkpoint.pt"))
    if changes:
        from molvae.errors import ConfigError

        saved = config.to_dict()
        fixed = sorted(k for k, v in changes.items() if k not in RESUME_SETTINGS and saved.get(k, v) != v)
        if fixed:
            raise ConfigError(f"{out}: cannot change {fixed[0]} when resuming (the run's saved config "
                              f"decides it); a resumed run may change: {', '.join(RESUME_SETTINGS)}")
        config = config.replace(**{k: v for k, v in changes.items() if k in RESUME_SETTINGS})
    return state, config


@dataclass
class _Dataset:
    """The prepared molecules of a run, tokenized on the device, with its split and conditions."""

    prepared: Any  # molvae.data.PreparedData
    vocab: Vocab
    tokens: torch.Tensor  # (N, T) on the device
    lengths: torch.Tensor  # (N,) on the device
    train_idx: torch.Tensor  # (n_train,) CPU
    val_idx: torch.Tensor  # (n_val,) CPU
    spec: ConditionSpec | None
    conds: torch.Tensor | None  # (N, C) standardized, on the device
    data_hash: str
    base_name: str | None  # the model a fine-tuning run started from

    @property
    def train_smiles(self) -> list[str]:
        return [self.prepared.smiles[i] for i in self.train_idx.tolist()]

    @property
    def val_smiles(self) -> list[str]:
        return [self.prepared.smiles[i] for i in self.val_idx.tolist()]

    def rows(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Tokens, lengths and conditions (None for a plain VAE) of rows ``idx``."""
        idx = idx.to(self.tokens.device)
        return self.tokens[idx], self.lengths[idx], self.conds[idx] if self.conds is not None else None

    def write_inputs(self, writer: Path, config: ModelConfig) -> None:
        """rejects.csv, data_report.txt, config.json, vocab.json, train_hashes.npy, val.smi, conditions.json."""
        self.prepared.write_rejects(writer / "rejects.csv")
        (writer / "data_report.txt").write_text(self.prepared.summary() + "\n")
        config.save(writer / "config.json")
        self.vocab.save(writer / "vocab.json")
        np.save(writer / "train_hashes.npy", np.sort(smiles_hashes(self.train_smiles)), allow_pickle=False)
        (writer / "val.smi").write_text("\n".join(self.val_smiles) + "\n")
        if self.spec is not None:
            self.spec.save(writer / "conditions.json")


def _prepare(data: Any, config: ModelConfig, saved: dict[str, Any] | None, init: Any, extend_vocab: bool,
             smiles_column: str | None, dev: torch.device, progress: bool) -> _Dataset:
    """Clean (cached), check against a resumed run, choose the vocabulary, split, tokenize, add conditions."""
    from molvae.data import split_train_val
    from molvae.prepared import prepare_cached, tokenize_cached

    if saved is not None:  # a fine-tuning run keeps filtering its data with the vocabulary it started with
        init_vocab = Vocab(saved["vocab"]) if saved.get("base_model") else None
        base_name = saved.get("base_model")
    else:
        init_vocab = init.vocab if init is not None and not extend_vocab else None
        base_name = init.name if init is not None else None
    prepared = prepare_cached(data, max_len=config.max_len, stereo=config.stereo,
                              largest_fragment=config.largest_fragment, smiles_column=smiles_column,
                              vocab=init_vocab, progress=progress)
    raw_conditions = None
    if config.n_conditions:  # molecules without usable values move to the rejects
        raw_conditions = condition_values(prepared, data, config.conditions, config.condition_columns,
                                          smiles_column, progress)
    if progress:
        print(prepared.summary())
    if len(prepared.smiles) < 2:
        raise DataError(f"{prepared.source}: need at least 2 usable molecules to train, got {len(prepared.smiles)}")
    data_hash = content_hash(prepared.smiles)
    if saved is not None and saved["data_hash"] != data_hash:
        raise CheckpointError(f"{saved['run_dir']}: the data differ from the data this run was started with; "
                              "cannot resume")
    vocab = _choose_vocab(prepared, saved, init, extend_vocab, progress)
    train_idx, val_idx = split_train_val(len(prepared.smiles), config.val_fraction, config.seed)
    if len(val_idx) == 0:
        val_idx, train_idx = train_idx[:1], train_idx[1:] if len(train_idx) > 1 else train_idx
    tokens, lengths = tokenize_cached(prepared, vocab, config.max_len)
    spec = conds = None
    if raw_conditions is not None:  # standardized with the training split's statistics
        spec = ConditionSpec.fit(config.condition_names, ["rdkit"] * len(config.conditions)
                                 + ["column"] * len(config.condition_columns), raw_conditions[train_idx])
        conds = torch.as_tensor(spec.standardize(raw_conditions), device=dev)
    return _Dataset(prepared, vocab, tokens.to(dev), lengths.to(dev),
                    torch.as_tensor(np.asarray(train_idx), dtype=torch.long),
                    torch.as_tensor(np.asarray(val_idx), dtype=torch.long), spec, conds, data_hash, base_name)


def _choose_vocab(prepared: Any, saved: dict[str, Any] | None, init: Any, extend_vocab: bool,
                  progress: bool) -> Vocab:
    """A resumed run's vocabulary, a base model's (extended with ``extend_vocab``), or the data's own."""
    if saved is not None:
        return Vocab(saved["vocab"])
    if init is None:
        return Vocab.from_selfies(prepared.selfies)
    from molvae.finetune import extended_vocab

    vocab = extended_vocab(init.vocab, prepared.selfies) if extend_vocab else init.vocab
    if progress and len(vocab) > len(init.vocab):
        print(f"vocabulary extended from {len(init.vocab)} to {len(vocab)} tokens: "
              + " ".join(t for t in vocab.itos if t not in init.vocab.stoi))
    return vocab


@dataclass
class _Parts:
    """What the loop trains: the network, its loss (DDP-wrapped under torchrun), optimizer and noise."""

    net: VAE
    objective: torch.nn.Module
    opt: torch.optim.Optimizer
    noise: torch.Generator


def _build(config: ModelConfig, ds: _Dataset, dev: torch.device, ranks: Ranks, init: Any,
           saved: dict[str, Any] | None) -> _Parts:
    """The network (a base model's weights when fine-tuning; VampPrior pseudo-inputs at training
    molecules), its objective, AdamW and the noise generator."""
    torch.manual_seed(config.seed)
    net = VAE(config, len(ds.vocab)).to(dev)
    if init is not None and saved is None:
        from molvae.finetune import transfer_weights

        net.load_state_dict(transfer_weights(init.weights, init.vocab, ds.vocab, config.seed))
    if net.prior is not None and saved is None and init is None:  # VampPrior: pseudo-inputs at training molecules
        pick = ds.train_idx[torch.randperm(len(ds.train_idx), generator=torch.Generator().manual_seed(config.seed))
                            [:config.vamp_components]]
        tokens, _, cond = ds.rows(pick)
        with torch.no_grad():
            net.prior.init_from(net.embed(tokens), cond)
    objective: torch.nn.Module = _Objective(net)
    if ranks.world > 1:
        objective = torch.nn.parallel.DistributedDataParallel(
            objective, device_ids=[dev.index] if dev.type == "cuda" else None)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return _Parts(net, objective, opt, torch.Generator(device=dev).manual_seed(config.seed + 1))


def _zero_sums() -> dict[str, float]:
    return {"loss": 0.0, "recon": 0.0, "kl": 0.0, "n": 0.0}


@dataclass
class TrainState:
    """Where a run stands: everything ``checkpoint.pt`` holds besides the weights, optimizer and noise."""

    step: int = 0
    epoch: int = 0
    batch_pos: int = 0  # batches of ``epoch`` already trained
    sums: dict[str, float] = field(default_factory=_zero_sums)  # running sums since the last evaluation
    best_val: float = math.inf
    bad_epochs: int = 0  # evaluations since the best validation loss
    history: list[dict[str, float]] = field(default_factory=list)
    spent: dict[str, float] = field(default_factory=lambda: {"train_minutes": 0.0, "cpu_minutes": 0.0})

    def to_checkpoint(self, parts: _Parts, config: ModelConfig, ds: _Dataset, spent: dict[str, float]) -> dict:
        optimizer = parts.opt.state_dict()
        return {"model": parts.net.state_dict(), "config": config.to_dict(), "spent": spent,
                "optimizer": compact_optimizer_state(optimizer) if config.compact_checkpoint else optimizer,
                "vocab": ds.vocab.itos, "noise_rng": parts.noise.get_state().cpu(), "step": self.step,
                "epoch": self.epoch, "batch_pos": self.batch_pos, "sums": self.sums, "best_val": self.best_val,
                "bad_epochs": self.bad_epochs, "history": self.history, "data_hash": ds.data_hash,
                "base_model": ds.base_name}

    @classmethod
    def restore(cls, state: dict[str, Any], parts: _Parts) -> "TrainState":
        """Load a checkpoint's weights, optimizer and noise into ``parts``; its position as a state."""
        parts.net.load_state_dict(state["model"])
        parts.opt.load_state_dict(expand_optimizer_state(state["optimizer"], parts.opt))
        rng = state["noise_rng"]
        parts.noise.set_state(rng.to(parts.noise.device) if parts.noise.device.type != "cpu" else rng)
        return cls(int(state["step"]), int(state["epoch"]), int(state["batch_pos"]),
                   {k: float(v) for k, v in state["sums"].items()}, float(state["best_val"]),
                   int(state["bad_epochs"]), [dict(row) for row in state["history"]],
                   {k: float(v) for k, v in state.get("spent", cls().spent).items()})


class _Loop:
    """The training loop's steps over one run: :meth:`train_epoch` (the step loop), :meth:`end_epoch`
    (evaluate, early stopping, checkpoint), with :meth:`close_period` logging every evaluation."""

    def __init__(self, config: ModelConfig, ds: _Dataset, parts: _Parts, dev: torch.device, ranks: Ranks,
                 writer: Path | None, progress: bool, saved: dict[str, Any] | None):
        self.config, self.ds, self.parts, self.dev, self.ranks = config, ds, parts, dev, ranks
        self.writer, self.progress = writer, progress
        self.st = TrainState.restore(saved, parts) if saved is not None else TrainState()
        self.steps_per_epoch = math.ceil(len(ds.train_idx) / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.train_lengths = ds.lengths.cpu()[ds.train_idx]
        self.use_amp = use_bf16(config.precision, dev)
        self.best_state: dict[str, torch.Tensor] | None = None  # the best evaluation's weights (keep_best)
        self.stopped = self.time_up = False
        self.t_start, self.cpu_start, self.first_step = time.perf_counter(), time.process_time(), self.st.step
        self.t_period = self.t_start

    def spent_now(self) -> dict[str, float]:
        """Training and CPU minutes over every stretch of this run, up to now."""
        before = self.st.spent
        return {"train_minutes": before["train_minutes"] + (time.perf_counter() - self.t_start) / 60,
                "cpu_minutes": before["cpu_minutes"] + (time.process_time() - self.cpu_start) / 60}

    def checkpoint(self) -> None:
        if self.writer is not None:
            save_checkpoint(self.st.to_checkpoint(self.parts, self.config, self.ds, self.spent_now()),
                            self.writer / "checkpoint.pt")

    def _out_of_time(self) -> bool:
        c = self.config
        return bool(c.max_minutes) and self.st.step > self.first_step and \
            time.perf_counter() - self.t_start > 60 * c.max_minutes

    def train_epoch(self, crash_at_step: int | None = None) -> None:
        """Train the rest of the current epoch (from ``batch_pos``), or until the time budget is spent."""
        import torch.distributed as dist

        from molvae.progress import progress_bar

        c, st, ranks, dev = self.config, self.st, self.ranks, self.dev
        net, opt = self.parts.net, self.parts.opt
        batches = bucketed_batches(self.train_lengths, c.batch_size, c.seed, st.epoch)
        if ranks.world > 1:  # every rank needs at least one molecule of each batch
            batches = [b for b in batches if len(b) >= ranks.world]
        self.n_batches = len(batches)
        net.train()
        bar = progress_bar(total=len(batches), initial=st.batch_pos, disable=not self.progress,
                           desc=f"epoch {st.epoch + 1}/{c.epochs}", unit="batch", leave=False)
        while st.batch_pos < len(batches):
            if self._out_of_time():
                self.time_up = True
                break
            if crash_at_step is not None and st.step == crash_at_step:
                raise _Interrupted(f"simulated crash at step {st.step}")
            batch = batches[st.batch_pos]
            width = int(self.train_lengths[batch].max())
            # noise for the whole global batch, then this rank's rows: any world size sees the same
            eps = torch.randn(len(batch), c.latent_dim, device=dev, generator=self.parts.noise)
            drop = (torch.rand(len(batch), width + 1, device=dev, generator=self.parts.noise) < c.word_dropout
                    if c.word_dropout > 0 else None)
            mine = ranks.rows()
            tokens, lengths, cond = self.ds.rows(self.ds.train_idx[batch[mine]])
            n = len(tokens)
            beta = kl_weight(st.step, self.steps_per_epoch, c)
            for group in opt.param_groups:
                group["lr"] = c.lr * lr_factor(st.step, self.total_steps, c)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=self.use_amp):
                # scaled so that DDP's average of the ranks' gradients is the global batch's mean
                terms = self.parts.objective(tokens[:, :width], lengths, beta, eps=eps[mine],
                                             drop=drop[mine] if drop is not None else None,
                                             scale=n * ranks.world / len(batch), cond=cond)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            if c.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), c.grad_clip)
            opt.step()
            stats = torch.stack([terms["loss"].detach() * len(batch) / ranks.world, terms["recon"].detach() * n,
                                 terms["kl"].detach() * n, torch.tensor(float(n), device=dev)]).double()
            if ranks.world > 1:
                dist.all_reduce(stats)
            for key, value in zip(("loss", "recon", "kl", "n"), stats.tolist()):  # one host sync per step
                st.sums[key] += value
            st.step += 1
            st.batch_pos += 1
            bar.update(1)
            bar.set_postfix(loss=f"{st.sums['loss'] / st.sums['n']:.2f}", beta=f"{beta:.3f}", refresh=False)
            if c.eval_every_steps and st.step % c.eval_every_steps == 0 and st.batch_pos < len(batches):
                self.close_period(st.epoch + st.batch_pos / len(batches))
                self.checkpoint()
            elif st.step % c.checkpoint_every == 0:
                self.checkpoint()
        bar.close()

    def end_epoch(self) -> None:
        """Evaluate what was trained since the last evaluation, move to the next epoch (unless the time
        budget ran out mid-epoch), decide on stopping, and checkpoint."""
        st, c = self.st, self.config
        if not (self.time_up and st.sums["n"] == 0 and st.history):  # else nothing trained since the last one
            done = st.batch_pos >= self.n_batches
            self.close_period(st.epoch + 1 if done else st.epoch + st.batch_pos / self.n_batches)
        if self.time_up:
            self.stopped = True
            if self.progress:
                print(f"stopping: the {c.max_minutes:g}-minute budget is spent (epoch {st.epoch} ended early)")
        else:
            st.epoch += 1
            st.batch_pos = 0
            if c.early_stopping_patience and st.bad_epochs >= c.early_stopping_patience:
                self.stopped = True
                if self.progress:
                    print(f"early stopping: no better validation loss for {st.bad_epochs} epochs")
        self.checkpoint()

    def close_period(self, label: float) -> None:
        """Log the steps since the last evaluation and evaluate: at each epoch's end, and every
        ``config.eval_every_steps`` steps within one (``label``: the epoch reached, fractional mid-epoch)."""
        import torch.distributed as dist

        st, c, net = self.st, self.config, self.parts.net
        n = max(st.sums["n"], 1)
        row = {"epoch": label, "step": st.step, "lr": self.parts.opt.param_groups[0]["lr"],
               "beta": kl_weight(st.step, self.steps_per_epoch, c), "train_loss": st.sums["loss"] / n,
               "train_recon": st.sums["recon"] / n, "train_kl": st.sums["kl"] / n}
        if self.ranks.main:
            tokens, lengths, cond = self.ds.rows(self.ds.val_idx)
            row.update(evaluate_epoch(net, self.ds.vocab, c, tokens, lengths, self.dev,
                                      seed=c.seed * 1000 + math.ceil(label) - 1, cond=cond))
        if self.ranks.world > 1:  # every rank takes the same early-stopping decision
            shared = [row]
            dist.broadcast_object_list(shared, src=0)
            row = shared[0]
        row["seconds"] = time.perf_counter() - self.t_period
        row.update(self.spent_now())
        self.t_period = time.perf_counter()
        st.history.append(row)
        if self.progress:
            _print_row(label, row)
        if row["val_loss"] < st.best_val:
            st.best_val, st.bad_epochs = row["val_loss"], 0
            if c.keep_best:
                self.best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            st.bad_epochs += 1
        if self.writer is not None and (st.bad_epochs == 0 or not c.keep_best):
            save_weights(net.state_dict(), self.writer / "model.safetensors")
        st.sums = _zero_sums()
        if self.writer is not None:
            write_log(st.history, self.writer / "train_log.csv")


def _print_row(label: float, row: dict[str, float]) -> None:
    shown = f"{label:g}" if label == int(label) else f"{label:.2f}"
    print(f"epoch {shown}: loss {row['train_loss']:.3f} | val loss {row['val_loss']:.3f} "
          f"recon {row['val_recon']:.3f} kl {row['val_kl']:.2f} exact {row['val_exact']:.3f} "
          f"| prior valid {row['sample_validity']:.3f} unique {row['sample_uniqueness']:.3f} "
          f"| {row['seconds']:.0f}s")


def _finish(loop: _Loop, out: Path | None) -> TrainResult:
    """The best weights, the training curves, the held-out likelihood and OOD calibration, the guide, the
    fitted latent prior."""
    import torch.distributed as dist

    c, ds, net, writer, dev = loop.config, loop.ds, loop.parts.net, loop.writer, loop.dev
    if c.keep_best:  # the best epoch's weights: in memory, or on disk when this run was resumed
        best = loop.best_state
        if best is None and out is not None and (out / "model.safetensors").exists():
            best = load_weights(out / "model.safetensors")
        if best is not None:
            net.load_state_dict({k: v.to(dev) for k, v in best.items()})
    if writer is not None and loop.st.history:
        plot_training_curves(writer / "train_log.csv", writer / "training_curves.png")
    likelihood = ood = guide = latent_prior = None
    if loop.ranks.main and c.eval_iwae_k > 0:
        likelihood, ood = _heldout(net, c, ds, writer, loop.progress)
    if loop.ranks.main and ds.conds is not None and c.guide_epochs > 0:
        guide = _train_guide(net, c, ds, writer, loop.progress)
    if loop.ranks.main:
        latent_prior = _fit_latent_prior(net, c, ds, writer, loop.progress)
    if loop.ranks.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    net.eval()
    return TrainResult(net, ds.vocab, c, loop.st.history, ds.train_smiles, ds.val_smiles, out, ds.spec, ood,
                       likelihood, guide, latent_prior)


LATENT_PRIOR_MAX_MOLECULES = 50_000
"""Training molecules whose latent means the fitted prior is estimated from (a seeded random subset)."""


@torch.no_grad()
def _fit_latent_prior(net: VAE, config: ModelConfig, ds: _Dataset, writer: Path | None,
                      progress: bool) -> LatentMixture | None:
    """The mixture of ``config.latent_prior_components`` Gaussians over the training molecules' latent
    means (:mod:`molvae.latent_mixture`), saved as latent_prior.safetensors. None for a conditional
    model, when turned off or with fewer than 2 molecules per component; a stale file from earlier
    weights is then removed, since it describes a latent space these weights no longer have."""
    k = config.latent_prior_components
    n = min(len(ds.train_idx), LATENT_PRIOR_MAX_MOLECULES)
    if k == 0 or ds.conds is not None or n < 2 * k:
        if k and progress:
            why = ("a conditional model samples at its conditions" if ds.conds is not None
                   else f"{n} training molecules, fewer than 2 per component ({k})")
            print(f"latent prior not fitted: {why}")
        if writer is not None and (writer / LATENT_PRIOR_FILE).exists():
            (writer / LATENT_PRIOR_FILE).unlink()
            if progress:
                print(f"removed {LATENT_PRIOR_FILE}: it was fitted to earlier weights (molvae fit-prior refits it)")
        return None
    pick = torch.randperm(len(ds.train_idx), generator=torch.Generator().manual_seed(config.seed))[:n]
    idx = ds.train_idx[pick]
    means, _ = net.encode_batches(ds.rows(idx[start:start + 1024])[:2] for start in range(0, n, 1024))
    mixture = LatentMixture.fit(means, components=k, seed=config.seed)
    if writer is not None:
        mixture.save(writer / LATENT_PRIOR_FILE)
    if progress:
        print(f"latent prior: a {k}-component Gaussian mixture over {len(idx):,} training molecules' latent means "
              "(sampling uses it; prior='model' for N(0, I))")
    return mixture


def _heldout(net: VAE, config: ModelConfig, ds: _Dataset, writer: Path | None,
             progress: bool) -> tuple[dict[str, Any], OODCalibration]:
    """:func:`heldout_likelihood` of the first ``config.n_val_likelihood`` validation molecules, written
    as likelihood.json and ood.json."""
    likelihood, ood = heldout_likelihood(net, config, *ds.rows(ds.val_idx[: config.n_val_likelihood]), progress)
    if writer is not None:
        (writer / "likelihood.json").write_text(json.dumps(likelihood, indent=2) + "\n")
        ood.save(writer / "ood.json")
    if progress:
        print(f"held-out likelihood ({likelihood['n']} molecules): ELBO {likelihood['elbo']:.3f}, "
              f"IWAE (k={likelihood['k']}) {likelihood['iwae']:.3f} nats per molecule; "
              f"OOD threshold {ood.threshold:.3f} ({ood.quantile:g} quantile)")
    return likelihood, ood


def _train_guide(net: VAE, config: ModelConfig, ds: _Dataset, writer: Path | None, progress: bool) -> PropertyGuide:
    """The property guide of a conditional model (:func:`molvae.train_guide.fit_guide`), saved beside it."""
    guide = fit_guide(net, ds.vocab, config, ds.spec, ds.rows(ds.train_idx), progress)
    if writer is not None:
        save_guide(guide, writer / GUIDE_FILE)
    if progress:
        spec = ds.spec
        errors = ", ".join(f"{name} {err * sd:.3f}" for name, err, sd in
                           zip(spec.names, guide.summary.get("val_mae_final", []), spec.std) if np.isfinite(err))
        print(f"property guide ({config.guide_epochs} epochs): held-out error of its prediction once a "
              f"molecule is complete: {errors}")
    return guide


@torch.no_grad()
def heldout_likelihood(net: VAE, config: ModelConfig, tokens: torch.Tensor, lengths: torch.Tensor,
                       cond: torch.Tensor | None, progress: bool = False) -> tuple[dict[str, Any], Any]:
    """Mean held-out ELBO and IWAE bound (``config.eval_iwae_k`` samples, nats per molecule), and the
    OOD score calibrated on the same molecules (threshold: their ``config.ood_quantile`` quantile)."""
    from molvae.likelihood import OODCalibration, likelihood_bounds

    k = config.eval_iwae_k
    b = likelihood_bounds(net, tokens, lengths, cond, k=k, seed=config.seed, progress=progress)
    summary = {"n": len(tokens), "k": k, "elbo": float(b["elbo"].mean()), "iwae": float(b["iwae"].mean()),
               "recon": float(b["recon"].mean()), "tokens": float(b["n_tokens"].mean()), "seed": config.seed}
    return summary, OODCalibration.fit(b, k, config.ood_quantile, config.seed)


@torch.no_grad()
def evaluate_epoch(net: VAE, vocab: Vocab, config: ModelConfig, tokens: torch.Tensor, lengths: torch.Tensor,
                   device: torch.device, seed: int, cond: torch.Tensor | None = None) -> dict[str, float]:
    """Validation ELBO terms (loss at the final beta; ``val_elbo`` at beta 1), greedy reconstruction,
    active units, prior-sample quality (a conditional model: at the validation molecules' conditions)."""
    from molvae.generate import decode_latents, prior_batches

    net.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    totals = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
    mus = []
    n = len(tokens)
    for start in range(0, n, 512):
        t, l = tokens[start:start + 512], lengths[start:start + 512]
        width = int(l.max())
        terms = net.loss(t[:, :width], l, config.beta, generator=gen,
                         cond=cond[start:start + 512] if cond is not None else None)
        for k in totals:
            totals[k] += float(terms[k]) * len(t)
        mus.append(terms["mu"].float())
    mu = torch.cat(mus)
    active = int((mu.var(dim=0, unbiased=False) > 0.01).sum()) if len(mu) > 1 else 0

    # greedy reconstruction from the posterior mean: token accuracy and exact whole-molecule match
    m = min(n, config.n_val_reconstruct)
    ids = net.generate(net.with_conditions(mu[:m], cond[:m] if cond is not None else None), max_len=config.max_len)
    correct = total = exact = 0
    for row, target, length in zip(ids.cpu().tolist(), tokens[:m].cpu().tolist(), lengths[:m].cpu().tolist()):
        want = target[:length] + [vocab.eos_id]
        got = (row + [vocab.pad_id] * len(want))[: len(want)]
        hits = sum(a == b for a, b in zip(got, want))
        correct += hits
        total += len(want)
        exact += hits == len(want)

    n_prior = config.n_prior_samples
    at = None  # a conditional model samples at the validation molecules' conditions
    if cond is not None:
        at = cond[torch.randint(len(cond), (n_prior,), generator=torch.Generator().manual_seed(seed)).to(device)]
    latents = prior_batches(net, n_prior, seed, 512, at)
    if at is not None:
        latents = (net.with_conditions(z.to(device), at[i * 512:i * 512 + len(z)]) for i, z in enumerate(latents))
    decoded = decode_latents(net, vocab, latents, max_len=config.max_len, device=device, temperature=1.0, seed=seed,
                             stereo=config.stereo, keep_radicals=config.keep_radicals, n_workers=0)
    smiles = decoded.smiles
    valid = [s for s in smiles if s]
    net.train()
    return {"val_loss": totals["loss"] / n, "val_recon": totals["recon"] / n, "val_kl": totals["kl"] / n,
            "val_elbo": -(totals["recon"] + totals["kl"]) / n,
            "val_token_acc": correct / max(total, 1), "val_exact": exact / max(m, 1), "active_units": active,
            "sample_validity": len(valid) / max(len(smiles), 1),
            "sample_uniqueness": len(set(valid)) / max(len(valid), 1),
            "sample_acceptance": decoded.repaired.count(False) / max(len(smiles), 1)}


def write_log(history: list[dict[str, float]], path: Path) -> None:
    """Write the per-epoch log as CSV (columns :data:`LOG_COLUMNS`)."""
    from molvae.io import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=LOG_COLUMNS, extrasaction="ignore")
            w.writeheader()
            w.writerows(history)

    atomic_write(path, write)
