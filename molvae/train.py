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
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from molvae.errors import CheckpointError, DataError
from molvae.io import content_hash, load_checkpoint, save_checkpoint, save_weights, smiles_hashes
from molvae.model import VAE, ModelConfig, kl_weight, lr_factor
from molvae.vocab import Vocab, tokenize  # tokenize: re-exported, it lived here before

# DDP support: done (the distributed-training edits are finished; others may now edit this file)
__all__ = ["train", "resolve_device", "TrainResult", "LOG_COLUMNS", "tokenize", "fit_guide"]

LOG_COLUMNS = ["epoch", "step", "lr", "beta", "train_loss", "train_recon", "train_kl", "val_loss", "val_recon",
               "val_kl", "val_elbo", "val_token_acc", "val_exact", "active_units", "sample_validity", "sample_uniqueness",
               "seconds", "train_minutes", "cpu_minutes"]

RESUME_SETTINGS = ("max_minutes", "epochs", "checkpoint_every", "eval_every_steps", "early_stopping_patience",
                   "n_prior_samples", "n_val_reconstruct", "final_eval_samples", "eval_iwae_k", "n_val_likelihood",
                   "compact_checkpoint")
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
    conditions: Any = None  # molvae.conditions.ConditionSpec of a conditional model
    ood: Any = None  # molvae.likelihood.OODCalibration
    likelihood: dict[str, Any] | None = None  # held-out ELBO / IWAE of the final weights
    guide: Any = None  # molvae.guide.PropertyGuide of a conditional model (config.guide_epochs > 0)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when a GPU is present, else CPU; ``cuda`` without a GPU is an error."""
    from molvae.errors import ConfigError

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device cuda requested but no CUDA GPU is available (use --device cpu or auto)")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; expected auto, cpu or cuda") from None


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether to autocast to bfloat16: always on CUDA under ``auto``, on a CPU only where it has native
    bf16 arithmetic (AVX512-BF16/AMX), where it is about 3x faster for the GRU's matrix products."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return True
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


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
    import torch.distributed as dist
    from molvae.progress import progress_bar

    from molvae.data import split_train_val
    from molvae.prepared import prepare_cached, tokenize_cached

    ranks, dev = setup_distributed(device)
    progress = progress and ranks.main
    out = Path(out_dir) if out_dir is not None else None
    writer = out if ranks.main else None  # the one process that writes files
    state = None
    if resume:
        if out is None:
            raise CheckpointError("resume needs the run directory (--out)")
        state = load_checkpoint(out / "checkpoint.pt")
        config = ModelConfig.from_dict(state["config"], source=str(out / "checkpoint.pt"))
        if changes:
            from molvae.errors import ConfigError

            saved = config.to_dict()
            fixed = sorted(k for k, v in changes.items() if k not in RESUME_SETTINGS and saved.get(k, v) != v)
            if fixed:
                raise ConfigError(f"{out}: cannot change {fixed[0]} when resuming (the run's saved config "
                                  f"decides it); a resumed run may change: {', '.join(RESUME_SETTINGS)}")
            config = config.replace(**{k: v for k, v in changes.items() if k in RESUME_SETTINGS})
    if writer is not None:
        writer.mkdir(parents=True, exist_ok=True)

    if state is not None:  # a fine-tuning run keeps filtering its data with the vocabulary it started with
        init_vocab = Vocab(state["vocab"]) if state.get("base_model") else None
        base_name = state.get("base_model")
    else:
        init_vocab = init.vocab if init is not None and not extend_vocab else None
        base_name = init.name if init is not None else None
    prepared = prepare_cached(data, max_len=config.max_len, stereo=config.stereo,
                              largest_fragment=config.largest_fragment, smiles_column=smiles_column,
                              vocab=init_vocab, progress=progress)
    raw_conditions = None
    if config.n_conditions:  # molecules without usable values move to the rejects
        from molvae.conditions import condition_values

        raw_conditions = condition_values(prepared, data, config.conditions, config.condition_columns,
                                          smiles_column, progress)
    if progress:
        print(prepared.summary())
    if len(prepared.smiles) < 2:
        raise DataError(f"{prepared.source}: need at least 2 usable molecules to train, got {len(prepared.smiles)}")
    data_hash = content_hash(prepared.smiles)
    if state is not None and state["data_hash"] != data_hash:
        raise CheckpointError(f"{out}: the data differ from the data this run was started with; cannot resume")
    if state is not None:
        vocab = Vocab(state["vocab"])
    elif init is not None:
        from molvae.finetune import extended_vocab

        vocab = extended_vocab(init.vocab, prepared.selfies) if extend_vocab else init.vocab
        if progress and len(vocab) > len(init.vocab):
            print(f"vocabulary extended from {len(init.vocab)} to {len(vocab)} tokens: "
                  + " ".join(t for t in vocab.itos if t not in init.vocab.stoi))
    else:
        vocab = Vocab.from_selfies(prepared.selfies)
    train_idx, val_idx = split_train_val(len(prepared.smiles), config.val_fraction, config.seed)
    if len(val_idx) == 0:
        val_idx, train_idx = train_idx[:1], train_idx[1:] if len(train_idx) > 1 else train_idx
    train_smiles = [prepared.smiles[i] for i in train_idx]
    val_smiles = [prepared.smiles[i] for i in val_idx]
    tokens, lengths = tokenize_cached(prepared, vocab, config.max_len)
    tokens, lengths = tokens.to(dev), lengths.to(dev)
    train_idx_t = torch.as_tensor(np.asarray(train_idx), dtype=torch.long)
    val_idx_t = torch.as_tensor(np.asarray(val_idx), dtype=torch.long)
    train_lengths = lengths.cpu()[train_idx_t]
    spec = conds = None
    if raw_conditions is not None:  # standardized with the training split's statistics
        from molvae.conditions import ConditionSpec

        spec = ConditionSpec.fit(config.condition_names, ["rdkit"] * len(config.conditions)
                                 + ["column"] * len(config.condition_columns), raw_conditions[train_idx])
        conds = torch.as_tensor(spec.standardize(raw_conditions), device=dev)

    if writer is not None:
        prepared.write_rejects(writer / "rejects.csv")
        (writer / "data_report.txt").write_text(prepared.summary() + "\n")
        config.save(writer / "config.json")
        vocab.save(writer / "vocab.json")
        np.save(writer / "train_hashes.npy", np.sort(smiles_hashes(train_smiles)), allow_pickle=False)
        (writer / "val.smi").write_text("\n".join(val_smiles) + "\n")
        if spec is not None:
            spec.save(writer / "conditions.json")

    torch.manual_seed(config.seed)
    net = VAE(config, len(vocab)).to(dev)
    if init is not None and state is None:
        from molvae.finetune import transfer_weights

        net.load_state_dict(transfer_weights(init.weights, init.vocab, vocab, config.seed))
    if net.prior is not None and state is None and init is None:  # VampPrior: pseudo-inputs at training molecules
        pick = train_idx_t[torch.randperm(len(train_idx_t), generator=torch.Generator().manual_seed(config.seed))
                           [:config.vamp_components]].to(dev)
        with torch.no_grad():
            net.prior.init_from(net.embed(tokens[pick]), conds[pick] if conds is not None else None)
    objective: torch.nn.Module = _Objective(net)
    if ranks.world > 1:
        objective = torch.nn.parallel.DistributedDataParallel(
            objective, device_ids=[dev.index] if dev.type == "cuda" else None)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    noise = torch.Generator(device=dev).manual_seed(config.seed + 1)
    steps_per_epoch = math.ceil(len(train_idx) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    history: list[dict[str, float]] = []
    step, epoch, batch_pos = 0, 0, 0
    sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0, "n": 0.0}
    best_val, bad_epochs = math.inf, 0
    best_state: dict[str, torch.Tensor] | None = None
    spent = {"train_minutes": 0.0, "cpu_minutes": 0.0}  # over every stretch of this run
    if state is not None:
        net.load_state_dict(state["model"])
        opt.load_state_dict(expand_optimizer_state(state["optimizer"], opt))
        spent = {k: float(v) for k, v in state.get("spent", spent).items()}
        noise.set_state(state["noise_rng"].to(noise.device) if dev.type != "cpu" else state["noise_rng"])
        step, epoch, batch_pos = int(state["step"]), int(state["epoch"]), int(state["batch_pos"])
        sums = {k: float(v) for k, v in state["sums"].items()}
        best_val, bad_epochs = float(state["best_val"]), int(state["bad_epochs"])
        history = [dict(row) for row in state["history"]]

    t_start, cpu_start, first_step = time.perf_counter(), time.process_time(), step
    spent_before = dict(spent)

    def spent_now() -> dict[str, float]:
        return {"train_minutes": spent_before["train_minutes"] + (time.perf_counter() - t_start) / 60,
                "cpu_minutes": spent_before["cpu_minutes"] + (time.process_time() - cpu_start) / 60}

    def checkpoint() -> None:
        if writer is None:
            return
        optimizer = opt.state_dict()
        save_checkpoint({
            "model": net.state_dict(), "config": config.to_dict(), "spent": spent_now(),
            "optimizer": compact_optimizer_state(optimizer) if config.compact_checkpoint else optimizer,
            "vocab": vocab.itos, "noise_rng": noise.get_state().cpu(), "step": step, "epoch": epoch,
            "batch_pos": batch_pos, "sums": sums, "best_val": best_val, "bad_epochs": bad_epochs,
            "history": history, "data_hash": data_hash, "base_model": base_name,
        }, writer / "checkpoint.pt")

    use_amp = use_bf16(config.precision, dev)
    stopped_early = time_up = False
    t_epoch = time.perf_counter()

    def close_period(label: float) -> None:
        """Log the steps since the last evaluation and evaluate: at each epoch's end, and every
        ``config.eval_every_steps`` steps within one (``label``: the epoch reached, fractional mid-epoch)."""
        nonlocal sums, t_epoch, best_val, bad_epochs, best_state
        row = {"epoch": label, "step": step, "lr": opt.param_groups[0]["lr"],
               "beta": kl_weight(step, steps_per_epoch, config),
               "train_loss": sums["loss"] / max(sums["n"], 1), "train_recon": sums["recon"] / max(sums["n"], 1),
               "train_kl": sums["kl"] / max(sums["n"], 1)}
        if ranks.main:
            row.update(evaluate_epoch(net, vocab, config, tokens[val_idx_t.to(dev)],
                                      lengths[val_idx_t.to(dev)], dev, seed=config.seed * 1000 + math.ceil(label) - 1,
                                      cond=conds[val_idx_t.to(dev)] if conds is not None else None))
        if ranks.world > 1:  # every rank takes the same early-stopping decision
            shared = [row]
            dist.broadcast_object_list(shared, src=0)
            row = shared[0]
        row["seconds"] = time.perf_counter() - t_epoch
        row.update(spent_now())
        t_epoch = time.perf_counter()
        history.append(row)
        if progress:
            shown = f"{label:g}" if label == int(label) else f"{label:.2f}"
            print(f"epoch {shown}: loss {row['train_loss']:.3f} | val loss {row['val_loss']:.3f} "
                  f"recon {row['val_recon']:.3f} kl {row['val_kl']:.2f} exact {row['val_exact']:.3f} "
                  f"| prior valid {row['sample_validity']:.3f} unique {row['sample_uniqueness']:.3f} "
                  f"| {row['seconds']:.0f}s")
        if row["val_loss"] < best_val:
            best_val, bad_epochs = row["val_loss"], 0
            if config.keep_best:
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            bad_epochs += 1
        if writer is not None and (bad_epochs == 0 or not config.keep_best):
            save_weights(net.state_dict(), writer / "model.safetensors")
        sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0, "n": 0.0}
        if writer is not None:
            write_log(history, writer / "train_log.csv")

    try:
        while epoch < config.epochs and not stopped_early:
            batches = bucketed_batches(train_lengths, config.batch_size, config.seed, epoch)
            if ranks.world > 1:  # every rank needs at least one molecule of each batch
                batches = [b for b in batches if len(b) >= ranks.world]
            net.train()
            bar = progress_bar(total=len(batches), initial=batch_pos, disable=not progress,
                       desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False)
            while batch_pos < len(batches):
                if config.max_minutes and step > first_step and time.perf_counter() - t_start > 60 * config.max_minutes:
                    time_up = True
                    break
                if _crash_at_step is not None and step == _crash_at_step:
                    raise _Interrupted(f"simulated crash at step {step}")
                batch = batches[batch_pos]
                width = int(train_lengths[batch].max())
                # noise for the whole global batch, then this rank's rows: any world size sees the same
                eps = torch.randn(len(batch), config.latent_dim, device=dev, generator=noise)
                drop = (torch.rand(len(batch), width + 1, device=dev, generator=noise) < config.word_dropout
                        if config.word_dropout > 0 else None)
                mine = ranks.rows()
                idx = train_idx_t[batch[mine]].to(dev)
                n = len(idx)
                beta = kl_weight(step, steps_per_epoch, config)
                for group in opt.param_groups:
                    group["lr"] = config.lr * lr_factor(step, total_steps, config)
                with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_amp):
                    # scaled so that DDP's average of the ranks' gradients is the global batch's mean
                    terms = objective(tokens[idx, :width], lengths[idx], beta, eps=eps[mine],
                                      drop=drop[mine] if drop is not None else None,
                                      scale=n * ranks.world / len(batch), cond=conds[idx] if conds is not None else None)
                opt.zero_grad(set_to_none=True)
                terms["loss"].backward()
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
                opt.step()
                stats = torch.stack([terms["loss"].detach() * len(batch) / ranks.world, terms["recon"].detach() * n,
                                     terms["kl"].detach() * n, torch.tensor(float(n), device=dev)]).double()
                if ranks.world > 1:
                    dist.all_reduce(stats)
                loss, recon, kl, count = stats.tolist()  # one host sync per step, for the log and the bar
                sums["loss"] += loss
                sums["recon"] += recon
                sums["kl"] += kl
                sums["n"] += count
                step += 1
                batch_pos += 1
                bar.update(1)
                bar.set_postfix(loss=f"{sums['loss'] / sums['n']:.2f}", beta=f"{beta:.3f}", refresh=False)
                if (config.eval_every_steps and step % config.eval_every_steps == 0
                        and batch_pos < len(batches)):
                    close_period(epoch + batch_pos / len(batches))
                    checkpoint()
                elif step % config.checkpoint_every == 0:
                    checkpoint()
            bar.close()
            if time_up and sums["n"] == 0 and history:  # nothing trained since the last evaluation
                pass
            else:
                close_period(epoch + 1 if batch_pos >= len(batches) else epoch + batch_pos / len(batches))
            if not time_up:
                epoch += 1
                batch_pos = 0
            if time_up:
                stopped_early = True
                if progress:
                    print(f"stopping: the {config.max_minutes:g}-minute budget is spent (epoch {epoch} ended early)")
            elif config.early_stopping_patience and bad_epochs >= config.early_stopping_patience:
                stopped_early = True
                if progress:
                    print(f"early stopping: no better validation loss for {bad_epochs} epochs")
            checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        raise

    if config.keep_best:  # the best epoch's weights: in memory, or on disk when this run was resumed
        if best_state is None and out is not None and (out / "model.safetensors").exists():
            from molvae.io import load_weights

            best_state = load_weights(out / "model.safetensors")
        if best_state is not None:
            net.load_state_dict({k: v.to(dev) for k, v in best_state.items()})
    if writer is not None and history:
        plot_training_curves(writer / "train_log.csv", writer / "training_curves.png")
    likelihood = ood = None
    if ranks.main and config.eval_iwae_k > 0:
        vi = val_idx_t[: config.n_val_likelihood].to(dev)
        likelihood, ood = heldout_likelihood(net, config, tokens[vi], lengths[vi],
                                             conds[vi] if conds is not None else None, progress)
        if writer is not None:
            import json

            (writer / "likelihood.json").write_text(json.dumps(likelihood, indent=2) + "\n")
            ood.save(writer / "ood.json")
        if progress:
            print(f"held-out likelihood ({likelihood['n']} molecules): ELBO {likelihood['elbo']:.3f}, "
                  f"IWAE (k={likelihood['k']}) {likelihood['iwae']:.3f} nats per molecule; "
                  f"OOD threshold {ood.threshold:.3f} ({ood.quantile:g} quantile)")
    guide = None
    if ranks.main and conds is not None and config.guide_epochs > 0:
        from molvae.guide import GUIDE_FILE, save_guide

        ti = train_idx_t.to(dev)
        guide = fit_guide(net, vocab, config, spec, (tokens[ti], lengths[ti], conds[ti]), progress)
        if writer is not None:
            save_guide(guide, writer / GUIDE_FILE)
        if progress:
            errors = ", ".join(f"{name} {err * sd:.3f}" for name, err, sd in
                               zip(spec.names, guide.summary.get("val_mae_final", []), spec.std) if np.isfinite(err))
            print(f"property guide ({config.guide_epochs} epochs): held-out error of its prediction once a "
                  f"molecule is complete: {errors}")
    if ranks.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    net.eval()
    return TrainResult(net, vocab, config, history, train_smiles, val_smiles, out, spec, ood, likelihood, guide)


