"""The normalizing-flow latent prior: it beats a Gaussian on curved data, is reproducible, and its file
round-trips (or fails as a one-line CheckpointError)."""

from __future__ import annotations

import math

import pytest
import torch

from molvae.errors import CheckpointError, ConfigError
from molvae.io import load_weights, save_weights
from molvae.latent_flow import FLOW_FORMAT, LatentFlow, load_latent_prior, read_metadata
from molvae.latent_mixture import LatentMixture

SMALL = dict(transforms=4, hidden=64, batch_size=256, steps=400, lr=3e-3, eval_every=50)


def moons(n: int, seed: int) -> torch.Tensor:
    """``(n, 4)``: two interleaved half-moons in the first two coordinates, then a parabola of the first
    one and a bimodal coordinate; no Gaussian fits it."""
    g = torch.Generator().manual_seed(seed)
    which = torch.randint(2, (n,), generator=g).float()
    angle = math.pi * torch.rand(n, generator=g)
    x = torch.where(which > 0, torch.cos(angle), 1.0 - torch.cos(angle))
    y = torch.where(which > 0, torch.sin(angle), 0.5 - torch.sin(angle))
    noise = 0.05 * torch.randn(n, 4, generator=g)
    return torch.stack([x, y, x ** 2, 2.0 * which - 1.0], dim=1) + noise


@pytest.fixture(scope="module")
def fitted() -> LatentFlow:
    torch.set_num_threads(1)
    return LatentFlow.fit(moons(3000, seed=0), seed=0, **SMALL)


def test_the_flow_beats_a_gaussian_on_held_out_points(fitted):
    held_out = moons(1000, seed=1)
    gaussian = LatentMixture.fit(moons(3000, seed=0), components=1)
    flow_ll, gauss_ll = float(fitted.log_prob(held_out).mean()), float(gaussian.log_prob(held_out).mean())
    assert flow_ll > gauss_ll + 1.0, (flow_ll, gauss_ll)
    assert fitted.n_fitted == 3000 and fitted.latent_dim == 4


def test_shapes_dtypes_and_reproducible_samples(fitted):
    lp = fitted.log_prob(moons(7, seed=2))
    assert lp.shape == (7,) and lp.dtype == torch.float64 and bool(torch.isfinite(lp).all())
    a = fitted.sample(500, torch.Generator().manual_seed(3))
    b = fitted.sample(500, torch.Generator().manual_seed(3))
    c = fitted.sample(500, torch.Generator().manual_seed(4))
    assert a.shape == (500, 4) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert fitted.sample(0).shape == (0, 4)
    # the samples follow the data: the bimodal coordinate sits near -1 or +1, not at 0
    assert float((a[:, 3].abs() > 0.5).float().mean()) > 0.9


def test_save_then_load_gives_the_same_density_and_samples(fitted, tmp_path):
    path = fitted.save(tmp_path / "latent_prior.safetensors")
    assert read_metadata(path)["format"] == FLOW_FORMAT
    back = LatentFlow.load(path, latent_dim=4)
    z = moons(200, seed=5)
    assert torch.equal(back.log_prob(z), fitted.log_prob(z))
    assert torch.equal(back.sample(300, torch.Generator().manual_seed(6)),
                       fitted.sample(300, torch.Generator().manual_seed(6)))
    assert back.n_fitted == fitted.n_fitted and back.kind == fitted.kind == "coupling"


def test_the_fit_is_reproducible_and_can_train_on_posterior_draws():
    z = moons(400, seed=7)
    logvar = torch.full_like(z, math.log(0.01))
    quick = dict(transforms=2, hidden=16, steps=30, batch_size=64, eval_every=10)
    a = LatentFlow.fit(z, mu_logvar=(z, logvar), seed=1, **quick)
    b = LatentFlow.fit(z, mu_logvar=(z, logvar), seed=1, **quick)
    c = LatentFlow.fit(z, seed=1, **quick)
    assert torch.equal(a.log_prob(z), b.log_prob(z)) and not torch.equal(a.log_prob(z), c.log_prob(z))
    with pytest.raises(ConfigError):
        LatentFlow.fit(z, mu_logvar=(z[:10], logvar[:10]), **quick)


def test_a_damaged_or_foreign_file_is_a_checkpoint_error(fitted, tmp_path):
    path = fitted.save(tmp_path / "flow.safetensors")
    with pytest.raises(CheckpointError, match="latent size 4 does not fit a model with latent size 8") as err:
        LatentFlow.load(path, latent_dim=8)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        LatentFlow.load(broken, latent_dim=4)
    weights, meta = load_weights(path), read_metadata(path)
    name = next(iter(weights))
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_weights(weights, tmp_path / "nan.safetensors", metadata=meta)
    with pytest.raises(CheckpointError, match="non-finite"):
        LatentFlow.load(tmp_path / "nan.safetensors", latent_dim=4)
    save_weights(load_weights(path), tmp_path / "other.safetensors", metadata={**meta, "hidden": "65"})
    with pytest.raises(CheckpointError, match="do not match its metadata"):
        LatentFlow.load(tmp_path / "other.safetensors", latent_dim=4)


def test_load_latent_prior_reads_either_kind(fitted, tmp_path):
    z = moons(300, seed=8)
    mixture = LatentMixture.fit(z, components=2)
    mixture.save(tmp_path / "mixture.safetensors")
    fitted.save(tmp_path / "flow.safetensors")
    old = tmp_path / "old.safetensors"  # a mixture written before files carried a format
    save_weights({"weights": mixture.weights, "means": mixture.means, "chol": mixture.chol}, old)
    assert isinstance(load_latent_prior(tmp_path / "mixture.safetensors", 4), LatentMixture)
    assert isinstance(load_latent_prior(old, 4), LatentMixture)
    flow = load_latent_prior(tmp_path / "flow.safetensors", 4)
    assert isinstance(flow, LatentFlow) and torch.equal(flow.log_prob(z), fitted.log_prob(z))
    with pytest.raises(CheckpointError, match="not found"):
        load_latent_prior(tmp_path / "missing.safetensors", 4)
