"""Conditional generation: training with property conditions, sampling at requested values, and
clear errors or warnings for conditions a model cannot honour."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from molvae import MolVAE
from molvae.chem import compute_properties
from molvae.cli import main
from molvae.cli._args import parse_condition
from molvae.conditions import ConditionWarning
from molvae.errors import ConfigError, DataError

from conftest import read_sample


@pytest.fixture(scope="module")
def cvae(tmp_path_factory):
    """A tiny VAE conditioned on logP and QED (about 15 s on one CPU thread)."""
    out = tmp_path_factory.mktemp("cvae")
    return MolVAE.fit(read_sample(600), out=out, preset="tiny", epochs=8, lr=3e-3, seed=0, progress=False,
                      conditions=["logp", "qed"])


def _logp(df: pd.DataFrame) -> np.ndarray:
    return compute_properties(df.loc[df["valid"], "smiles"].tolist(), ["logp"])[:, 0]


def test_samples_follow_the_requested_logp(cvae):
    spec = cvae.conditions
    assert spec.names == ["logp", "qed"] and spec.sources == ["rdkit", "rdkit"]
    lo, hi = spec.mean[0] - 1.5 * spec.std[0], spec.mean[0] + 1.5 * spec.std[0]
    low = cvae.sample(200, seed=0, condition={"logp": lo}, progress=False)
    high = cvae.sample(200, seed=0, condition={"logp": hi}, progress=False)
    assert low["valid"].mean() > 0.9 and high["valid"].mean() > 0.9
    assert _logp(high).mean() > _logp(low).mean() + 0.4, (_logp(low).mean(), _logp(high).mean())
    np.testing.assert_allclose(high["condition_logp"], hi, rtol=1e-5)
    # qed was not requested: drawn from its training distribution given logp, so it varies
    assert high["condition_qed"].std() > 0.01


def test_guidance_interpolates_between_the_mean_and_the_requested_condition(cvae):
    """w = 0 decodes at the mean condition, w = 1 is plain conditional decoding: both exactly."""
    import torch

    z = torch.randn(64, cvae.latent_dim, generator=torch.Generator().manual_seed(0))
    c = torch.full((64, 2), 1.5)
    first = torch.tensor(cvae.vocab.starts_molecule(), dtype=torch.bool)
    net, L = cvae.net, cvae.config.max_len

    def greedy(zc, w=1.0):
        return net.generate(zc, max_len=L, first_allowed=first, guidance=w)

    at_c, at_mean = greedy(torch.cat([z, c], 1)), greedy(torch.cat([z, torch.zeros_like(c)], 1))
    assert not torch.equal(at_c, at_mean)  # the condition matters, so the identities below can fail
    assert torch.equal(greedy(torch.cat([z, c], 1), w=0.0), at_mean)
    assert torch.equal(greedy(torch.cat([z, c], 1), w=1.0), at_c)
    strong = greedy(torch.cat([z, c], 1), w=3.0)
    assert not torch.equal(strong, at_c)
    df = cvae.sample(50, seed=0, condition={"logp": 2.0}, guidance=2.0, progress=False)
    assert df["valid"].all()


def test_steering_moves_samples_toward_the_requested_logp(cvae):
    """The property guide trained with the model (molvae.guide) pulls samples toward the request."""
    assert cvae.guide is not None and (cvae.path / "guide.safetensors").exists()
    spec = cvae.conditions
    lo, hi = float(spec.mean[0] - 1.5 * spec.std[0]), float(spec.mean[0] + 1.5 * spec.std[0])
    plain = _logp(cvae.sample(200, seed=0, condition={"logp": hi}, steer=0, progress=False))
    steered = _logp(cvae.sample(200, seed=0, condition={"logp": hi}, progress=False))  # the default strength
    steered_low = _logp(cvae.sample(200, seed=0, condition={"logp": lo}, progress=False))
    assert abs(steered.mean() - hi) < abs(plain.mean() - hi) - 0.3, (plain.mean(), steered.mean(), hi)
    assert steered.mean() > steered_low.mean() + 1.0, (steered_low.mean(), steered.mean())


def test_steering_errors_and_a_model_without_a_guide(cvae, tiny_model, tmp_path, capsys):
    with pytest.raises(ConfigError, match="steer needs a condition"):
        cvae.sample(5, steer=2.0, progress=False)
    with pytest.raises(ConfigError, match="steer must be >= 0"):
        cvae.sample(5, condition={"logp": 2.0}, steer=-1.0, progress=False)
    with pytest.raises(ConfigError, match="trained without any"):
        tiny_model.fit_guide(read_sample(20), progress=False)
    copy = cvae.save(tmp_path / "no_guide")
    (copy / "guide.safetensors").unlink()
    bare = MolVAE.load(copy)
    assert bare.guide is None
    a = bare.sample(20, seed=1, condition={"logp": 2.0}, progress=False)  # plain conditional sampling
    b = cvae.sample(20, seed=1, condition={"logp": 2.0}, steer=0, progress=False)
    assert a["smiles"].tolist() == b["smiles"].tolist()
    with pytest.raises(ConfigError, match="no property guide"):
        bare.sample(5, condition={"logp": 2.0}, steer=4.0, progress=False)
    assert main(["sample", str(copy), "-n", "5", "--condition", "logp=2", "--steer", "4"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "molvae sample: error: this model has no property guide (guide.safetensors)")
    summary = bare.fit_guide(read_sample(300), epochs=2, samples=100, progress=False)
    assert summary["epochs"] == 2 and summary["n_train"] > 300  # the molecules and the model's samples
    assert bare.sample(20, seed=1, condition={"logp": 2.0}, steer=4.0, progress=False)["valid"].all()
    (copy / "guide.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(Exception, match="guide.safetensors: corrupt"):
        MolVAE.load(copy)


def test_condition_errors_and_warnings(cvae, tiny_model):
    with pytest.raises(ConfigError, match=r"unknown condition 'tpsa'; this model was trained on: logp, qed"):
        cvae.sample(5, condition={"tpsa": 50.0}, progress=False)
    with pytest.raises(ConfigError, match="finite"):
        cvae.sample(5, condition={"logp": float("nan")}, progress=False)
    with pytest.warns(ConditionWarning, match=r"logp=12 is outside the training range"):
        cvae.sample(5, condition={"logp": 12.0}, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a value inside the range is silent
        cvae.sample(5, condition={"logp": float(cvae.conditions.mean[0])}, progress=False)
    with pytest.raises(ConfigError, match="trained without conditions"):
        tiny_model.sample(5, condition={"logp": 2.0}, progress=False)
    with pytest.raises(ConfigError, match="unknown property 'lgp'.*logp, qed"):
        MolVAE.fit(read_sample(20), preset="tiny", epochs=1, conditions=["lgp"], progress=False)
    with pytest.raises(ConfigError, match="expects NAME=VALUE"):
        parse_condition("logp:3")


def test_conditional_model_round_trip_and_encode(cvae, tmp_path):
    loaded = MolVAE.load(cvae.save(tmp_path / "copy"))
    assert loaded.condition_names == ["logp", "qed"] and loaded.guide is not None  # samples below are steered
    a = cvae.sample(30, seed=4, condition={"logp": 3.0}, progress=False)
    b = loaded.sample(30, seed=4, condition={"logp": 3.0}, progress=False)
    assert a["smiles"].tolist() == b["smiles"].tolist()
    smiles = read_sample(5)
    np.testing.assert_array_equal(loaded.encode(smiles), cvae.encode(smiles))
    # the encoder sees the molecule's own properties: other values give another posterior
    with pytest.warns(ConditionWarning, match="logp=5 is outside"):
        other = cvae.encode(smiles, condition={"logp": 5.0})
    assert not np.allclose(cvae.encode(smiles), other)
    assert cvae.reconstruct(smiles)["smiles"].notna().all()
    (tmp_path / "copy" / "conditions.json").unlink()
    with pytest.raises(Exception, match="conditions.json"):
        MolVAE.load(tmp_path / "copy")


def test_sample_cli_with_conditions(cvae, capsys):
    assert main(["sample", str(cvae.path), "-n", "10", "--condition", "logp=3.0,qed=0.8", "--quiet"]) == 0
    out = capsys.readouterr()
    assert "warning" not in out.err and "condition_logp" in out.out
    assert main(["sample", str(cvae.path), "-n", "10", "--condition", "logp=3.0,qed=0.8", "--guidance", "0",
                 "--quiet"]) == 0
    assert capsys.readouterr().out != out.out  # w = 0 ignores the request: other molecules
    assert main(["sample", str(cvae.path), "-n", "5", "--condition", "logp=15", "--quiet"]) == 0
    assert "molvae sample: warning: condition logp=15 is outside the training range" in capsys.readouterr().err
    assert main(["sample", str(cvae.path), "-n", "5", "--condition", "mw=300"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "molvae sample: error: unknown condition 'mw'; this model was trained on: logp, qed"


def test_condition_columns_from_a_csv(tmp_path, capsys):
    smiles = read_sample(150)
    values = [f"{0.01 * i:.2f}" for i in range(150)]
    values[7] = "n/a"
    data = tmp_path / "assay.csv"
    pd.DataFrame({"smiles": smiles, "pic50": values}).to_csv(data, index=False)
    run = tmp_path / "run"
    assert main(["train", str(data), "--out", str(run), "--preset", "tiny", "--epochs", "1",
                 "--condition-columns", "pic50", "--quiet"]) == 0
    rejects = pd.read_csv(run / "rejects.csv")
    assert rejects["line"].tolist() == [9]  # header is line 1
    assert "pic50" in rejects["reason"].iloc[0] and "not a finite number" in rejects["reason"].iloc[0]
    spec = json.loads((run / "conditions.json").read_text())
    assert spec["names"] == ["pic50"] and spec["sources"] == ["column"]
    assert 0.0 <= spec["min"][0] < spec["max"][0] <= 1.49
    model = MolVAE.load(run)
    # its guide learns from the training molecules only: the model's own samples have no pic50 value
    assert model.guide is not None and model.guide.summary["n_train"] + model.guide.summary["n_val"] < 150
    assert model.sample(10, condition={"pic50": 1.0}, progress=False)["valid"].mean() > 0.5
    with pytest.warns(ConditionWarning, match="no values given for condition pic50"):
        model.encode(smiles[:3])
    capsys.readouterr()
    assert main(["train", str(data), "--out", str(tmp_path / "r2"), "--preset", "tiny", "--epochs", "1",
                 "--condition-columns", "ic50", "--quiet"]) == 1
    assert "no condition column 'ic50'" in capsys.readouterr().err
    with pytest.raises(DataError, match="CSV/TSV file or a DataFrame"):
        MolVAE.fit(smiles, preset="tiny", epochs=1, condition_columns=["pic50"], progress=False)


# ---------------------------------------------------------------------------------------------- conditional prior
def _cond_prior_net(latent_dim: int = 3, seed: int = 0):
    """An untrained conditional-prior net whose p(z|c) is set far from N(0, I) and depends on c."""
    import torch

    from molvae.model import PRESETS, VAE, ModelConfig

    torch.manual_seed(seed)
    cfg = ModelConfig(**{**PRESETS["tiny"], "latent_dim": latent_dim, "conditions": ["logp", "qed"],
                         "prior": "conditional"})
    net = VAE(cfg, 12).eval()
    with torch.no_grad():  # the output layer starts at zero (p(z|c) = N(0, I)): make it depend on c
        net.cond_prior.net[-1].weight[:latent_dim].normal_(0.0, 0.5)  # mean
        net.cond_prior.net[-1].weight[latent_dim:].normal_(0.0, 0.15)  # log-variance
    return net


def test_conditional_prior_kl_matches_monte_carlo_estimate():
    """The loss's closed-form KL(q(z|x,c) || p(z|c)) is E_q[log q - log p(z|c)] estimated with scipy
    densities at numpy samples from q, and differs from the KL to N(0, I)."""
    import torch
    from scipy.stats import multivariate_normal

    net = _cond_prior_net()
    tokens, lengths = torch.tensor([[5, 7, 3, 9, 4]]), torch.tensor([5])
    cond = torch.tensor([[1.2, -0.7]])
    with torch.no_grad():
        kl = float(net.loss(tokens, lengths, beta=1.0, cond=cond)["kl"])
        mu, logvar = (t[0].double().numpy() for t in net.encode(tokens, lengths, cond))
        mu_p, logvar_p = (t[0].double().numpy() for t in net.conditional_prior(cond, 1))
    rng = np.random.default_rng(0)
    z = mu + rng.standard_normal((200_000, 3)) * np.exp(0.5 * logvar)
    terms = (multivariate_normal(mu, np.diag(np.exp(logvar))).logpdf(z)
             - multivariate_normal(mu_p, np.diag(np.exp(logvar_p))).logpdf(z))
    assert kl == pytest.approx(terms.mean(), abs=4 * terms.std() / np.sqrt(len(terms)) + 1e-4)
    kl_normal = 0.5 * (mu**2 + np.exp(logvar) - 1 - logvar).sum()
    assert abs(kl - kl_normal) > 1.0, (kl, kl_normal)  # the prior really is another one
    # free bits still apply per dimension: a floor above every dimension's KL penalizes latent_dim * floor
    net.config.free_bits = 50.0
    with torch.no_grad():
        terms = net.loss(tokens, lengths, beta=1.0, cond=cond)
    assert float(terms["loss"] - terms["recon"]) == pytest.approx(150.0)
    assert float(terms["kl"]) == pytest.approx(kl)


def test_conditional_prior_samples_follow_mu_and_sigma_of_c():
    import torch

    from molvae.priors import normal_log_prob

    net = _cond_prior_net(latent_dim=4)
    a, b = torch.tensor([[-1.0, 0.0]]), torch.tensor([[1.5, 0.5]])
    means = {}
    with torch.no_grad():
        for name, c, other in (("a", a, b), ("b", b, a)):
            z = net.prior_sample(50_000, torch.Generator().manual_seed(1), cond=c.repeat(50_000, 1))
            mu, logvar = (t[0].double() for t in net.conditional_prior(c, 1))
            sd = torch.exp(0.5 * logvar)
            np.testing.assert_allclose(z.double().mean(0), mu, atol=float(4 * sd.max() / np.sqrt(len(z))))
            np.testing.assert_allclose(z.double().std(0), sd, rtol=0.02)
            means[name] = mu
            # the density agrees: the samples are typical under p(z|c), less so under the other condition's
            own = net.prior_log_prob(z[:1000], cond=c.repeat(1000, 1)).mean()
            assert own > net.prior_log_prob(z[:1000], cond=other.repeat(1000, 1)).mean() + 1.0
        assert (means["a"] - means["b"]).abs().max() > 0.5  # different conditions, different prior means
        # without a condition: the mean condition, c = 0, where the prior is N(0, I) by construction
        zero = net.prior_sample(10, torch.Generator().manual_seed(2))
        at_mean = net.prior_sample(10, torch.Generator().manual_seed(2), cond=torch.zeros(10, 2))
        np.testing.assert_array_equal(zero, at_mean)
        np.testing.assert_allclose(zero, torch.randn(10, 4, generator=torch.Generator().manual_seed(2)), atol=1e-5)
        np.testing.assert_allclose(net.prior_log_prob(zero), normal_log_prob(zero), atol=1e-5)


def test_conditional_prior_iwae_and_elbo():
    """The k=1 bound and the mean single-sample ELBO use log p(z|c): they match the training loss's
    ELBO (closed-form KL to p(z|c)), and the IWAE bound is at least the ELBO and grows with k."""
    import torch

    from molvae.likelihood import likelihood_bounds

    net = _cond_prior_net(latent_dim=3)
    tokens = torch.tensor([[5, 7, 3, 9, 4, 0], [6, 6, 8, 0, 0, 0], [4, 9, 9, 9, 10, 11]])
    lengths = torch.tensor([5, 3, 6])
    cond = torch.tensor([[1.2, -0.7], [1.5, 0.5], [0.0, 2.0]])
    one = likelihood_bounds(net, tokens, lengths, cond, k=1, seed=0)
    np.testing.assert_allclose(one["iwae"], one["elbo"])
    many = likelihood_bounds(net, tokens, lengths, cond, k=2000, seed=0)
    big = likelihood_bounds(net, tokens, lengths, cond, k=64, seed=1)
    small = likelihood_bounds(net, tokens, lengths, cond, k=4, seed=1)
    for i in range(3):
        with torch.no_grad():
            terms = net.loss(tokens[i:i + 1, :lengths[i]].repeat(2000, 1), lengths[i:i + 1].repeat(2000), beta=1.0,
                             cond=cond[i:i + 1].repeat(2000, 1), generator=torch.Generator().manual_seed(i))
            mu, logvar = net.encode(tokens[i:i + 1, :lengths[i]], lengths[i:i + 1], cond[i:i + 1])
        kl_normal = 0.5 * float((mu.pow(2) + logvar.exp() - 1 - logvar).sum())
        assert float(terms["kl"]) > kl_normal + 1.0  # (so N(0, I) in place of p(z|c) would fail below)
        assert float(terms["kl"]) == pytest.approx(many["kl"][i], abs=0.25)  # Monte-Carlo sd at k=2000: < 0.05
        assert -float(terms["loss"]) == pytest.approx(many["elbo"][i], abs=0.25)
    assert (big["iwae"] >= big["elbo"]).all() and big["iwae"].mean() > small["iwae"].mean()


def test_conditional_prior_needs_conditions(capsys, tmp_path):
    with pytest.raises(ConfigError, match="prior conditional is p\\(z\\|c\\) and needs conditions"):
        MolVAE.fit(read_sample(20), preset="tiny", epochs=1, prior="conditional", progress=False)
    data = tmp_path / "in.smi"
    data.write_text("\n".join(read_sample(20)) + "\n")
    assert main(["train", str(data), "--out", str(tmp_path / "run"), "--preset", "tiny", "--prior", "conditional",
                 "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs conditions" in err[0]


@pytest.fixture(scope="module")
def cond_prior_cvae(tmp_path_factory):
    """The ``cvae`` fixture's model with the learned conditional prior p(z|c) (about 15 s on one thread)."""
    out = tmp_path_factory.mktemp("cvae_cond_prior")
    return MolVAE.fit(read_sample(600), out=out, preset="tiny", epochs=8, lr=3e-3, seed=0, progress=False,
                      conditions=["logp", "qed"], prior="conditional")


