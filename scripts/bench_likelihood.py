"""Standard-normal prior vs VampPrior on the same data and budget (held-out ELBO and IWAE bound, sample
metrics), and the OOD score's AUROC for held-out MOSES vs ZINC-250k molecules outside MOSES's window.

    python scripts/bench_likelihood.py [--epochs 8] [--k 100] [--runs /tmp/molvae_bench] [--retrain]

Both models: ``small`` preset on ``data/moses_sample.smi`` (15,000 MOSES training molecules), same
seed, epochs and schedule; only ``prior`` differs. Held-out molecules: the run's own ``val.smi``
(5%, never trained on). Likelihoods are in nats per molecule (of the canonical SELFIES sequence).
OOD: 500 molecules of the MOSES test split against 500 random ZINC-250k molecules with MW > 350
(MOSES keeps 250 <= MW <= 350), plus a control of 300 ZINC molecules inside the window; ZINC
molecules neutralized and stripped of stereo like MOSES's (and, separately, as they are: then many
hold tokens the model never saw and are flagged for that alone). Trained models are kept in
``--runs`` and reused unless ``--retrain``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

from benchenv import machine

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


SAMPLE = ROOT / "data" / "moses_sample.smi"
TRAIN_OPTIONS = dict(warmup_steps=50, lr=2e-3, kl_warmup_epochs=2.0, early_stopping_patience=0, keep_best=False,
                     eval_iwae_k=32, n_val_likelihood=750)
"""The benchmarks' shared schedule (on top of the preset and the config defaults)."""


def train_or_load(name: str, runs: Path, epochs: int, retrain: bool, device: str = "cpu", data: Path = SAMPLE,
                  preset: str = "small", **options):
    """The model trained as ``runs/name`` (reused when present unless ``retrain``)."""
    from molvae import MolVAE

    out = runs / name
    if (out / "model.safetensors").exists() and not retrain:
        print(f"{name}: reusing {out}")
        return MolVAE.load(out, device=device)
    t = time.perf_counter()
    model = MolVAE.fit(data, out=out, preset=preset, epochs=epochs, device=device, progress=False,
                       **{**TRAIN_OPTIONS, **options})
    print(f"{name}: trained {epochs} epochs in {time.perf_counter() - t:.0f} s")
    return model


def describe(model) -> str:
    """The config values a result depends on, read from the model (not assumed)."""
    c = model.config
    cond = f", conditions {','.join(c.condition_names)}" if c.condition_names else ""
    return (f"latent {c.latent_dim}, enc {c.enc_hidden}x{c.enc_layers}, dec {c.dec_hidden}x{c.dec_layers}, "
            f"{c.epochs} epochs, batch {c.batch_size}, lr {c.lr:g}, beta {c.beta:g} ({c.kl_schedule}, warm-up "
            f"{c.kl_warmup_epochs:g} epochs), free bits {c.free_bits:g}, word dropout {c.word_dropout:g}, "
            f"prior {c.prior}{cond}")


def read_moses_test(n: int, seed: int) -> list[str]:
    with gzip.open(SHARED / "moses_test.csv.gz", "rt") as fh:
        rows = [line.split(",")[0].strip() for line in fh][1:]
    rng = np.random.default_rng(seed)
    return [rows[i] for i in rng.choice(len(rows), n, replace=False)]


def standardize_like_moses(smiles: str) -> str | None:
    """Neutral, stereo-free canonical SMILES: MOSES molecules carry no charges or stereo, ZINC-250k's do,
    and tokens the model never saw would make the OOD test trivially easy rather than about the window."""
    from rdkit import Chem
    from rdkit.Chem.MolStandardize import rdMolStandardize

    from molvae.chem import quiet_rdkit

    with quiet_rdkit():
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            return None
        mol = rdMolStandardize.Uncharger().uncharge(mol)
        Chem.RemoveStereochemistry(mol)
        return Chem.MolToSmiles(mol)


