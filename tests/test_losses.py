import math

import torch
from torch.distributions import Bernoulli, Laplace, Normal, kl_divergence

from genflow.losses import (
    half_sum_squared_error,
    kl_normal,
    log_mean_exp,
    reparameterize,
    standard_normal_log_prob,
)
from genflow.nn.likelihoods import (
    bernoulli_log_prob,
    gaussian_log_prob,
    get_likelihood,
    laplace_log_prob,
)


def test_kl_normal_matches_torch_distributions():
    mu, logvar = torch.randn(6, 5), torch.randn(6, 5)
    expected = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(kl_normal(mu, logvar), expected)


def test_kl_normal_is_zero_only_at_the_prior():
    assert kl_normal(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max() < 1e-7
    assert (kl_normal(torch.randn(2, 3), torch.randn(2, 3)) > 0).all()


def test_densities_match_torch_distributions():
    x = torch.rand(4, 1, 3, 3)
    mu, raw = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    torch.testing.assert_close(
        gaussian_log_prob(x, mu, raw), Normal(mu, (0.5 * raw).exp()).log_prob(x).flatten(1).sum(1)
    )
    torch.testing.assert_close(
        laplace_log_prob(x, mu, raw), Laplace(mu, raw.exp()).log_prob(x).flatten(1).sum(1)
    )
    xb = torch.bernoulli(x)
    torch.testing.assert_close(
        bernoulli_log_prob(xb, raw), Bernoulli(logits=raw).log_prob(xb).flatten(1).sum(1)
    )


def test_every_decoder_head_matches_its_torch_distribution():
    x = torch.rand(3, 2, 4, 4)
    one, two = torch.randn(3, 2, 4, 4), torch.randn(3, 4, 4, 4)
    loc, raw = two.chunk(2, dim=1)
    cases = {
        "bernoulli": (one, Bernoulli(logits=one), torch.bernoulli(x)),
        "gaussian": (one, Normal(one, 0.3), x),
        "gaussian_learned": (two, Normal(loc, (0.5 * raw).exp()), x),
        "laplace": (two, Laplace(loc, raw.exp()), x),
    }
    for name, (params, dist, data) in cases.items():
        head = get_likelihood(name, scale=0.3)
        expected = dist.log_prob(data).flatten(1).sum(1)
        torch.testing.assert_close(head.log_prob(data, params), expected, msg=name)
        torch.testing.assert_close(head.mean(params), dist.mean, msg=name)
        assert head.sample(params).shape == data.shape


def test_unit_gaussian_is_the_seed_loss_plus_its_constant():
    x, mu = torch.rand(5, 10), torch.rand(5, 10)
    nll = -get_likelihood("gaussian", scale=1.0).log_prob(x, mu)
    torch.testing.assert_close(
        nll, half_sum_squared_error(mu, x) + 10 * 0.5 * math.log(2 * math.pi)
    )


def test_log_mean_exp_and_reparameterize():
    t = torch.randn(7, 3)
    torch.testing.assert_close(log_mean_exp(t), t.exp().mean(0).log())
    mu, logvar = torch.full((2000, 2), 3.0), torch.full((2000, 2), math.log(4.0))
    z = reparameterize(mu, logvar)
    assert abs(z.mean() - 3.0) < 0.15 and abs(z.std() - 2.0) < 0.15
    assert reparameterize(mu, logvar, num_samples=5).shape == (5, 2000, 2)
    torch.testing.assert_close(standard_normal_log_prob(z), Normal(0.0, 1.0).log_prob(z).sum(1))
