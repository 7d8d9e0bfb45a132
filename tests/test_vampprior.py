"""The VampPrior: its density, sampling and KL term against independent Monte-Carlo estimates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from molvae.model import PRESETS, VAE, ModelConfig
from molvae.priors import mixture_log_prob

from conftest import read_sample


def _vamp_net(latent_dim: int = 3, components: int = 4, seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    cfg = ModelConfig(**{**PRESETS["tiny"], "latent_dim": latent_dim, "prior": "vampprior",
                         "vamp_components": components, "vamp_length": 5})
    net = VAE(cfg, 12).eval()
    with torch.no_grad():  # spread the components so the mixture is visibly not one Gaussian
        net.to_mu.bias.copy_(torch.linspace(-1, 1, latent_dim))
        net.to_mu.weight.mul_(8.0)
    return net


def _scipy_mixture_logpdf(z: np.ndarray, mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    comps = np.stack([multivariate_normal(m, np.diag(np.exp(lv))).logpdf(z) for m, lv in zip(mu, logvar)], axis=1)
    return logsumexp(comps, axis=1) - np.log(len(mu))


def test_mixture_log_prob_matches_scipy():
    rng = np.random.default_rng(0)
    mu, logvar = rng.normal(size=(5, 3)), rng.normal(scale=0.5, size=(5, 3)) - 1.0
    z = rng.normal(scale=2.0, size=(200, 3))
    ours = mixture_log_prob(torch.tensor(z, dtype=torch.float32), torch.tensor(mu, dtype=torch.float32),
                            torch.tensor(logvar, dtype=torch.float32), chunk_elems=64).numpy()  # forces chunking
    np.testing.assert_allclose(ours, _scipy_mixture_logpdf(z, mu, logvar), rtol=1e-4, atol=1e-4)


def test_vampprior_density_integrates_to_one_and_sampling_matches_it():
    net = _vamp_net(latent_dim=2, components=6)
    with torch.no_grad():
        mu_k, logvar_k = (t.double().numpy() for t in net.prior_components())
    assert np.ptp(mu_k, axis=0).max() > 1.0  # the components really differ
    # importance sampling from a broad Gaussian: E_g[p(z) / g(z)] = 1 for a normalized density p
    rng = np.random.default_rng(1)
    scale = 4.0
    g = rng.normal(scale=scale, size=(200_000, 2))
    log_g = multivariate_normal(np.zeros(2), scale**2 * np.eye(2)).logpdf(g)
    log_p = net.prior_log_prob(torch.tensor(g, dtype=torch.float32)).detach().double().numpy()
    assert np.exp(log_p - log_g).mean() == pytest.approx(1.0, abs=0.02)
    # samples: the mixture's mean and covariance (law of total variance), to Monte-Carlo precision
    z = net.prior_sample(200_000, torch.Generator().manual_seed(2)).double().numpy()
    mean = mu_k.mean(0)
    cov = np.diag(np.exp(logvar_k).mean(0)) + (mu_k - mean).T @ (mu_k - mean) / len(mu_k)
    np.testing.assert_allclose(z.mean(0), mean, atol=4 * np.sqrt(np.diag(cov).max() / len(z)))
    np.testing.assert_allclose(np.cov(z.T), cov, atol=0.03 * np.abs(cov).max())
    # and the sample's average log-density is the mixture's (negative) entropy estimated by scipy
    sub = z[:20_000]
    assert net.prior_log_prob(torch.tensor(sub, dtype=torch.float32)).double().mean().item() == pytest.approx(
        _scipy_mixture_logpdf(sub, mu_k, logvar_k).mean(), abs=1e-3)


def test_vampprior_kl_term_matches_monte_carlo_estimate():
    """The loss's single-sample KL, averaged over a batch of one molecule repeated, is KL(q || p)
    estimated independently with scipy densities at numpy samples from q."""
    net = _vamp_net(latent_dim=3, components=5)
    tokens = torch.tensor([[5, 7, 3, 9, 4]]).repeat(20_000, 1)
    lengths = torch.full((20_000,), 5)
    with torch.no_grad():
        kl_loss = float(net.loss(tokens, lengths, beta=1.0, generator=torch.Generator().manual_seed(0))["kl"])
        mu, logvar = (t[0].double().numpy() for t in net.encode(tokens[:1], lengths[:1]))
        mu_k, logvar_k = (t.double().numpy() for t in net.prior_components())
    rng = np.random.default_rng(3)
    z = mu + rng.standard_normal((50_000, 3)) * np.exp(0.5 * logvar)
    terms = multivariate_normal(mu, np.diag(np.exp(logvar))).logpdf(z) - _scipy_mixture_logpdf(z, mu_k, logvar_k)
    se = terms.std() / np.sqrt(len(terms)) + terms.std() / np.sqrt(20_000)
    assert terms.mean() > 0.5  # a real, non-trivial KL
    assert kl_loss == pytest.approx(terms.mean(), abs=4 * se)


def test_normal_prior_kl_is_the_analytic_one():
    torch.manual_seed(0)
    net = VAE(ModelConfig(**{**PRESETS["tiny"], "latent_dim": 3}), 12).eval()
    tokens, lengths = torch.tensor([[5, 7, 3, 9, 4]]), torch.tensor([5])
    with torch.no_grad():
        kl = float(net.loss(tokens, lengths, beta=1.0)["kl"])
        mu, logvar = (t[0].double().numpy() for t in net.encode(tokens, lengths))
    rng = np.random.default_rng(0)
    z = mu + rng.standard_normal((200_000, 3)) * np.exp(0.5 * logvar)
    mc = multivariate_normal(mu, np.diag(np.exp(logvar))).logpdf(z) - multivariate_normal(np.zeros(3), np.eye(3)).logpdf(z)
    assert kl == pytest.approx(mc.mean(), abs=4 * mc.std() / np.sqrt(len(mc)) + 1e-4)


def test_vampprior_model_trains_saves_and_samples(tmp_path):
    from molvae import MolVAE

    smiles = read_sample(200)
    model = MolVAE.fit(smiles, out=tmp_path / "vamp", preset="tiny", epochs=2, prior="vampprior",
                       vamp_components=16, vamp_length=12, progress=False)
    assert model.net.prior is not None and model.net.prior.pseudo_inputs.shape == (16, 12, 16)
    z = model.prior_sample(500, seed=0)
    assert z.shape == (500, model.latent_dim)
    with torch.no_grad():
        mu_k, _ = model.net.prior_components()
    # samples come from the mixture, not N(0, I): their mean is the components' mean
    np.testing.assert_allclose(z.mean(0), mu_k.float().mean(0).numpy(), atol=0.25)
    lp = model.prior_log_prob(z)
    assert lp.shape == (500,) and np.isfinite(lp).all()
    far = model.prior_log_prob(np.full((1, model.latent_dim), 6.0, np.float32))
    assert far[0] < np.quantile(lp, 0.01)  # "in distribution" follows the learned prior
    df = model.sample(50, seed=1, progress=False)
    assert df["valid"].all()
    loaded = MolVAE.load(tmp_path / "vamp")
    assert loaded.config.prior == "vampprior"
    np.testing.assert_array_equal(loaded.prior_sample(20, seed=3), model.prior_sample(20, seed=3))
    assert loaded.sample(50, seed=1, progress=False)["smiles"].tolist() == df["smiles"].tolist()
    np.testing.assert_array_equal(loaded.encode(smiles[:5]), model.encode(smiles[:5]))