def read_zinc_by_mw(n_out: int, n_in: int, seed: int, standardize: bool) -> tuple[list[str], list[str]]:
    """ZINC-250k molecules with MW > 350 (outside MOSES's window) and with 250 <= MW <= 350 (inside)."""
    from molvae.chem import compute_properties

    with gzip.open(SHARED / "zinc250k.smi.gz", "rt") as fh:
        rows = [line.split()[0] for line in fh if line.strip()]
    rng = np.random.default_rng(seed)
    pick = [rows[i] for i in rng.choice(len(rows), 6 * (n_out + n_in), replace=False)]
    if standardize:
        pick = [s for s in (standardize_like_moses(p) for p in pick) if s]
    mw = compute_properties(pick, ["mw"])[:, 0]
    outside = [s for s, w in zip(pick, mw) if w > 350][:n_out]
    inside = [s for s, w in zip(pick, mw) if 250 <= w <= 350][:n_in]
    return outside, inside


def bounds_of(model, smiles: list[str], k: int) -> tuple[dict[str, np.ndarray], int]:
    """IWAE bound and reconstruction error of the molecules the model can read; how many it cannot."""
    from molvae.errors import MolVAEError

    ok = []
    for s in smiles:
        try:
            model.encode([s])
            ok.append(s)
        except MolVAEError:
            pass
    df = model.likelihood(ok, k=k, seed=0)
    return {c: df[c].to_numpy() for c in ("iwae", "recon", "kl", "n_tokens")}, len(smiles) - len(ok)


def ood_eval(model, moses: list[str], zinc: dict[str, list[str]]) -> dict:
    from molvae.likelihood import auroc

    cal = model.ood
    result = {"threshold": cal.threshold, "quantile": cal.quantile, "k": cal.k}
    b_m, bad_m = bounds_of(model, moses, cal.k)
    s_m = cal.score(b_m)
    for label, mols in zinc.items():
        b_z, bad_z = bounds_of(model, mols, cal.k)
        s_z = cal.score(b_z)
        with_bad = np.concatenate([s_z, np.full(bad_z, np.inf)])
        result[label] = {
            "n": len(mols), "unreadable": bad_z,
            "auroc": auroc(np.concatenate([s_m, np.full(bad_m, np.inf)]), with_bad),
            "auroc_readable": auroc(s_m, s_z),
            "auroc_nll_only": auroc(-b_m["iwae"], -b_z["iwae"]),
            "auroc_recon_per_token_only": auroc(b_m["recon"] / b_m["n_tokens"], b_z["recon"] / b_z["n_tokens"]),
            "flagged": float(np.mean(with_bad > cal.threshold)),
        }
    result["moses_test"] = {"n": len(moses), "unreadable": bad_m,
                            "flagged": float(np.mean(np.concatenate([s_m, np.full(bad_m, np.inf)]) > cal.threshold))}
    return result


