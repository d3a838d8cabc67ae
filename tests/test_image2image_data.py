"""genflow.data.image2image: paired, unpaired and multi-domain images, from PNG folders written
here, CelebA in torchvision's format, and the domains generated offline from the digits."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from formats import write_celeba, write_celeba_attributes, write_idx, write_png
from PIL import Image
from torch.utils.data import DistributedSampler

from genflow.data import (
    CelebAAttributes,
    ColoredDigits,
    DatasetNotFoundError,
    EdgesToDigits,
    GrayToColorDigits,
    MultiDomainImages,
    PairedImages,
    UnpairedImages,
)
from genflow.data.base import InMemoryDataset
from genflow.data.image2image import PALETTE, UnpairedBatchSampler, UnpairedDataset


def gather(loader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader, strict=True)
    return torch.cat(xs), torch.cat(ys)


def assert_images(x: torch.Tensor, shape: tuple[int, ...]) -> None:
    """float32 k/255 images of `shape`."""
    assert x.dtype == torch.float32 and x.shape[1:] == shape
    assert 0 <= x.min() and x.max() <= 1
    assert torch.equal(x * 255, (x * 255).round())


def levels(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().long()


def sobel_edges(y: torch.Tensor) -> torch.Tensor:
    """The test's own Sobel: |(Gx, Gy)| of float k/255 gray images, scaled to peak 255."""
    v = levels(y).double()  # (N, 1, H, W)
    gx = torch.tensor([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=torch.double)
    g = F.conv2d(v, torch.stack([gx, gx.T]).unsqueeze(1), padding=1).norm(dim=1, keepdim=True)
    peak = g.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    return g * 255 / peak


# ---- generated domains ----------------------------------------------------------------------
def test_edges_to_digits_inputs_are_the_sobel_edges_of_their_targets():
    dm = EdgesToDigits(batch_size=64)
    assert (dm.data_shape, dm.target_shape, dm.num_classes, dm.num_bits) == (
        (1, 32, 32), (1, 32, 32), 1, 8,
    )  # fmt: skip
    x, y = gather(dm.test_dataloader())
    assert_images(x, (1, 32, 32))
    assert_images(y, (1, 32, 32))
    assert len(x) == len(dm.test_set) == 359
    assert (levels(x) - sobel_edges(y)).abs().max() <= 0.5 + 1e-6  # round(Sobel), per image
    assert (levels(x).amax(dim=(1, 2, 3)) == 255).all()  # every digit has an edge at 255
    assert y.std() > 0.2  # the targets are digits, not blank


def test_edges_to_digits_training_pairs_flip_as_one():
    dm = EdgesToDigits(batch_size=256, size=16, hflip=True)
    x, y = gather(dm.train_dataloader())
    assert_images(x, (1, 16, 16))
    assert (levels(x) - sobel_edges(y)).abs().max() <= 0.5 + 1e-6  # a flip kept each pair
    originals = {t.numpy().tobytes() for t in dm.train_set.b.x}
    mirrored = sum(t.numpy().tobytes() not in originals for t in levels(y).to(torch.uint8))
    assert 0.3 * len(y) < mirrored < 0.7 * len(y)  # about half the pairs were mirrored


def test_generated_domains_are_fixed_by_the_seed_and_read_idx_files(tmp_path):
    a, b, c = EdgesToDigits(), EdgesToDigits(), EdgesToDigits(seed=1)
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.test_set.a.x, b.test_set.a.x) and torch.equal(
        a.val_set.b.x, b.val_set.b.x
    )
    assert not torch.equal(a.test_set.b.x, c.test_set.b.x)
    pixels = np.random.default_rng(0).integers(0, 256, (30, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / "images-idx3-ubyte", pixels)
    dm = ColoredDigits(images=str(path), size=16, test_size=10, val_size=5, batch_size=4)
    dm.setup()
    assert [len(s) for s in (dm.train_set, dm.val_set, dm.test_set)] == [15, 5, 10]
    assert dm.train_set.x.shape == (15, 3, 16, 16)


def test_generated_sizes_must_be_powers_of_two():
    for bad in (8, 24, 48):
        with pytest.raises(ValueError, match=f"power of two >= 16.*got {bad}"):
            EdgesToDigits(size=bad)
    with pytest.raises(DatasetNotFoundError, match="nothing.idx"):
        EdgesToDigits(images="/nowhere/nothing.idx")


def chroma(x: torch.Tensor) -> torch.Tensor:
    """Each lit pixel's colour scaled to peak 255: (N, 3, H, W), NaN where the pixel is dark."""
    v = levels(x).double()
    peak = v.amax(dim=1, keepdim=True)
    return torch.where(peak > 60, v * 255 / peak, torch.nan)


def test_colored_digits_have_their_domain_colour():
    dm = ColoredDigits(num_colors=5, batch_size=128)
    assert (dm.data_shape, dm.num_classes, dm.multi_label) == ((3, 32, 32), 5, False)
    x, y = gather(dm.test_dataloader())
    assert_images(x, (3, 32, 32))
    assert y.dtype == torch.int64
    assert set(y.tolist()) == set(range(5))  # all k domains present
    colour = torch.tensor(PALETTE, dtype=torch.double)[y].view(-1, 3, 1, 1)
    error = (chroma(x) - colour).abs().nan_to_num(0)
    assert error.max() < 3  # every lit pixel is the domain colour, up to the rounding of dim ones
    assert all((y == j).sum() > 40 for j in range(5))  # about 359 / 5 each
    with pytest.raises(ValueError, match="at least two domains"):
        ColoredDigits(num_colors=1)
    with pytest.raises(ValueError, match=r"num_colors must be in \[1, 8\]"):
        ColoredDigits(num_colors=9)


def test_gray_to_color_digits_are_disjoint_gray_and_coloured_domains():
    dm = GrayToColorDigits(batch_size=256)
    assert (dm.data_shape, dm.target_shape, dm.num_classes) == ((3, 32, 32), (3, 32, 32), 1)
    dm.setup()
    sets = (dm.train_set, dm.val_set, dm.test_set)
    a = torch.cat([dm.train_set.a.x] + [s.a.x[s.pairs[:, 0].unique()] for s in sets[1:]])
    b = torch.cat([dm.train_set.b.x] + [s.b.x[s.pairs[:, 1].unique()] for s in sets[1:]])
    assert len(a) + len(b) == 1797  # every digit once, in one domain
    assert (a == a[:, :1]).all()  # A: gray replicated to RGB
    gray_b = b.amax(dim=1, keepdim=True)  # each palette colour has a channel at 255
    assert not {t.numpy().tobytes() for t in a[:, :1]} & {t.numpy().tobytes() for t in gray_b}
    colours = torch.tensor(PALETTE, dtype=torch.double).view(1, -1, 3, 1, 1)
    error = (chroma(b.double() / 255).unsqueeze(1) - colours).abs().nan_to_num(0)
    best = error.amax(dim=(2, 3, 4)).min(dim=1)  # the nearest palette colour of each image
    assert best.values.max() < 3 and len(best.indices.unique()) == len(PALETTE)


# ---- the unpaired stream --------------------------------------------------------------------
def write_ids(folder, ids, size: int = 4) -> None:
    """PNGs whose every pixel is the image's id, so a batch says which images it holds."""
    for i in ids:
        write_png(folder / f"{i:03d}.png", np.full((size, size, 3), i, dtype=np.uint8))


def ids(x: torch.Tensor) -> list[int]:
    return levels(x[:, 0, 0, 0]).tolist()


@pytest.fixture
def cyclegan(tmp_path):
    """trainA: ids 10-15, trainB: 100-103, testA: 20-24, testB: 200-201."""
    for name, first, n in (
        ("trainA", 10, 6),
        ("trainB", 100, 4),
        ("testA", 20, 5),
        ("testB", 200, 2),
    ):
        write_ids(tmp_path / name, range(first, first + n))
    return tmp_path


def test_unpaired_epoch_covers_both_domains_with_independent_pairs(cyclegan):
    dm = UnpairedImages(root=str(cyclegan), size=None, batch_size=2)
    assert (dm.data_shape, dm.target_shape, dm.num_classes, dm.num_bits) == (
        (3, 4, 4), (3, 4, 4), 1, 8,
    )  # fmt: skip
    loader = dm.train_dataloader()
    epochs = [gather(loader) for _ in range(6)]
    for x, y in epochs:
        assert_images(x, (3, 4, 4))
        assert_images(y, (3, 4, 4))
        assert len(x) == 6  # max(len A, len B)
        assert sorted(ids(x)) == list(range(10, 16))  # every A once
        assert sorted(set(ids(y))) == list(range(100, 104))  # every B, two of them twice
    pairings = {tuple(sorted(zip(ids(x), ids(y), strict=True))) for x, y in epochs}
    assert len(pairings) > 1  # partners are redrawn every epoch
    orders = {tuple(ids(x)) for x, _ in epochs}
    assert len(orders) > 1


def test_unpaired_partner_is_not_a_function_of_the_a_order():
    dm = GrayToColorDigits(batch_size=300)
    torch.manual_seed(0)
    loader = dm.train_dataloader()
    a_index = {t.numpy().tobytes(): i for i, t in enumerate(dm.train_set.a.x)}
    b_index = {t.numpy().tobytes(): i for i, t in enumerate(dm.train_set.b.x)}
    n_a, n_b = len(a_index), len(b_index)
    assert (n_a, n_b) == (646, 647)
    partners = []
    for _ in range(2):
        x, y = (levels(t).to(torch.uint8) for t in gather(loader))
        a = torch.tensor([a_index[t.numpy().tobytes()] for t in x])
        b = torch.tensor([b_index[t.numpy().tobytes()] for t in y])
        assert len(a) == n_b and sorted(b.tolist()) == list(range(n_b))  # a permutation of B
        assert set(a.tolist()) == set(range(n_a))  # every A, one of them twice
        assert abs(torch.corrcoef(torch.stack([a.double(), b.double()]))[0, 1]) < 0.15
        partners.append(dict(zip(a.tolist(), b.tolist(), strict=True)))
    same = sum(partners[0][a] == partners[1][a] for a in range(n_a))
    assert same < 10  # of 646: fresh partners each epoch, as chance would give (about 1)


def test_unpaired_stream_is_determined_by_the_seed_with_or_without_workers():
    """Persistent workers hold no per-epoch state: the pairs come from the main process."""
    runs = []
    for seed, workers in ((0, 0), (0, 1), (1, 0)):
        torch.manual_seed(seed)
        loader = GrayToColorDigits(batch_size=200, num_workers=workers).train_dataloader()
        runs.append([gather(loader) for _ in range(2)])  # two epochs
    for (x, y), (x2, y2) in zip(runs[0], runs[1], strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(runs[0][0][1], runs[2][0][1])
    assert not torch.equal(runs[1][0][1], runs[1][1][1])  # the workers' second epoch is new


def test_unpaired_stream_resumes_mid_epoch_exactly(cyclegan):
    """Stop after 2 of 6 batches, restore the saved loader state into a fresh DataModule: the
    rest of the epoch (A and its B partners) is what the uninterrupted loader yields."""
    dm = UnpairedImages(root=str(cyclegan), size=None, batch_size=1)
    torch.manual_seed(3)
    loader = dm.train_dataloader()
    epoch = iter(loader)
    seen = [next(epoch) for _ in range(2)]
    state = loader.state_dict()
    rest = list(epoch)
    next_epoch = gather(loader)

    torch.manual_seed(99)  # the resumed process's RNG is elsewhere: only the state matters
    resumed = UnpairedImages(root=str(cyclegan), size=None, batch_size=1).train_dataloader()
    resumed.load_state_dict(state)
    again = list(resumed)
    assert len(again) == len(rest) == 4
    for (x, y), (x2, y2) in zip(rest, again, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    pairs = [(ids(x)[0], ids(y)[0]) for x, y in seen + again]
    assert sorted(a for a, _ in pairs) == list(range(10, 16))  # one whole epoch, no repeats
    assert len(gather(resumed)[0]) == 6 and len(next_epoch[0]) == 6


def test_unpaired_ranks_read_disjoint_a_and_b():
    a = torch.arange(8, dtype=torch.uint8).view(8, 1, 1, 1)
    b = torch.arange(100, 108, dtype=torch.uint8).view(8, 1, 1, 1)
    dataset = UnpairedDataset(
        InMemoryDataset(a, a.view(-1).long()), InMemoryDataset(b, b.view(-1).long())
    )
    seen_a, seen_b = [], []
    for rank in (0, 1):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(1)
        for batch in UnpairedBatchSampler(sampler, batch_size=3, drop_last=False):
            x, y = dataset.__getitems__(batch)
            seen_a += x.view(-1).tolist()
            seen_b += y.view(-1).tolist()
    assert sorted(seen_a) == list(range(8)) and sorted(seen_b) == list(range(100, 108))


def test_unpaired_evaluation_pairs_are_fixed(cyclegan):
    dm = UnpairedImages(root=str(cyclegan), size=8, batch_size=2)
    x, y = gather(dm.val_dataloader())
    assert_images(x, (3, 8, 8))
    assert ids(x) == [20, 21, 22, 23, 24] and ids(y) == [200, 201, 200, 201, 200]
    assert dm.val_set is dm.test_set  # val_size=0: CycleGAN validates on its test split
    x2, y2 = gather(dm.test_dataloader())
    assert torch.equal(x, x2) and torch.equal(y, y2)
    held = UnpairedImages(root=str(cyclegan), size=None, val_size=2)
    held.setup()
    assert (len(held.train_set.a), len(held.train_set.b), len(held.val_set)) == (4, 2, 2)


class Recorder(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(1, 1)
        self.raw, self.seen = [], []

    def on_before_batch_transfer(self, batch, dataloader_idx):
        self.raw.append(batch)
        return batch

    def training_step(self, batch, _):
        self.seen.append(batch)
        return self.net(batch[0].flatten(1)[:, :1]).mean()

    def validation_step(self, batch, _):
        pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_trainer_receives_float_images_transformed_by_the_hook():
    dm = GrayToColorDigits(batch_size=16, hflip=True)
    model = Recorder()
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=2, limit_val_batches=1, accelerator="cpu",
        logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    raw = model.raw[:2]
    assert all(x.dtype == y.dtype == torch.uint8 for x, y in raw)  # uint8 through the loader
    for (x, y), (fx, fy) in zip(raw, model.seen, strict=True):
        assert_images(fx, (3, 32, 32))
        assert_images(fy, (3, 32, 32))
        for u, f in ((x, fx), (y, fy)):
            same = (f == u / 255).flatten(1).all(1)
            mirrored = (f == u.flip(-1) / 255).flatten(1).all(1)
            assert (same | mirrored).all()


# ---- folders --------------------------------------------------------------------------------
def side_by_side(folder, n: int, h: int = 4, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        write_png(folder / f"{i}.png", rng.integers(0, 256, (h, 2 * h, 3), dtype=np.uint8))
        for i in range(n)
    ]


def as_set(x: torch.Tensor) -> set[bytes]:
    return {t.numpy().tobytes() for t in levels(x).to(torch.uint8)}


def test_paired_side_by_side_split_folders(tmp_path):
    train = side_by_side(tmp_path / "train", 6)
    test = side_by_side(tmp_path / "test", 3, seed=1)
    dm = PairedImages(root=str(tmp_path), size=None, batch_size=4, val_size=2)
    assert (dm.data_shape, dm.target_shape, dm.num_classes, dm.num_bits) == (
        (3, 4, 4), (3, 4, 4), 1, 8,
    )  # fmt: skip
    dm.setup()
    assert [len(s) for s in (dm.train_set, dm.val_set, dm.test_set)] == [4, 2, 3]
    x, y = gather(dm.test_dataloader())
    assert_images(x, (3, 4, 4))
    assert_images(y, (3, 4, 4))
    for i, pixels in enumerate(test):  # left half the input, right half its target
        assert torch.equal(levels(x[i]), torch.from_numpy(pixels[:, :4]).permute(2, 0, 1).long())
        assert torch.equal(levels(y[i]), torch.from_numpy(pixels[:, 4:]).permute(2, 0, 1).long())
    x, y = gather(dm.train_dataloader())
    pairs = {
        p[:, :4].transpose(2, 0, 1).tobytes(): p[:, 4:].transpose(2, 0, 1).tobytes() for p in train
    }
    for s, t in zip(levels(x).to(torch.uint8), levels(y).to(torch.uint8), strict=True):
        assert pairs[s.numpy().tobytes()] == t.numpy().tobytes()
    back = PairedImages(root=str(tmp_path), size=None, channels=1, direction="BtoA", val_size=0)
    x, y = gather(back.test_dataloader())
    assert (back.data_shape, x.shape[1:], y.shape[1:]) == ((1, 4, 4), (1, 4, 4), (3, 4, 4))
    for i, pixels in enumerate(test):  # BtoA: the right half, in gray, is the input
        right_gray = np.array(Image.fromarray(pixels[:, 4:]).convert("L"))
        assert torch.equal(levels(x[i, 0]), torch.from_numpy(right_gray).long())
        assert torch.equal(levels(y[i]), torch.from_numpy(pixels[:, :4]).permute(2, 0, 1).long())
    small = PairedImages(root=str(tmp_path), size=2, val_size=0)
    assert gather(small.test_dataloader())[1].shape[1:] == small.target_shape == (3, 2, 2)


def test_paired_a_b_folders_matched_by_name(tmp_path):
    rng = np.random.default_rng(0)
    names = ["cat.png", "dog.png", "eel.png", "fox.png", "gnu.png"]
    truth = {}
    for name in names:
        a = write_png(tmp_path / "A" / name, rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        b = write_png(tmp_path / "B" / name, rng.integers(0, 256, (8, 8), dtype=np.uint8))
        truth[a.transpose(2, 0, 1).tobytes()] = b.tobytes()
    dm = PairedImages(root=str(tmp_path), size=8, target_channels=1, test_size=1, val_size=1)
    assert dm.target_shape == (1, 8, 8)
    dm.setup()
    assert [len(s) for s in (dm.train_set, dm.val_set, dm.test_set)] == [3, 1, 1]
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        for x, y in zip(*gather(loader), strict=True):
            assert (
                truth[levels(x).to(torch.uint8).numpy().tobytes()]
                == levels(y).to(torch.uint8).numpy().tobytes()
            )


def test_paired_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"nowhere.*train/.*test/ or val/"):
        PairedImages(root=str(tmp_path / "nowhere")).setup()
    (tmp_path / "only_train" / "train").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="test/ or val/"):
        PairedImages(root=str(tmp_path / "only_train")).setup()
    for name in ("a.png", "b.png", "c.png"):
        write_png(tmp_path / "ab" / "A" / name, np.zeros((4, 4), np.uint8))
    for name in ("a.png", "x.png", "y.png", "z.png"):
        write_png(tmp_path / "ab" / "B" / name, np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"2 are only in A \(b.png, c.png\).*3 only in B \(x.png"):
        PairedImages(root=str(tmp_path / "ab"), size=4).setup()
    write_png(tmp_path / "odd" / "bad.png", np.zeros((4, 9, 3), np.uint8))
    dm = PairedImages(root=str(tmp_path / "odd"), size=4, test_size=0, val_size=0)
    with pytest.raises(ValueError, match=r"bad.png into input and target: it is 9x4.*\(8x4\)"):
        next(iter(dm.train_dataloader()))


def test_unpaired_errors(tmp_path, cyclegan):
    with pytest.raises(DatasetNotFoundError, match=r"trainA/, trainB/, testA/, testB/"):
        UnpairedImages(root=str(tmp_path / "nowhere")).setup()
    (cyclegan / "trainB" / "100.png").rename(cyclegan / "100.png")
    for path in (cyclegan / "trainB").iterdir():
        path.unlink()
    with pytest.raises(DatasetNotFoundError, match=r"trainB.*image files"):
        UnpairedImages(root=str(cyclegan)).setup()
    write_png(cyclegan / "trainB" / "big.png", np.zeros((6, 6, 3), np.uint8))
    with pytest.raises(ValueError, match=r"not all one square size.*4x4.*6x6 in trainB.*size=N"):
        _ = UnpairedImages(root=str(cyclegan), size=None).data_shape
    with pytest.raises(ValueError, match="binarize='dynamic' is not supported"):
        UnpairedImages(root=str(cyclegan), binarize="dynamic")


def test_multi_domain_images(tmp_path):
    truth = {}
    for label, name in enumerate(["autumn", "spring", "winter"]):
        rng = np.random.default_rng(label)
        for i in range(4):
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            truth[write_png(tmp_path / name / f"{i}.png", pixels).transpose(2, 0, 1).tobytes()] = (
                label
            )
    dm = MultiDomainImages(root=str(tmp_path), size=None, test_size=3, val_size=0, batch_size=5)
    assert (dm.data_shape, dm.num_classes, dm.multi_label, dm.num_bits) == ((3, 8, 8), 3, False, 8)
    assert dm.domains == ["autumn", "spring", "winter"]
    for loader in (dm.train_dataloader(), dm.test_dataloader()):
        x, y = gather(loader)
        assert_images(x, (3, 8, 8))
        assert y.dtype == torch.int64
        for image, label in zip(levels(x).to(torch.uint8), y, strict=True):
            assert truth[image.numpy().tobytes()] == label  # exact pixels, right domain
    small = MultiDomainImages(root=str(tmp_path), size=4, test_size=3)
    assert gather(small.train_dataloader())[0].shape[1:] == (3, 4, 4)


def test_multi_domain_errors(tmp_path):
    write_png(tmp_path / "one" / "only" / "0.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(
        ValueError, match=r"at least two domains.*holds 1 domain subfolder\(s\) \(only\)"
    ):
        _ = MultiDomainImages(root=str(tmp_path / "one")).num_classes
    write_png(tmp_path / "flat" / "0.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"holds 0 domain subfolder\(s\) \(none\)"):
        MultiDomainImages(root=str(tmp_path / "flat")).setup()
    with pytest.raises(DatasetNotFoundError, match="nowhere.*one subfolder per domain"):
        _ = MultiDomainImages(root=str(tmp_path / "nowhere")).num_classes
    write_png(tmp_path / "two" / "a" / "0.png", np.zeros((4, 4, 3), np.uint8))
    write_png(tmp_path / "two" / "b" / "0.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"4x4 in a \(0.png\); 8x8 in b \(0.png\)"):
        _ = MultiDomainImages(root=str(tmp_path / "two"), size=None).data_shape
    assert MultiDomainImages(root=str(tmp_path / "two"), size=8).data_shape == (3, 8, 8)


# ---- CelebA attributes ----------------------------------------------------------------------
NAMES = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"] + [f"a{i}" for i in range(35)]


def test_celeba_attribute_domains(tmp_path):
    write_celeba(tmp_path, partition=[0, 0, 0, 0, 1, 1, 2, 2])
    values = np.random.default_rng(0).choice([-1, 1], size=(8, 40))
    write_celeba_attributes(tmp_path, NAMES, values)
    dm = CelebAAttributes(
        attributes=["Male", "Blond_Hair"], root=str(tmp_path), image_size=16, batch_size=8
    )
    assert (dm.data_shape, dm.num_classes, dm.multi_label, dm.num_bits) == (
        (3, 16, 16),
        2,
        True,
        8,
    )
    dm.setup()
    x, y = gather(dm.train_dataloader())
    assert_images(x, (3, 16, 16))
    assert y.dtype == torch.float32 and y.shape == (4, 2)
    expected = torch.from_numpy((values[:4][:, [3, 1]] + 1) // 2).float()  # {-1, 1} -> {0, 1}
    assert torch.equal(y.sort(0).values, expected.sort(0).values)  # shuffled rows, same values
    _, y_test = gather(dm.test_dataloader())
    assert torch.equal(y_test, torch.from_numpy((values[6:][:, [3, 1]] + 1) // 2).float())
    assert CelebAAttributes(root=str(tmp_path)).num_classes == 5  # StarGAN's five


def test_celeba_unknown_attribute_lists_the_valid_ones(tmp_path):
    write_celeba(tmp_path, partition=[0, 0, 1, 1, 2, 2])
    write_celeba_attributes(tmp_path, NAMES, np.ones((6, 40), dtype=int))
    dm = CelebAAttributes(attributes=["Male", "Blonde_Hair"], root=str(tmp_path))
    with pytest.raises(
        ValueError, match=r"Unknown CelebA attribute\(s\) Blonde_Hair;.*Blond_Hair, Brown_Hair"
    ):
        dm.setup()


def test_cli_signature_reaches_every_argument():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(GrayToColorDigits, "data")
    cfg = parser.parse_args(["--data.size=16", "--data.num_colors=3", "--data.batch_size=4"])
    assert (cfg.data.size, cfg.data.num_colors, cfg.data.batch_size) == (16, 3, 4)
    assert cfg.data.images is None and cfg.data.test_size == 0.2 and cfg.data.hflip is False