def fit_guide(net: VAE, vocab: Vocab, config: ModelConfig, spec: Any,
              data: tuple[torch.Tensor, torch.Tensor, torch.Tensor], progress: bool = False) -> Any:
    """A :class:`molvae.guide.PropertyGuide` for a trained conditional model, on ``data`` (token ids,
    lengths, standardized conditions of the training molecules) and ``config.guide_samples`` of the
    model's own samples (labelled with RDKit: none for a model conditioned on data columns alone)."""
    from molvae.guide import join_padded, model_samples, train_guide

    net.eval()
    if config.guide_samples > 0 and "rdkit" in spec.sources:
        data = join_padded(data, model_samples(net, vocab, spec, data[2], config.guide_samples,
                                               max_len=config.max_len, stereo=config.stereo, seed=config.seed,
                                               progress=progress), pad_id=vocab.pad_id)
    return train_guide(*data, vocab_size=len(vocab), bos_id=vocab.bos_id, eos_id=vocab.eos_id,
                       pad_id=vocab.pad_id, epochs=config.guide_epochs, hidden=config.guide_hidden,
                       batch_size=config.batch_size, seed=config.seed, progress=progress)


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
    from molvae.generate import decode_latents, prior_latents

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

    latents = prior_latents(config.n_prior_samples, config.latent_dim, seed, 512)
    if net.prior is not None:
        latents = iter([net.prior_sample(config.n_prior_samples, torch.Generator().manual_seed(seed))])
    if cond is not None:
        rows = torch.randint(len(cond), (config.n_prior_samples,), generator=torch.Generator().manual_seed(seed))
        def at_conditions(i: int, z: torch.Tensor) -> torch.Tensor:  # a conditional prior draws z from p(z|c)
            c = cond[rows[i * 512:i * 512 + len(z)].to(device)]
            return net.with_conditions(net.shift_to_prior(z.to(device), c), c)

        latents = (at_conditions(i, z) for i, z in enumerate(latents))
    smiles, _ = decode_latents(net, vocab, latents,
                               max_len=config.max_len, device=device, temperature=1.0, seed=seed,
                               stereo=config.stereo, n_workers=0)
    valid = [s for s in smiles if s]
    net.train()
    return {"val_loss": totals["loss"] / n, "val_recon": totals["recon"] / n, "val_kl": totals["kl"] / n,
            "val_elbo": -(totals["recon"] + totals["kl"]) / n,
            "val_token_acc": correct / max(total, 1), "val_exact": exact / max(m, 1), "active_units": active,
            "sample_validity": len(valid) / max(len(smiles), 1),
            "sample_uniqueness": len(set(valid)) / max(len(valid), 1)}


def write_log(history: list[dict[str, float]], path: Path) -> None:
    """Write the per-epoch log as CSV (columns :data:`LOG_COLUMNS`)."""
    from molvae.io import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=LOG_COLUMNS, extrasaction="ignore")
            w.writeheader()
            w.writerows(history)

    atomic_write(path, write)


def plot_training_curves(log_csv: Path, png: Path) -> Path:
    """Training curves PNG (delegates to :mod:`molvae.report`)."""
    from molvae.report import plot_training_curves as plot

    return plot(log_csv, png)
