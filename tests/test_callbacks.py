import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from genflow.callbacks import MetricsFile, ReconstructionGrid, SampleGrid
from genflow.callbacks.grids import next_free, points_to_image, save_samples, to_grid
from genflow.callbacks.metrics_file import read_metrics
from genflow.models import VAE


def test_points_become_a_normalised_histogram_with_y_up():
    image = points_to_image(torch.tensor([[0.9, 0.9]] * 3 + [[-0.9, -0.9]]), bins=4, extent=1.0)
    assert image.shape == (1, 4, 4) and image.max() == 1.0
    assert image[0, 0, 3] == 1.0 and image[0, 3, 0] == 1 / 3  # top-right is (+, +)


def test_grids_of_images_and_points():
    assert to_grid(torch.rand(6, 1, 8, 8), nrow=3).shape == (3, 2 * 9 + 1, 3 * 9 + 1)
    assert to_grid(torch.randn(100, 2)).shape == (1, 128, 128)


def test_saving_never_overwrites(tmp_path):
    first, _ = save_samples(torch.rand(4, 1, 8, 8), tmp_path / "s.png")
    second, tensor = save_samples(torch.rand(4, 1, 8, 8), tmp_path / "s.png")
    assert (first.name, second.name, tensor.name) == ("s.png", "s-1.png", "s-1.pt")
    assert next_free(tmp_path / "s.png").name == "s-2.png"


def test_callbacks_write_grids_and_metrics_without_touching_the_training_rng(tmp_path):
    x = torch.bernoulli(torch.rand(32, 1, 8, 8))
    loader = DataLoader(TensorDataset(x, torch.zeros(32, dtype=torch.long)), batch_size=8)
    model = VAE(data_shape=(1, 8, 8), num_bits=1, latent_dim=2, channels=4)
    callbacks = [SampleGrid(num_samples=4), ReconstructionGrid(num_images=3), MetricsFile()]
    trainer = pl.Trainer(
        max_epochs=2,
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=callbacks,
    )
    trainer.fit(model, loader, loader)
    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert names == [
        "reconstructions-epoch000.png",
        "reconstructions-epoch001.png",
        "samples-epoch000.png",
        "samples-epoch001.png",
    ]
    metrics = read_metrics(tmp_path / "metrics.json")
    assert {"train/loss", "val/elbo", "val/elbo_bpd"} <= set(metrics)
    # the grid draws with fixed noise inside a forked RNG: training draws are unaffected
    state = torch.get_rng_state()
    SampleGrid(num_samples=2).on_train_epoch_end(trainer, model)
    assert torch.equal(state, torch.get_rng_state())