def step_seconds(repeats: int = 5, steps: int = 5) -> dict[str, float]:
    """Median seconds per training step (batch 256 of sample molecules, forward + backward + AdamW)
    of the ``small`` model under each prior, measured alternately in this one process."""
    import statistics

    import torch

    from molvae.data import prepare_molecules
    from molvae.model import PRESETS, VAE, ModelConfig
    from molvae.device import use_bf16
    from molvae.vocab import Vocab, tokenize

    data = prepare_molecules(ROOT / "data" / "moses_sample.smi", max_len=100)
    vocab = Vocab.from_selfies(data.selfies)
    tokens, lengths = tokenize(data.selfies[:256], vocab, 100)
    times: dict[str, list[float]] = {"normal": [], "vampprior": []}
    nets = {}
    for prior in times:
        torch.manual_seed(0)
        cfg = ModelConfig(**{**PRESETS["small"], "prior": prior})
        net = VAE(cfg, len(vocab))
        nets[prior] = (net, torch.optim.AdamW(net.parameters(), lr=1e-3), use_bf16(cfg.precision, torch.device("cpu")))
    for _ in range(repeats):
        for prior, (net, opt, amp) in nets.items():
            t = time.perf_counter()
            for _ in range(steps):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    loss = net.loss(tokens, lengths, 0.5)["loss"]
                opt.zero_grad()
                loss.backward()
                opt.step()
            times[prior].append((time.perf_counter() - t) / steps)
    return {prior: statistics.median(v) for prior, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--k", type=int, default=100, help="importance samples for the held-out IWAE bound")
    ap.add_argument("--n-heldout", type=int, default=300, help="held-out molecules for ELBO/IWAE")
    ap.add_argument("--n-samples", type=int, default=2000, help="prior samples for the MOSES-style metrics")
    ap.add_argument("--runs", default="/tmp/molvae_bench")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu | cuda (training, likelihoods, sampling)")
    ap.add_argument("--out", default="bench_likelihood.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"machine: {machine(args.device)}; device {args.device}")
    print(f"settings: small preset, data/moses_sample.smi, {args.epochs} epochs; held-out "
          f"{args.n_heldout} val molecules, IWAE k={args.k}; {args.n_samples} samples at T=1")
    runs = Path(args.runs)
    steps = step_seconds()
    print(f"training step (batch 256, small, median of 5x5, alternating): normal {steps['normal']:.3f} s, "
          f"VampPrior (K=100) {steps['vampprior']:.3f} s, ratio {steps['vampprior'] / steps['normal']:.2f}")
    models = {"normal": train_or_load("normal", runs, args.epochs, args.retrain, args.device),
              "vampprior": train_or_load("vampprior", runs, args.epochs, args.retrain, args.device, prior="vampprior")}
    for name, model in models.items():
        print(f"{name}: {describe(model)}")
    from molvae.metrics import evaluate

    ref = read_moses_test(5000, seed=1)
    results: dict = {}
    for name, model in models.items():
        val = (model.path / "val.smi").read_text().split()[: args.n_heldout]
        t = time.perf_counter()
        k1 = model.likelihood(val, k=1, seed=0)
        kk = model.likelihood(val, k=args.k, seed=0)
        secs = time.perf_counter() - t
        log = __import__("pandas").read_csv(model.path / "train_log.csv")
        df = model.sample(args.n_samples, seed=0, progress=False)
        metrics = evaluate(df["smiles"].tolist(), ref=ref, train=model.train_hashes, n_jobs=1, device="cpu",
                           progress=False)
        results[name] = {
            "elbo_k1": float(k1["iwae"].mean()), "elbo": float(kk["elbo"].mean()), "iwae": float(kk["iwae"].mean()),
            "recon_at_mean": float(kk["recon"].mean()), "likelihood_seconds": secs,
            "step_seconds": steps[name], "val_exact": float(log["val_exact"].iloc[-1]),
            "active_units": int(log["active_units"].iloc[-1]),
            "metrics": {m: metrics.get(m) for m in ("validity", "unique@1000", "novelty", "IntDiv", "Filters",
                                                     "FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test")},
        }
        print(f"{name}: {json.dumps(results[name])}")
    raw_out, raw_in = read_zinc_by_mw(500, 300, seed=2, standardize=False)
    std_out, std_in = read_zinc_by_mw(500, 300, seed=2, standardize=True)
    zinc = {"mw>350": std_out, "250<=mw<=350": std_in, "mw>350 as is": raw_out, "250<=mw<=350 as is": raw_in}
    moses = read_moses_test(500, seed=3)
    for name, model in models.items():
        t = time.perf_counter()
        results[name]["ood"] = ood_eval(model, moses, zinc)
        results[name]["ood"]["seconds"] = time.perf_counter() - t
        print(f"{name} OOD: {json.dumps(results[name]['ood'])}")
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")

    print("\n| | normal prior | VampPrior | ratio (Vamp/normal) |\n|---|---|---|---|")
    n, v = results["normal"], results["vampprior"]
    rows = [("held-out ELBO (nats/mol)", n["elbo"], v["elbo"]), (f"held-out IWAE k={args.k}", n["iwae"], v["iwae"]),
            ("-log p(x|mu) (nats/mol)", n["recon_at_mean"], v["recon_at_mean"]),
            ("training step (s, median, same process)", n["step_seconds"], v["step_seconds"])]
    rows += [(m, n["metrics"][m], v["metrics"][m]) for m in n["metrics"]]
    for key in ("mw>350", "250<=mw<=350", "mw>350 as is"):
        rows += [(f"OOD AUROC, ZINC {key} vs MOSES test", n["ood"][key]["auroc"], v["ood"][key]["auroc"])]
    for label, a, b in rows:
        ratio = f"{b / a:.3f}" if isinstance(a, float) and isinstance(b, float) and a else ""
        fa = f"{a:.4g}" if isinstance(a, float) else str(a)
        fb = f"{b:.4g}" if isinstance(b, float) else str(b)
        print(f"| {label} | {fa} | {fb} | {ratio} |")


if __name__ == "__main__":
    main()
