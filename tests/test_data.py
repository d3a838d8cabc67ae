"""genflow.data: every DataModule on tiny files written in the datasets' real formats, offline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from formats import write_celeba, write_cifar10, write_idx, write_mnist, write_pngs
from torch.utils.data import DataLoader, DistributedSampler

from genflow.data import (
    CIFAR10,
    IDX,
    MNIST,
    CelebA,
    DatasetNotFoundError,
    Digits,
    FashionMNIST,
    IDXFormatError,
    ImageFolder,
    InMemoryDataset,
    Toy2D,
    read_idx,
    read_idx_header,
    sample_toy2d,
)
from genflow.data.base import BatchCollate, keep_batch, split_indices, transform_images
from genflow.data.toy2d import TOY2D

DIGIT_LEVELS = {round(255 * v / 16) for v in range(17)}


def gather(loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader, strict=True)
    return torch.cat(xs), torch.cat(ys)


def assert_batch(x: torch.Tensor, y: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.shape[1:] == shape and len(x) == len(y)
    assert 0 <= x.min() and x.max() <= 1
    assert torch.equal(x * 255, (x * 255).round())  # k / 255 exactly


# ---- Digits ---------------------------------------------------------------------------------
def test_digits_values_splits_and_description():
    dm = Digits(batch_size=64)
    assert (dm.data_shape, dm.num_classes, dm.num_bits) == ((1, 8, 8), 10, 8)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert_batch(x, y, (1, 8, 8))
    assert set((x * 255).round().long().unique().tolist()) <= DIGIT_LEVELS
    sizes = [len(s) for s in (dm.train_set, dm.val_set, dm.test_set)]
    assert sizes == [1294, 144, 359] and sum(sizes) == 1797
    val_x, _ = gather(dm.val_dataloader())
    assert set((val_x * 255).round().long().unique().tolist()) <= DIGIT_LEVELS


def test_digits_split_is_fixed_by_seed():
    a, b, c = Digits(), Digits(), Digits(seed=1)
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.test_set.x, b.test_set.x) and torch.equal(a.val_set.x, b.val_set.x)
    assert not torch.equal(a.test_set.x, c.test_set.x)


def test_digits_16_repeats_each_pixel():
    small, large = Digits(), Digits(size=16)
    assert large.data_shape == (1, 16, 16)
    small.setup()
    large.setup()
    assert torch.equal(large.test_set.x[:, :, ::2, ::2], small.test_set.x)
    assert torch.equal(large.test_set.x[:, :, 1::2, 1::2], small.test_set.x)


def test_split_counts_and_fractions():
    kept, held = split_indices(10, 3, seed=0)
    assert len(held) == 3 and sorted(torch.cat([kept, held]).tolist()) == list(range(10))
    assert len(split_indices(10, 0.2, seed=0)[1]) == 2
    assert len(split_indices(10, 4.0, seed=0)[1]) == 4  # a float count, as a CLI may parse it
    with pytest.raises(ValueError, match="hold out"):
        split_indices(10, 10, seed=0)


# ---- torchvision sources --------------------------------------------------------------------
@pytest.mark.parametrize("cls", [MNIST, FashionMNIST])
def test_mnist_family_reads_raw_idx(tmp_path, cls):
    arrays = write_mnist(tmp_path, cls.__name__)
    dm = cls(root=str(tmp_path), val_size=5, batch_size=8)
    assert (dm.data_shape, dm.num_classes, dm.num_bits) == ((1, 28, 28), 10, 8)
    dm.prepare_data()
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (15, 5, 10)
    x, y = gather(dm.test_dataloader())
    assert_batch(x, y, (1, 28, 28))
    expected = torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).unsqueeze(1).float() / 255
    assert torch.equal(x, expected)
    assert torch.equal(y, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"]).long())
    val = (dm.val_set.x * 255).round().to(torch.uint8)  # evaluation splits are final floats
    train = torch.cat([dm.train_set.x, val]).squeeze(1).numpy()
    assert sorted(i.tobytes() for i in train) == sorted(
        i.tobytes() for i in arrays["train-images-idx3-ubyte"]
    )


def test_cifar10_reads_real_format(tmp_path):
    batches = write_cifar10(tmp_path)
    dm = CIFAR10(root=str(tmp_path), val_size=0, batch_size=4)
    assert (dm.data_shape, dm.num_classes, dm.num_bits) == ((3, 32, 32), 10, 8)
    dm.prepare_data()
    dm.setup()
    assert dm.val_set is dm.test_set
    train = np.concatenate([batches[f"data_batch_{i}"]["data"] for i in range(1, 6)])
    assert torch.equal(dm.train_set.x, torch.from_numpy(train).view(15, 3, 32, 32))
    x, y = gather(dm.test_dataloader())
    assert_batch(x, y, (3, 32, 32))
    pixels = torch.from_numpy(batches["test_batch"]["data"]).view(-1, 3, 32, 32)
    assert torch.equal(x, pixels.float() / 255)
    assert y.tolist() == batches["test_batch"]["labels"]


def test_celeba_reads_real_format(tmp_path):
    write_celeba(tmp_path, partition=[0, 0, 0, 0, 1, 1, 2, 2])
    dm = CelebA(root=str(tmp_path), image_size=16, batch_size=2)
    assert (dm.data_shape, dm.num_classes, dm.num_bits) == ((3, 16, 16), 1, 8)
    dm.prepare_data()
    dm.setup()
    assert [len(s) for s in (dm.train_set, dm.val_set, dm.test_set)] == [4, 2, 2]
    x, y = gather(dm.train_dataloader())
    assert_batch(x, y, (3, 16, 16))
    assert torch.equal(y, torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize(
    "cls, files",
    [
        (MNIST, "train-images-idx3-ubyte"),
        (FashionMNIST, "t10k-labels-idx1-ubyte"),
        (CIFAR10, "data_batch_1"),
        (CelebA, "list_eval_partition.txt"),
    ],
)
def test_missing_dataset_is_one_clear_error(tmp_path, cls, files):
    dm = cls(root=str(tmp_path / "nowhere"))
    for step in (dm.prepare_data, dm.setup):
        with pytest.raises(DatasetNotFoundError) as info:
            step()
        message = str(info.value)
        assert str((tmp_path / "nowhere").resolve()) in message
        assert "download=True" in message and files in message and "\n" not in message


def test_torchvision_error_is_replaced_not_chained(tmp_path, monkeypatch):
    # Skip our own file check so torchvision meets the missing file and raises its RuntimeError.
    monkeypatch.setattr("genflow.data.torchvision_sets.require_files", lambda *args: None)
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "batches.meta").unlink()
    with pytest.raises(DatasetNotFoundError, match="batches.meta") as info:
        CIFAR10(root=str(tmp_path)).setup()
    assert info.value.__cause__ is None and info.value.__suppress_context__


# ---- ImageFolder ----------------------------------------------------------------------------
def test_image_folder_with_class_subfolders(tmp_path):
    images = {}
    for label, name in enumerate(["cat", "dog"]):
        for pixels in write_pngs(tmp_path / name, 5, seed=label):
            images[pixels.transpose(2, 0, 1).tobytes()] = label
    dm = ImageFolder(root=str(tmp_path), image_size=8, test_size=2, val_size=2, batch_size=3)
    assert (dm.data_shape, dm.num_classes, dm.num_bits) == ((3, 8, 8), 2, 8)
    dm.setup()
    assert [len(s) for s in (dm.train_set, dm.val_set, dm.test_set)] == [6, 2, 2]
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        x, y = gather(loader)
        assert_batch(x, y, (3, 8, 8))
        for image, label in zip((x * 255).round().to(torch.uint8), y, strict=True):
            assert images[image.numpy().tobytes()] == label  # exact pixels, right class


def test_image_folder_without_subfolders_is_one_class(tmp_path):
    write_pngs(tmp_path, 6, size=(6, 10))
    dm = ImageFolder(root=str(tmp_path), image_size=4, channels=1, test_size=2, val_size=0)
    assert (dm.data_shape, dm.num_classes) == ((1, 4, 4), 1)
    dm.setup()
    assert dm.val_set is dm.test_set and len(dm.train_set) == 4
    x, y = gather(dm.train_dataloader())
    assert_batch(x, y, (1, 4, 4))
    assert torch.equal(y, torch.zeros(4, dtype=torch.long))


def test_image_folder_missing(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        _ = ImageFolder(root=str(tmp_path / "nowhere")).num_classes
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path.resolve())):
        ImageFolder(root=str(tmp_path)).setup()


# ---- IDX ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "compress, name",
    [(False, "x-idx3-ubyte"), (True, "x-idx3-ubyte.gz"), (True, "gzipped-without-suffix")],
)
def test_read_idx_round_trip(tmp_path, compress, name):
    array = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = write_idx(tmp_path / name, array, compress)
    assert read_idx_header(path) == (torch.uint8, (5, 7, 3))
    assert torch.equal(read_idx(path), torch.from_numpy(array))


def test_read_idx_rejects_wrong_magic(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x00\x00\x08\x00" + bytes(16))  # zero dimensions
    with pytest.raises(IDXFormatError, match="magic number"):
        read_idx(path)
    path.write_bytes(b"PK\x03\x04" + bytes(16))
    with pytest.raises(IDXFormatError, match="0x504b0304"):
        read_idx(path)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_rejects_truncated_file(tmp_path, compress):
    array = np.zeros((4, 5, 5), dtype=np.uint8)
    full = write_idx(tmp_path / "full", array, compress).read_bytes()
    path = tmp_path / "cut"
    path.write_bytes(full[:-7] if compress else full[:-1])
    with pytest.raises(IDXFormatError, match=str(path)):
        read_idx(path)


def test_idx_datamodule_ranges_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    images = write_idx(tmp_path / "img.gz", rng.integers(0, 256, (30, 6, 5), dtype=np.uint8), True)
    labels = write_idx(tmp_path / "lab", np.arange(30, dtype=np.uint8) % 4)
    dm = IDX(str(images), str(labels), train_range=(0, 20), test_range=(20, 30), batch_size=7)
    assert (dm.data_shape, dm.num_classes, dm.num_bits) == ((1, 6, 5), 4, 8)
    dm.setup()
    assert len(dm.train_set) == 20 and dm.val_set is dm.test_set
    x, y = gather(dm.test_dataloader())
    assert_batch(x, y, (1, 6, 5))
    assert torch.equal(x, read_idx(images)[20:].unsqueeze(1).float() / 255)
    assert torch.equal(y, torch.arange(20, 30) % 4)
    assert IDX(str(images), train_range=(0, 20), test_range=(20, 30)).num_classes == 1


def test_idx_fails_at_construction(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="t10k-images-idx3-ubyte.gz"):
        IDX(str(tmp_path / "t10k-images-idx3-ubyte.gz"))
    path = write_idx(tmp_path / "small", np.zeros((10, 2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="train_range"):
        IDX(str(path))  # the default (0, 8000) does not fit 10 images


# ---- binarization ---------------------------------------------------------------------------
def test_dynamic_binarization():
    dm = Digits(binarize="dynamic", seed=3)
    assert dm.num_bits == 1
    dm.setup()
    loader = dm.train_dataloader()
    batch = dm.train_set.__getitems__(list(range(256)))
    first, second = loader.collate_fn(batch)[0], loader.collate_fn(batch)[0]
    assert set(first.unique().tolist()) <= {0.0, 1.0} and not torch.equal(first, second)
    mean = batch[0].float().mean() / 255
    assert abs(first.mean() - mean) < 0.02  # Bernoulli(x): the bits average to x

    again = Digits(binarize="dynamic", seed=3)
    plain = Digits(seed=3)
    val_x, _ = gather(dm.val_dataloader())
    assert torch.equal(val_x, gather(again.val_dataloader())[0])
    x_eval = gather(plain.val_dataloader())[0]  # float32 k/255, (N, 1, 8, 8)
    protocol = torch.bernoulli(x_eval, generator=torch.Generator().manual_seed(3))
    assert torch.equal(val_x, protocol)
    test_x, x_test = gather(dm.test_dataloader())[0], gather(plain.test_dataloader())[0]
    assert torch.equal(test_x, torch.bernoulli(x_test, generator=torch.Generator().manual_seed(3)))


def test_threshold_binarization():
    dm, plain = Digits(binarize="threshold"), Digits()
    assert dm.num_bits == 1
    x, ref = gather(dm.test_dataloader())[0], gather(plain.test_dataloader())[0]
    assert torch.equal(x, (ref > 0.5).float())
    x, _ = next(iter(dm.train_dataloader()))
    assert set(x.unique().tolist()) <= {0.0, 1.0}


def test_dynamic_binarization_of_files_is_fixed_per_item(tmp_path):
    write_pngs(tmp_path, 8)
    a = ImageFolder(root=str(tmp_path), image_size=8, test_size=4, binarize="dynamic")
    b = ImageFolder(root=str(tmp_path), image_size=8, test_size=4, binarize="dynamic")
    x = gather(a.test_dataloader())[0]
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(x, gather(b.test_dataloader())[0])


# ---- Toy2D ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(TOY2D))
def test_toy2d_is_finite_and_reproducible(name):
    x = sample_toy2d(name, 500, torch.Generator().manual_seed(0))
    assert x.shape == (500, 2) and x.dtype == torch.float32 and x.isfinite().all()
    assert x.abs().max() < 6 and x.std(0).min() > 0.3  # spread over the [-4, 4] box
    assert torch.equal(x, sample_toy2d(name, 500, torch.Generator().manual_seed(0)))
    assert not torch.equal(x, sample_toy2d(name, 500, torch.Generator().manual_seed(1)))


def test_eight_gaussians_modes_on_radius_two():
    x = sample_toy2d("8gaussians", 4000, torch.Generator().manual_seed(0))
    radius, angle = x.norm(dim=1), torch.atan2(x[:, 1], x[:, 0])
    assert (radius - 2).abs().max() < 0.25 and abs(radius.mean() - 2) < 0.01
    mode = (angle / (math.pi / 4)).round() % 8
    assert torch.bincount(mode.long(), minlength=8).min() > 400  # all 8 modes, about equal


def test_toy2d_datamodule():
    dm = Toy2D("checkerboard", num_train=300, num_val=50, num_test=60, seed=4)
    assert (dm.data_shape, dm.num_classes, dm.num_bits, dm.batch_size) == ((2,), 1, None, 256)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (256, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert [len(s) for s in (dm.train_set, dm.val_set, dm.test_set)] == [300, 50, 60]
    again = Toy2D("checkerboard", num_train=300, num_val=50, num_test=60, seed=4)
    assert torch.equal(gather(dm.test_dataloader())[0], gather(again.test_dataloader())[0])
    assert not torch.equal(dm.train_set.x[:50], dm.val_set.x)  # splits use different streams


# ---- loaders --------------------------------------------------------------------------------
def test_in_memory_loader_under_distributed_sampler():
    # What Lightning does under DDP: the same dataset and collate, a DistributedSampler.
    n = 24
    dataset = InMemoryDataset(torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1), torch.arange(n))
    seen = []
    for rank in (0, 1):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        loader = DataLoader(dataset, batch_size=5, sampler=sampler, collate_fn=BatchCollate())
        x, y = gather(loader)
        assert torch.equal((x.flatten() * 255).round().long(), y)  # each x arrives with its y
        seen.append(set(y.tolist()))
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(n))


def test_loader_settings():
    dm = Digits(batch_size=32, eval_batch_size=100, drop_last=True)
    train, val = dm.train_dataloader(), dm.val_dataloader()
    # the training loader batches through its resumable batch sampler
    batches = train.batch_sampler
    assert (batches.batch_size, val.batch_size, batches.drop_last, val.drop_last) == (
        32,
        100,
        True,
        False,
    )
    assert all(len(x) == 32 for x, _ in train)
    dm.setup()
    first = dm.train_set
    dm.setup("test")
    assert dm.train_set is first  # setup is idempotent


def test_trains_under_lightning():
    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(64, 1)

        def training_step(self, batch, _):
            x, _ = batch
            return self.net(x.flatten(1)).pow(2).mean()

        def validation_step(self, batch, _):
            self.log("val/loss", self.net(batch[0].flatten(1)).pow(2).mean())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    trainer = pl.Trainer(
        fast_dev_run=2,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Tiny(), datamodule=Digits(batch_size=16, binarize="dynamic"))


def test_cli_signature_reaches_base_arguments():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(MNIST, "data")
    cfg = parser.parse_args(
        ["--data.batch_size=4", "--data.binarize=dynamic", "--data.val_size=0"]
    )
    assert (cfg.data.batch_size, cfg.data.binarize, cfg.data.root) == (4, "dynamic", "data")
    assert cfg.data.download is False and cfg.data.hflip is False
    assert parser.parse_args(["--data.hflip=true"]).data.hflip is True


# ---- the per-batch transform on the training device -----------------------------------------
def test_transform_flips_whole_images_per_example():
    x = torch.randint(0, 256, (64, 3, 4, 5), dtype=torch.uint8)  # asymmetric images
    out = transform_images(x, "none", hflip=True)
    assert out.dtype == torch.float32 and torch.equal(out * 255, (out * 255).round())
    same = (out == x / 255).flatten(1).all(1)  # (64,)
    mirrored = (out == x.flip(-1) / 255).flatten(1).all(1)
    assert (same ^ mirrored).all()  # each image whole: as it was or its left-right mirror
    assert 16 < mirrored.sum() < 48  # a coin per image, not one for the batch
    assert not torch.equal(transform_images(x, "none", hflip=True), out)  # fresh coins
    assert torch.equal(transform_images(x), x / 255)  # no flip unless asked


def test_transform_binarizes_and_leaves_float_batches():
    x = torch.full((2000, 1, 2, 2), 64, dtype=torch.uint8)
    bits = transform_images(x, "dynamic")
    assert set(bits.unique().tolist()) == {0.0, 1.0}
    assert abs(bits.mean() - 64 / 255) < 0.02  # Bernoulli(k / 255)
    assert torch.equal(transform_images(x, "threshold"), torch.zeros(2000, 1, 2, 2))
    final = torch.rand(3, 1, 2, 2)  # an evaluation batch converted at setup, or 2D points
    assert transform_images(final, "dynamic", hflip=True) is final


class Recorder(pl.LightningModule):
    """Records what the loader yields and what the steps receive; learns nothing."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(1, 1)
        self.raw, self.train_x, self.val_x = [], [], []

    def on_before_batch_transfer(self, batch, dataloader_idx):
        self.raw.append(batch[0])  # the DataModule leaves this hook to the model
        return batch

    def training_step(self, batch, _):
        self.train_x.append(batch[0])
        return self.net(batch[0].flatten(1)[:, :1].to(self.dtype)).mean()

    def validation_step(self, batch, _):
        self.val_x.append(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def fit_recorder(dm, **trainer_args) -> Recorder:
    model = Recorder()
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=3, accelerator="cpu", logger=False,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        num_sanity_val_steps=0, **trainer_args,
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    return model


def test_trainer_batches_are_transformed_on_the_device_by_the_hook():
    dm = Digits(batch_size=32, binarize="dynamic", hflip=True)
    model = fit_recorder(dm)
    raw = model.raw[:3]  # the three training batches, as the loader yields them
    assert all(x.dtype == torch.uint8 for x in raw)
    for x, out in zip(raw, model.train_x, strict=True):
        assert out.dtype == torch.float32 and out.device == model.device
        assert set(out.unique().tolist()) <= {0.0, 1.0}
        assert abs(out.mean() - x.float().mean() / 255) < 0.05  # Bernoulli(k / 255)
    # Evaluation batches: the split's fixed seeded bits, never flipped nor redrawn.
    assert torch.equal(torch.cat(model.val_x), dm.val_set.x)
    assert torch.equal(dm.val_set.x, gather(Digits(binarize="dynamic").val_dataloader())[0])
    # Outside the run the same DataModule's loader transforms in its collate again.
    x, _ = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.float32 and set(x.unique().tolist()) <= {0.0, 1.0}


def test_trainer_flips_on_the_device():
    dm = Digits(batch_size=64, hflip=True, seed=1)
    model = fit_recorder(dm)
    flipped = 0
    for x, out in zip(model.raw[:3], model.train_x, strict=True):
        same = (out == x / 255).flatten(1).all(1)
        mirrored = (out == x.flip(-1) / 255).flatten(1).all(1)
        assert (same | mirrored).all()
        flipped += (mirrored & ~same).sum()  # symmetric digits count as both
    assert 48 < flipped < 144  # about half of 192


def test_hook_output_takes_the_true_half_precision():
    model = fit_recorder(Digits(batch_size=16), precision="bf16-true")
    assert model.raw[0].dtype == torch.uint8 and model.train_x[0].dtype == torch.bfloat16
    assert torch.equal(model.train_x[0], (model.raw[0] / 255).to(torch.bfloat16))


def test_loader_outside_a_trainer_transforms_in_its_collate():
    dm = Digits(batch_size=16, binarize="dynamic", hflip=True)
    loader = dm.train_dataloader()
    assert isinstance(loader.collate_fn, BatchCollate) and loader.collate_fn.hflip
    x, y = next(iter(loader))
    assert x.dtype == torch.float32 and set(x.unique().tolist()) <= {0.0, 1.0}
    x, y = dm.transform_batch(dm.train_set.__getitems__(list(range(16))), train=False)
    assert torch.equal(x, dm.train_set.x[:16] / 255)  # evaluation: no bits, no flips
    assert keep_batch((x, y)) == (x, y)


def test_the_training_loader_restarts_an_epoch_at_the_batch_it_stopped():
    """What Lightning checkpoints mid-epoch: the epoch's shuffle seed and the batches handed
    out. A fresh loader given that state yields exactly the rest of the interrupted epoch,
    and the next epoch shuffles afresh."""
    dm = Digits(batch_size=100)
    torch.manual_seed(0)
    loader = dm.train_dataloader()
    epoch = iter(loader)
    seen = [next(epoch)[1] for _ in range(3)]
    state = loader.state_dict()
    assert state["batches"] == 3 and isinstance(state["seed"], int)
    rest = [y for _, y in epoch]

    resumed = dm.train_dataloader()
    resumed.load_state_dict(state)
    again = [y for _, y in resumed]
    assert len(again) == len(rest) == len(loader) - 3
    assert all(torch.equal(a, b) for a, b in zip(again, rest, strict=True))
    assert not torch.equal(torch.cat(seen), torch.cat(again)[: len(torch.cat(seen))])
    assert resumed.state_dict()["batches"] == len(loader)
    following = torch.cat([y for _, y in resumed])  # a new epoch: all of it, newly shuffled
    assert len(following) == len(dm.train_set)
