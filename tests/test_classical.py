"""GMM by EM and probabilistic PCA: recovery of known parameters, EM's monotone likelihood,
PPCA against its closed form and against torch.distributions, dequantization accounting."""

from __future__ import annotations

import itertools
import math

import pytest
import pytorch_lightning as pl
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal
from torch.utils.data import DataLoader, TensorDataset

from genflow.models.classical import (
    GMM,
    PPCA,
    gmm_log_prob,
    kmeans_plusplus,
    ppca_max_log_likelihood,
)
from genflow.nn.noise import fixed_dequantize

MEANS = torch.tensor([[-4.0, 0.0], [0.0, 4.0], [4.0, -1.0]])
COVS = torch.tensor(
    [[[1.0, 0.5], [0.5, 1.0]], [[0.5, 0.0], [0.0, 0.3]], [[0.8, -0.3], [-0.3, 0.6]]]
)
WEIGHTS = torch.tensor([0.5, 0.3, 0.2])


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread avoids thread hand-offs that dominate (and stall on a busy
    machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mixture() -> MixtureSameFamily:
    return MixtureSameFamily(Categorical(WEIGHTS), MultivariateNormal(MEANS, COVS))


def loader(x: torch.Tensor, batch_size: int = 500, shuffle: bool = True) -> DataLoader:
    dataset = TensorDataset(x, torch.zeros(len(x), dtype=torch.long))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle)


def fit_epochs(model, x: torch.Tensor, epochs: int, batch_size: int = 500):
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, loader(x, batch_size))
    return model


def assert_non_decreasing(values: list[float]) -> None:
    steps = torch.tensor(values).diff()
    assert (steps >= -1e-9).all(), f"log-likelihood went down: {values}"


# ---- GMM ----------------------------------------------------------------------------------------
def test_gmm_recovers_the_means_and_weights_of_a_known_mixture():
    x = mixture().sample((3000,))
    model = fit_epochs(GMM(num_components=3), x, epochs=30)
    means, weights = model.means.detach().float(), model.weights.detach().float()
    best = min(itertools.permutations(range(3)), key=lambda p: (means[list(p)] - MEANS).norm())
    mean_error = (means[list(best)] - MEANS).norm(dim=1).max().item()
    weight_error = (weights[list(best)] - WEIGHTS).abs().max().item()
    report = f"max mean error {mean_error:.3f}, max weight error {weight_error:.3f}"
    assert mean_error < 0.15 and weight_error < 0.03, report
    assert_non_decreasing(model.log_likelihoods)


@pytest.mark.parametrize(("kind", "init"), [("full", "random"), ("diag", "kmeans++")])
def test_gmm_log_likelihood_never_decreases_across_em_iterations(kind, init):
    x = mixture().sample((1500,))
    model = fit_epochs(GMM(num_components=5, covariance_type=kind, init=init, seed=3), x, 25, 300)
    assert len(model.log_likelihoods) == 25
    assert_non_decreasing(model.log_likelihoods)
    assert model.log_likelihoods[-1] > model.log_likelihoods[0] + 0.1  # EM did something
    # the logged figure is the mean log-likelihood of the epoch's parameters on all the data
    model_again = GMM(num_components=5, covariance_type=kind)
    model_again.load_state_dict(model.state_dict())
    assert model_again.log_prob(x).mean().item() >= model.log_likelihoods[-1] - 1e-9


def test_gmm_log_prob_equals_torch_mixture():
    model = GMM(num_components=3)
    with torch.no_grad():
        model.weights.copy_(WEIGHTS)
        model.means.copy_(MEANS)
        model.covariances.copy_(COVS)
    x = mixture().sample((64,))
    torch.testing.assert_close(model.log_prob(x), mixture().log_prob(x), rtol=1e-5, atol=1e-5)
    samples = model.sample(4000)
    assert samples.shape == (4000, 2) and torch.isfinite(samples).all()
    assert (samples.mean(0) - mixture().mean).abs().max() < 0.25


def test_kmeans_plusplus_picks_one_centre_per_cluster():
    x = mixture().sample((600,))
    centres = kmeans_plusplus(x, 3, torch.Generator().manual_seed(0))
    nearest = torch.cdist(centres, MEANS).argmin(1)
    assert sorted(nearest.tolist()) == [0, 1, 2]


def test_gmm_on_discrete_images_subtracts_the_bin_volume():
    x = torch.randint(0, 256, (40, 1, 2, 2)) / 255
    model = GMM(data_shape=(1, 2, 2), num_bits=8, num_components=2, covariance_type="diag")
    model = fit_epochs(model, x, epochs=3, batch_size=20)
    u = fixed_dequantize(x.double(), 8).flatten(1)
    density = gmm_log_prob(u, model.weights, model.means, model.covariances, "diag")
    expected = density - 4 * 8 * math.log(2)
    torch.testing.assert_close(model.log_prob(x).double(), expected.detach(), rtol=1e-6, atol=1e-4)
    samples = model.sample(16)
    torch.testing.assert_close(samples, torch.round(255 * samples) / 255)  # on the 8-bit grid


def test_gmm_too_small_first_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="at least num_components"):
        fit_epochs(GMM(num_components=8), torch.randn(40, 2), epochs=1, batch_size=4)