def test_conditional_prior_model_follows_the_requested_logp(cond_prior_cvae, tmp_path):
    import torch

    model = cond_prior_cvae
    spec = model.conditions
    lo, hi = spec.mean[0] - 1.5 * spec.std[0], spec.mean[0] + 1.5 * spec.std[0]
    # training moved p(z|c) (it starts at N(0, I) for every c): its mean depends on the condition
    c = torch.as_tensor(spec.request({"logp": np.array([lo, hi]), "qed": float(spec.mean[1])}, 2))
    with torch.no_grad():
        mu, _ = model.net.conditional_prior(c, 2)
    assert (mu[1] - mu[0]).norm() > 0.1, mu
    with torch.no_grad():  # anchored: the latent space does not drift away from N(0, I) at the mean
        mu0, logvar0 = model.net.conditional_prior(None, 1)
    assert mu0.abs().max() < 1e-5 and logvar0.abs().max() < 1e-5
    z_lo = model.prior_sample(2000, seed=0, condition={"logp": lo, "qed": float(spec.mean[1])})
    np.testing.assert_allclose(z_lo.mean(0), mu[0].numpy(), atol=0.15)
    low = model.sample(200, seed=0, condition={"logp": lo}, progress=False)
    high = model.sample(200, seed=0, condition={"logp": hi}, progress=False)
    assert low["valid"].mean() > 0.9 and high["valid"].mean() > 0.9
    assert _logp(high).mean() > _logp(low).mean() + 0.4, (_logp(low).mean(), _logp(high).mean())
    # the prior's other users: log p(z) at the mean condition, the OOD score; and a round trip
    assert np.isfinite(model.prior_log_prob(z_lo)).all()
    assert np.isfinite(model.ood_score(read_sample(5))["score"]).all()
    loaded = MolVAE.load(model.save(tmp_path / "copy"))
    assert loaded.config.prior == "conditional"
    assert loaded.sample(30, seed=4, condition={"logp": 3.0}, progress=False)["smiles"].tolist() == \
        model.sample(30, seed=4, condition={"logp": 3.0}, progress=False)["smiles"].tolist()
