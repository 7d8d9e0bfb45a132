"""Sampling throughput: end to end, device decoding alone, and the CPU post-processing limit, in one run.

    python scripts/bench_sample.py MODEL_DIR [-n 20000] [--repeats 3] [--device auto] [--batch-size 2048]

- end to end: ``model.sample(n)`` (decoding overlapped with post-processing in a worker pool): the
  default, ``n`` accepted molecules (SELFIES-repaired strings drawn again), and the raw stream
  (``keep_repaired=True``, every decoded string kept, as before repairs were rejected), alternating;
- decoding alone: the network's autoregressive decoding of the same latent points, nothing else;
- post-processing limit: SELFIES -> SMILES -> RDKit sanitize + canonicalize of the same molecules on all
  cores (the work sampling cannot avoid).
Reported as molecules per second (medians over repeats: accepted ones for the default, valid ones
otherwise), the ratio accepted / raw end to end (target >= 0.8) and end-to-end / limit.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from benchenv import machine

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("-n", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()

    import torch

    from molvae import MolVAE
    from molvae.generate import postprocess, prior_latents

    if args.threads:
        torch.set_num_threads(args.threads)
    model = MolVAE.load(args.model, device=args.device)
    cores = os.cpu_count() or 1
    print(f"machine: {machine(str(model.device))}; device {model.device}")
    print(f"model: {args.model} ({model!r}); n={args.n}, batch {args.batch_size}, {args.repeats} repeats")

    def sync() -> None:
        if model.device.type == "cuda":
            torch.cuda.synchronize()

    first_allowed = torch.tensor(model.vocab.starts_molecule(), dtype=torch.bool, device=model.device)
    results: dict[str, list[float]] = {"end to end, accepted": [], "end to end, raw stream": [],
                                       "decoding alone": [], "post-processing limit": []}
    for r in range(args.repeats):
        t = time.perf_counter()
        df = model.sample(args.n, seed=r, batch_size=args.batch_size, progress=False)
        e2e = int((df["valid"] & ~df["repaired"]).sum()) / (time.perf_counter() - t)
        rate = df.attrs["acceptance_rate"]
        t = time.perf_counter()
        df = model.sample(args.n, seed=r, batch_size=args.batch_size, progress=False, keep_repaired=True)
        raw = df["valid"].sum() / (time.perf_counter() - t)

        sync()
        t = time.perf_counter()
        selfies = []
        gen = torch.Generator(device=model.device).manual_seed(r)
        with torch.no_grad():
            for z in prior_latents(args.n, model.latent_dim, r, args.batch_size):
                ids = model.net.generate(z.to(model.device), max_len=model.config.max_len, temperature=1.0,
                                         generator=gen, first_allowed=first_allowed)
                selfies.extend(model.vocab.decode(row) for row in ids.cpu().tolist())
        sync()
        dec = len(selfies) / (time.perf_counter() - t)

        step = math.ceil(len(selfies) / (4 * cores))
        with ProcessPoolExecutor(cores, mp_context=get_context("forkserver")) as pool:
            list(pool.map(postprocess, [selfies[:10]] * cores))  # start the workers (RDKit import) untimed
            t = time.perf_counter()
            smiles = [s for part in pool.map(postprocess, [selfies[i:i + step] for i in range(0, len(selfies), step)])
                      for s in part[0]]
            limit = sum(s is not None for s in smiles) / (time.perf_counter() - t)
        for key, value in zip(results, (e2e, raw, dec, limit)):
            results[key].append(value)
        print(f"  repeat {r + 1}: end to end {e2e:.0f} accepted/s (acceptance {rate:.3f}), raw stream {raw:.0f}/s, "
              f"decoding alone {dec:.0f}/s, post-processing limit {limit:.0f}/s")
    med = {k: statistics.median(v) for k, v in results.items()}
    print("\n| stage | molecules/s (median) |\n|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v:.0f} |")
    print(f"| accepted / raw stream, end to end | {med['end to end, accepted'] / med['end to end, raw stream']:.2f} |")
    print(f"| end to end (accepted) / post-processing limit | "
          f"{med['end to end, accepted'] / med['post-processing limit']:.2f} |")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
