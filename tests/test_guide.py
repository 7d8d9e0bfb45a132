"""The property guide (molvae.guide): it learns from prefixes, its step-by-step scores match its
teacher-forced training, steering at strength 0 is plain decoding, and it is saved and loaded safely.
(Steering a trained CVAE toward a requested logP is tested in test_cvae.py, on that module's model.)"""

from __future__ import annotations

import pytest
import torch

from molvae.errors import CheckpointError
from molvae.guide import PropertyGuide, Steering, load_guide, save_guide
from molvae.train_guide import train_guide
from molvae.vocab import tokenize
from molvae.vocab import Vocab, smiles_to_selfies

from conftest import read_sample


@pytest.fixture(scope="module")
def corpus():
    selfies = [smiles_to_selfies(s) for s in read_sample(1500)]
    vocab = Vocab.from_selfies(selfies)
    tokens, lengths = tokenize(selfies, vocab, 100)
    return vocab, tokens, lengths


def _fit(vocab, tokens, lengths, cond, epochs=6):
    return train_guide(tokens, lengths, cond, vocab_size=len(vocab), bos_id=vocab.bos_id, eos_id=vocab.eos_id,
                       pad_id=vocab.pad_id, epochs=epochs, hidden=64, batch_size=64, lr=3e-3, val_fraction=0.1)


def test_guide_learns_a_property_of_the_finished_molecule(corpus):
    """Target: the molecule's token count (standardized), known only once the molecule ends. Predicting
    the mean has a held-out error of about 0.8; the same training on shuffled targets is the control."""
    vocab, tokens, lengths = corpus
    y = lengths.float()
    cond = ((y - y.mean()) / y.std()).unsqueeze(1)
    guide = _fit(vocab, tokens, lengths, cond)
    shuffled = _fit(vocab, tokens, lengths, cond[torch.randperm(len(cond), generator=torch.Generator().manual_seed(0))])
    assert guide.summary["val_mae_final"][0] < 0.65, guide.summary
    assert shuffled.summary["val_mae_final"][0] > 0.7, shuffled.summary
    assert 1 <= guide.summary["best_epoch"] <= 6


def test_unknown_conditions_are_left_out_of_the_loss(corpus):
    vocab, tokens, lengths = corpus
    y = lengths[:200].float()
    cond = torch.stack([(y - y.mean()) / y.std(), torch.full_like(y, float("nan"))], 1)
    guide = _fit(vocab, tokens[:200], lengths[:200], cond, epochs=1)
    assert all(torch.isfinite(p).all() for p in guide.parameters())


def test_stepwise_scores_match_teacher_forcing(corpus):
    """Steering scores every candidate token from the running state; training scores the actual next
    token from the whole prefix: both must give the same Gaussian."""
    vocab, tokens, lengths = corpus
    torch.manual_seed(0)
    guide = PropertyGuide(len(vocab), 2, hidden=32).eval()
    tok = tokens[:4, :10]
    inputs = torch.cat([torch.full((4, 1), vocab.bos_id), tok], 1)
    target = torch.randn(4, 2)
    with torch.no_grad():
        mu, logvar = guide(inputs[:, :-1], tok)  # (4, 10, 2)
        hidden = guide.start(4, torch.device("cpu"))
        for t in range(10):
            hidden = guide.advance(inputs[:, t], hidden)
            for which in (torch.tensor([True, False]), torch.tensor([True, True])):
                ll = guide.log_likelihood(hidden, target, which)  # (4, V)
                assert ll.shape == (4, len(vocab))
                expected = (-0.5 * (logvar[:, t] + torch.log(torch.tensor(2 * torch.pi))
                                    + (target - mu[:, t]) ** 2 / logvar[:, t].exp()))[:, which].sum(-1)
                torch.testing.assert_close(ll.gather(1, tok[:, t:t + 1]).squeeze(1), expected, rtol=1e-4, atol=1e-4)


def test_steering_at_strength_zero_is_plain_decoding_and_stronger_differs():
    from molvae.model import VAE, ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig(embed_dim=8, enc_hidden=8, latent_dim=4, dec_hidden=16, dec_layers=1, max_len=12,
                      conditions=["logp"])
    net = VAE(cfg, 12).eval()
    guide = PropertyGuide(12, 1, hidden=16).eval()
    zc = torch.randn(32, 5)
    for temperature in (0.0, 1.0):
        def decode(steer):
            gen = torch.Generator().manual_seed(1)
            return net.generate(zc, max_len=12, temperature=temperature, generator=gen, steer=steer)

        plain = decode(None)
        assert torch.equal(decode(Steering(guide, torch.tensor([True]), 0.0)), plain)
        assert not torch.equal(decode(Steering(guide, torch.tensor([True]), 50.0)), plain)


def test_guide_file_round_trip_and_corruption(tmp_path):
    torch.manual_seed(0)
    guide = PropertyGuide(10, 2, hidden=16)
    guide.summary = {"epochs": 3}
    path = save_guide(guide, tmp_path / "guide.safetensors")
    loaded = load_guide(path, 10, 2, 16)
    assert loaded.summary == {"epochs": 3} and not loaded.training
    for (name, a), (_, b) in zip(guide.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(CheckpointError, match="do not match the model"):
        load_guide(path, 11, 2, 16)
    path.write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="guide.safetensors: corrupt"):
        load_guide(path, 10, 2, 16)
