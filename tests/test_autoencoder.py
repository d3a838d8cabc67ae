import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from genflow.models.autoencoder import AE, DenoisingAE, corrupt, gaussian_fit


def test_corruptions():
    x = torch.full((2000,), 0.5)
    assert torch.allclose(corrupt(x, "gaussian", 0.1).std(), torch.tensor(0.1), atol=0.01)
    masked = corrupt(x, "masking", 0.3)
    assert (
        set(masked.unique().tolist()) == {0.0, 0.5}
        and abs((masked == 0).float().mean() - 0.3) < 0.05
    )
    sp = corrupt(x, "salt_pepper", 0.4)
    assert (
        set(sp.unique().tolist()) == {0.0, 0.5, 1.0}
        and abs((sp != 0.5).float().mean() - 0.4) < 0.05
    )
    with pytest.raises(ValueError, match="Unknown noise"):
        corrupt(x, "blur", 0.1)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_gaussian_fit_is_the_maximum_likelihood_gaussian(covariance):
    z = (
        torch.randn(500, 3, dtype=torch.float64)
        @ torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.2]], dtype=torch.float64)
        + 2.0
    )
    mean, L = gaussian_fit(torch.tensor(500.0, dtype=torch.float64), z.sum(0), z.T @ z, covariance)
    cov = torch.cov(z.T, correction=0)
    torch.testing.assert_close(mean, z.mean(0))
    expected = cov if covariance == "full" else torch.diag(cov.diagonal())
    torch.testing.assert_close(L @ L.T, expected, atol=1e-5, rtol=1e-5)


def _fit(model, x, epochs=3):
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x), dtype=torch.long)), batch_size=16)
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, loader)
    return loader


@pytest.mark.parametrize("cls", [AE, DenoisingAE])
def test_latent_gaussian_is_fitted_during_training_and_samples(cls):
    x = torch.randint(0, 256, (48, 1, 8, 8)) / 255
    model = cls(data_shape=(1, 8, 8), latent_dim=3, channels=4)
    with pytest.raises(RuntimeError, match="fit_latent_gaussian"):
        model.sample(2)
    loader = _fit(model, x)
    assert bool(model.latent_fitted)
    s = model.sample(5)
    assert s.shape == (5, 1, 8, 8) and 0 <= s.min() and s.max() <= 1
    # refit with the final weights equals the statistics of the encoded data
    model.fit_latent_gaussian(loader)
    with torch.no_grad():
        z = model.encode(x).double()
    torch.testing.assert_close(model.latent_mean, z.mean(0).float(), atol=1e-5, rtol=1e-4)
    L = model.latent_scale_tril.double()
    torch.testing.assert_close(L @ L.T, torch.cov(z.T, correction=0), atol=1e-4, rtol=1e-3)


def test_refit_switches_between_diagonal_and_full_covariance():
    x = torch.randint(0, 256, (48, 1, 8, 8)) / 255
    model = AE(data_shape=(1, 8, 8), latent_dim=3, channels=4)
    loader = _fit(model, x, epochs=1)
    with torch.no_grad():
        cov = torch.cov(model.encode(x).double().T, correction=0)
    model.fit_latent_gaussian(loader, covariance="diag")
    L = model.latent_scale_tril.double()
    torch.testing.assert_close(L @ L.T, torch.diag(cov.diagonal()), atol=1e-4, rtol=1e-3)
    assert model.covariance == model.hparams["covariance"] == "diag"  # later fits stay diagonal
    model.fit_latent_gaussian(loader, covariance="full")
    L = model.latent_scale_tril.double()
    torch.testing.assert_close(L @ L.T, cov, atol=1e-4, rtol=1e-3)
    with pytest.raises(ValueError, match="choose diag or full"):
        model.fit_latent_gaussian(loader, covariance="spherical")
    with pytest.raises(ValueError, match="choose diag or full"):
        AE(data_shape=(1, 8, 8), covariance="Full")


def test_latent_gaussian_travels_in_the_state_dict():
    model = AE(data_shape=(1, 8, 8), latent_dim=3, channels=4)
    model.latent_mean.fill_(1.5)
    model.latent_fitted.fill_(True)
    other = AE(data_shape=(1, 8, 8), latent_dim=3, channels=4)
    other.load_state_dict(model.state_dict())
    assert bool(other.latent_fitted) and torch.all(other.latent_mean == 1.5)


def test_seed_ae_loss_is_half_sum_squared_error():
    model = AE(data_shape=(1, 28, 28), latent_dim=4, architecture="seed")
    x = torch.rand(3, 1, 28, 28)
    loss, z = model.reconstruction_loss(x, x)
    x_hat = model.decode(z)
    torch.testing.assert_close(loss, 0.5 * ((x_hat - x) ** 2).sum((1, 2, 3)))


def test_denoising_ae_trains_against_the_clean_input():
    x = torch.randint(0, 2, (32, 1, 8, 8)).float()
    model = DenoisingAE(data_shape=(1, 8, 8), latent_dim=4, channels=4, noise="masking",
                        noise_level=0.5)  # fmt: skip
    before = model.reconstruction_loss(x, x)[0].mean().item()
    _fit(model, x, epochs=15)
    after = model.reconstruction_loss(corrupt(x, "masking", 0.5), x)[0].mean().item()
    assert after < before
    with pytest.raises(ValueError, match="noise_level"):
        DenoisingAE(data_shape=(1, 8, 8), noise="masking", noise_level=1.5)
