import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from genflow.losses import dequantize
from genflow.models.vae import VAE


def linear_gaussian_vae(D=6, L=3, sigma=0.5, exact_posterior=True):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, sigma^2 I): log p(x) = log N(x; b, WW^T + sigma^2 I).

    W has orthogonal columns, so the true posterior is diagonal and the encoder can be set to it.
    """
    torch.manual_seed(1)
    model = VAE(
        data_shape=(D,),
        num_bits=None,
        num_classes=1,
        latent_dim=L,
        likelihood="gaussian",
        decoder_scale=sigma,
        architecture="mlp",
        hidden_dims=(),
    )
    q, _ = torch.linalg.qr(torch.randn(D, L))
    W, b = q * torch.tensor([2.0, 1.0, 0.5]), torch.randn(D)
    M = W.T @ W + sigma**2 * torch.eye(L)  # diagonal by construction
    enc, dec = model.encoder[1][0], model.decoder[0][0]
    with torch.no_grad():
        dec.weight.copy_(W)
        dec.bias.copy_(b)
        A = torch.linalg.solve(M, W.T)  # posterior mean = A (x - b)
        enc.weight.zero_()
        enc.weight[:L] = A
        enc.bias[:L] = -A @ b
        enc.bias[L:] = torch.log(sigma**2 / M.diagonal())
        if not exact_posterior:
            enc.weight[:L] += 0.3 * torch.randn(L, D)
            enc.bias[L:] += 0.5
    true = MultivariateNormal(b, W @ W.T + sigma**2 * torch.eye(D))
    return model, true


def test_iwae_is_exact_with_the_true_posterior():
    model, true = linear_gaussian_vae()
    x = true.sample((32,))
    for k in (1, 10):
        torch.testing.assert_close(model.log_prob(x, num_samples=k), true.log_prob(x))


def test_iwae_never_above_log_px_and_non_decreasing_in_k():
    model, true = linear_gaussian_vae(exact_posterior=False)
    x = true.sample((256,))
    log_px = true.log_prob(x).mean()
    bounds = [
        torch.stack([model.log_prob(x, num_samples=k).mean() for _ in range(5)]).mean()
        for k in (1, 4, 32, 256)
    ]
    for lower, higher in zip(bounds[:-1], bounds[1:], strict=True):
        assert lower <= higher + 0.02
    assert bounds[-1] <= log_px + 0.02
    assert bounds[0] < log_px - 0.5  # the perturbed posterior leaves a real gap at K = 1
    assert bounds[-1] > bounds[0] + 0.3


def test_log_prob_uses_exactly_k_samples_in_chunks_eval_mode_no_grad():
    model = VAE(data_shape=(1, 8, 8), num_bits=1, latent_dim=4, channels=4)
    rows = []
    model.decoder.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[0]))
    modes = []
    model.decoder.register_forward_hook(lambda m, i, o: modes.append(m.training))
    x = torch.bernoulli(torch.rand(3, 1, 8, 8))
    model.train()
    lp = model.log_prob(x, num_samples=10, max_rows=7)
    assert sum(rows) == 10 * 3 and max(rows) <= 7
    assert not any(modes) and model.training and not lp.requires_grad
    assert lp.shape == (3,) and (lp < 0).all()
    with pytest.raises(ValueError, match="K"):
        model.log_prob(x, num_samples=-1)


def test_dequantize_stays_in_the_bin_and_bound_is_a_log_probability():
    x = torch.randint(0, 256, (4, 1, 8, 8)) / 255
    u = dequantize(x, 8)
    assert torch.equal(torch.floor(u * 256), torch.round(x * 255))
    for lik in ("gaussian", "gaussian_learned", "laplace"):
        model = VAE(data_shape=(1, 8, 8), num_bits=8, latent_dim=4, channels=4, likelihood=lik)
        assert (model.log_prob(x, num_samples=4) < 0).all()  # log P(discrete x) <= 0


def test_bits_per_dim_follows_log_prob():
    model, true = linear_gaussian_vae()
    x = true.sample((8,))
    torch.testing.assert_close(model.bits_per_dim(x), -true.log_prob(x) / (6 * math.log(2)))


def test_elbo_is_a_lower_bound_and_training_reduces_loss():
    torch.manual_seed(0)
    x = (torch.rand(1, 1, 8, 8) > 0.5).float().expand(64, 1, 8, 8)
    model = VAE(
        data_shape=(1, 8, 8), num_bits=1, latent_dim=4, architecture="mlp", hidden_dims=(32,)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        rec, kl = model.elbo_terms(x)
        loss = (kl - rec).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    with torch.no_grad():
        rec, kl = model.elbo_terms(x)
    assert model.log_prob(x, num_samples=200).mean() >= (rec - kl).mean() - 0.5


def test_sample_encode_decode_shapes_and_range():
    model = VAE(data_shape=(1, 28, 28), num_bits=1, latent_dim=5, architecture="seed")
    s = model.sample(4, temperature=0.5)
    assert s.shape == (4, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    assert model.encode(s).shape == (4, 5) and model.latent_shape == (5,)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(beta=-1.0), "beta"),
        (dict(latent_dim=0), "latent_dim"),
        (dict(num_importance_samples=0), "K"),
        (dict(likelihood="bernoulli", num_bits=8), "binarize: dynamic"),
        (dict(likelihood="poisson"), "Unknown decoder likelihood"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, match):
    args = dict(data_shape=(1, 8, 8), num_bits=1, channels=4) | kwargs
    with pytest.raises(ValueError, match=match):
        VAE(**args)


def test_batch_of_the_wrong_shape_is_a_clear_error():
    model = VAE(data_shape=(1, 8, 8), num_bits=1, channels=4)
    with pytest.raises(ValueError, match=r"built for data of shape \(1, 8, 8\).*\(3, 32, 32\)"):
        model.training_step((torch.zeros(2, 3, 32, 32), torch.zeros(2)), 0)