# ---- PPCA ---------------------------------------------------------------------------------------
def ppca_data(n=2000, d=5, q=2, sigma=0.3):
    torch.manual_seed(0)
    W, _ = torch.linalg.qr(torch.randn(d, q))
    W = W * torch.tensor([3.0, 1.5])
    mu = torch.randn(d)
    x = torch.randn(n, q) @ W.T + mu + sigma * torch.randn(n, d)
    return x, W, mu, sigma


def test_ppca_log_likelihood_equals_the_closed_form():
    x, *_ = ppca_data()
    model = fit_epochs(PPCA(data_shape=(5,), latent_dim=2), x, epochs=1, batch_size=300)
    S = torch.cov(x.double().T, correction=0)
    closed_form = ppca_max_log_likelihood(S, 2).item()
    assert model.log_prob(x).double().mean().item() == pytest.approx(closed_form, abs=1e-4)
    assert model.log_likelihoods == [pytest.approx(closed_form, abs=1e-9)]


def test_ppca_recovers_the_generating_covariance():
    x, W, mu, sigma = ppca_data(n=20000)
    model = fit_epochs(PPCA(data_shape=(5,), latent_dim=2), x, epochs=1, batch_size=5000)
    Wm = model.W.detach().float()
    torch.testing.assert_close(Wm @ Wm.T, W @ W.T, atol=0.15, rtol=0)
    assert model.sigma2.item() == pytest.approx(sigma**2, rel=0.05)
    torch.testing.assert_close(model.mean.detach().float(), mu, atol=0.05, rtol=0)


def test_ppca_matches_torch_multivariate_normal_and_its_posterior():
    x, *_ = ppca_data(n=500)
    model = fit_epochs(PPCA(data_shape=(5,), latent_dim=2), x, epochs=1)
    mean, W, sigma2 = model.mean.detach(), model.W.detach(), model.sigma2.detach()
    C = W @ W.T + sigma2 * torch.eye(5, dtype=W.dtype)
    true = MultivariateNormal(mean, C)
    torch.testing.assert_close(model.log_prob(x).double(), true.log_prob(x.double()))
    # E[z|x] = W^T C^-1 (x - mu), the Gaussian conditional of the joint (z, x)
    posterior_mean = (x.double() - mean) @ torch.linalg.solve(C, W)
    torch.testing.assert_close(model.encode(x).double(), posterior_mean, rtol=1e-5, atol=1e-5)
    samples = model.sample(20000)
    torch.testing.assert_close(torch.cov(samples.double().T), C, atol=0.15, rtol=0)


def test_ppca_em_never_decreases_and_reaches_the_closed_form():
    x, *_ = ppca_data(n=1000)
    model = fit_epochs(PPCA(data_shape=(5,), latent_dim=2, method="em"), x, 150, 1000)
    assert len(model.log_likelihoods) == 149  # the first epoch estimates the mean
    assert_non_decreasing(model.log_likelihoods)
    closed_form = ppca_max_log_likelihood(torch.cov(x.double().T, correction=0), 2).item()
    assert model.log_prob(x).double().mean().item() == pytest.approx(closed_form, abs=1e-3)


def test_ppca_on_discrete_images_accounts_for_dequantization():
    x = torch.randint(0, 256, (200, 1, 2, 3)) / 255
    model = fit_epochs(PPCA(data_shape=(1, 2, 3), num_bits=8, latent_dim=2), x, 1, 50)
    u = fixed_dequantize(x.double(), 8).flatten(1)
    C = model.W @ model.W.T + model.sigma2 * torch.eye(6, dtype=torch.float64)
    expected = MultivariateNormal(model.mean, C).log_prob(u) - 6 * 8 * math.log(2)
    torch.testing.assert_close(model.log_prob(x).double(), expected.detach(), rtol=1e-6, atol=1e-4)
    # the closed form holds for the dequantized data the model was fitted to
    S = torch.cov(u.T, correction=0)
    fitted = model.log_prob(x).double().mean() + 6 * 8 * math.log(2)
    assert fitted.item() == pytest.approx(ppca_max_log_likelihood(S, 2).item(), abs=1e-4)
    assert model.encode(x).shape == (200, 2) and model.decode(model.encode(x)).shape == x.shape


def test_ppca_latent_dim_must_be_below_the_data_dimension():
    with pytest.raises(ValueError, match="latent_dim < data dimension"):
        PPCA(data_shape=(3,), latent_dim=3)


@pytest.mark.slow
def test_gmm_em_under_two_process_ddp_sums_the_statistics_of_both_ranks(tmp_path):
    """Each rank sees half of the digits; only statistics summed over both ranks give both the
    same M-step, so identical parameters and log-likelihoods show the reduction happened."""
    from ddp import assert_identical_parameters, run_ddp_fit

    ranks = run_ddp_fit(tmp_path, "experiments/classical/gmm_digits.yaml",
                        "--model.init_args.covariance_type", "diag", "--trainer.max_epochs", "3",
                        "--trainer.limit_train_batches", "1.0")  # fmt: skip
    assert_identical_parameters(ranks)
    history = [r["record"]["log_likelihoods"] for r in ranks]
    assert history[0] == history[1] and len(history[0]) == 3
    assert_non_decreasing(history[0])
