"""Training throughput (molecules/s) of molvae at two model sizes, beside the MOSES VAE, in one run.

    python scripts/bench_train.py [--moses-python /path/to/venv/bin/python] [--repeats 3] [--device auto]

Data: ZINC-250k rows 100,001-104,000 (../shared/data/zinc250k.smi.gz). Each repeat trains one epoch of
each model from scratch (optimizer step included, data preparation excluded) and the medians are
compared as ratios. The MOSES VAE (molsets 0.3.1 `moses.vae`, default config: GRU encoder 1x256,
decoder 3x512, latent 128, batch 512) runs in the Python given by --moses-python, where molsets is
installed with `pip install --no-deps molsets==0.3.1` (plus small shims for today's RDKit/pandas).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from benchenv import machine

ROOT = Path(__file__).resolve().parents[1]
ZINC = ROOT.parent / "shared" / "data" / "zinc250k.smi.gz"

PEER = textwrap.dedent('''
    import sys, time, types, json, warnings
    import numpy as np, pandas as pd, torch
    warnings.simplefilter("ignore")
    six = types.ModuleType("rdkit.six"); six.iteritems = lambda d: iter(d.items()); sys.modules["rdkit.six"] = six
    pd.DataFrame.append = lambda self, o, sort=False, ignore_index=False: pd.concat([self, o], sort=sort, ignore_index=ignore_index)
    torch.set_num_threads(int(sys.argv[2])); torch.manual_seed(0)
    from moses.vae import VAE, VAETrainer
    from moses.vae.config import get_parser
    smiles = [l.strip() for l in open(sys.argv[1]) if l.strip()]
    config = get_parser().parse_args([]); config.n_workers = 1; config.device = "cpu"
    trainer = VAETrainer(config)
    vocab = trainer.get_vocabulary(smiles)
    model = VAE(vocab, config).to("cpu")
    loader = trainer.get_dataloader(model, smiles, shuffle=True)
    optimizer = torch.optim.Adam(trainer.get_optim_params(model), lr=config.lr_start)
    t = time.perf_counter()
    from tqdm import tqdm
    trainer._train_epoch(model, 0, tqdm(loader, disable=True), kl_weight=0.0, optimizer=optimizer)
    print(json.dumps({"seconds": time.perf_counter() - t, "n": len(smiles), "batch": config.n_batch,
                      "params": sum(p.numel() for p in model.parameters())}))
''')


def load_molecules(n: int = 4000) -> list[str]:
    with gzip.open(ZINC, "rt") as fh:
        lines = [line.strip() for line in fh]
    return lines[100_000:100_000 + n]


def _packed_final_states(gru, x, lengths):
    """The encoder as it was before (pack_padded_sequence): kept here to measure the change side by side."""
    from torch.nn.utils.rnn import pack_padded_sequence

    packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
    return gru(packed)[1]


def time_molvae_epoch(smiles: list[str], overrides: dict, device: str) -> dict:
    """One training epoch of molvae (same loop as molvae.train: bucketed batches, AdamW, clipping).

    Private keys of ``overrides``: ``_packed`` (the encoder over packed sequences, as before),
    ``_threads`` (torch threads for this measurement)."""
    import torch

    import molvae.model

    overrides = dict(overrides)
    packed, threads = overrides.pop("_packed", False), overrides.pop("_threads", None)
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    original = molvae.model.bidirectional_final_states
    if packed:
        molvae.model.bidirectional_final_states = _packed_final_states
    try:
        return _time_epoch(smiles, overrides, device)
    finally:
        molvae.model.bidirectional_final_states = original
        torch.set_num_threads(previous)


def _time_epoch(smiles: list[str], overrides: dict, device: str) -> dict:
    import torch

    from molvae.data import prepare_molecules
    from molvae.device import resolve_device, use_bf16
    from molvae.model import VAE, build_config
    from molvae.schedules import kl_weight
    from molvae.train import bucketed_batches
    from molvae.vocab import Vocab, tokenize

    dev = resolve_device(device)
    config = build_config(None, None, overrides)
    data = prepare_molecules(smiles, max_len=config.max_len)
    vocab = Vocab.from_selfies(data.selfies)
    tokens, lengths = tokenize(data.selfies, vocab, config.max_len)
    tokens, lengths = tokens.to(dev), lengths.to(dev)
    torch.manual_seed(0)
    net = VAE(config, len(vocab)).to(dev).train()
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr)
    batches = bucketed_batches(lengths.cpu(), config.batch_size, 0, 0)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for step, idx in enumerate(batches):
        idx = idx.to(dev)
        width = int(lengths[idx].max())
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_bf16(config.precision, dev)):
            loss = net.loss(tokens[idx, :width], lengths[idx], kl_weight(step, len(batches), config))["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
        opt.step()
    loss.item()
    return {"seconds": time.perf_counter() - t, "n": len(data.smiles), "batch": config.batch_size,
            "params": sum(p.numel() for p in net.parameters())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--moses-python", help="python of a venv with molsets 0.3.1 installed (peer); omit to skip")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=4000, help="molecules per epoch (ZINC-250k rows from 100,001)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    smiles = load_molecules(args.n)
    print(f"machine: {machine(args.device)}; device {args.device}")
    print(f"data: ZINC-250k rows 100,001-{100_000 + len(smiles):,} ({len(smiles)} molecules), {args.repeats} repeats, one epoch each")
    small = {"embed_dim": 48, "enc_hidden": 128, "latent_dim": 64, "dec_hidden": 256, "dec_layers": 2}
    configs = {
        "molvae default (MOSES size: enc 256 bi, dec 3x512, z 128), batch 512": {"batch_size": 512},
        "molvae default, batch 512, fp32 (no bf16 autocast)": {"batch_size": 512, "precision": "fp32"},
        "molvae default, batch 256": {},
        "molvae default, batch 256, packed encoder (before)": {"_packed": True},
        "molvae default, batch 256, fp32, packed encoder (before)": {"_packed": True, "precision": "fp32"},
        "molvae small (enc 128 bi, dec 2x256, z 64), batch 256": small,
        "molvae small, batch 256, packed encoder (before)": {**small, "_packed": True},
        "molvae large (campaign size: enc 256 bi, dec 3x384, z 128), batch 256": {
            "embed_dim": 64, "enc_hidden": 256, "latent_dim": 128, "dec_hidden": 384, "dec_layers": 3},
    }
    if args.threads == 1 and (os.cpu_count() or 1) > 1:
        configs["molvae default, batch 256, 2 threads"] = {"_threads": 2}
    results: dict[str, list[float]] = {name: [] for name in configs}
    peer_name = "MOSES VAE (molsets 0.3.1, default config), batch 512"
    if args.moses_python:
        results[peer_name] = []
    with tempfile.TemporaryDirectory() as tmp:
        smi = Path(tmp) / "mols.smi"
        smi.write_text("\n".join(smiles) + "\n")
        peer = Path(tmp) / "peer.py"
        peer.write_text(PEER)
        for r in range(args.repeats):
            if args.moses_python:
                out = subprocess.run([args.moses_python, str(peer), str(smi), str(args.threads)],
                                     capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"MOSES VAE peer failed:\n{out.stderr[-3000:]}")
                res = json.loads(out.stdout.strip().splitlines()[-1])
                results[peer_name].append(res["n"] / res["seconds"])
                print(f"  repeat {r + 1}: {peer_name}: {results[peer_name][-1]:.1f} mol/s ({res['params']:,} params), "
                      f"load average {os.getloadavg()[0]:.2f}", flush=True)
            for name, overrides in configs.items():
                res = time_molvae_epoch(smiles, overrides, args.device)
                results[name].append(res["n"] / res["seconds"])
                print(f"  repeat {r + 1}: {name}: {results[name][-1]:.1f} mol/s ({res['params']:,} params), "
                      f"load average {os.getloadavg()[0]:.2f}", flush=True)
    print("\n| model | molecules/s (median) | vs MOSES VAE |\n|---|---|---|")
    base = statistics.median(results[peer_name]) if args.moses_python else None
    for name, values in results.items():
        med = statistics.median(values)
        ratio = f"{med / base:.2f}x" if base else "n/a"
        print(f"| {name} | {med:.1f} | {ratio} |")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
