"""Image-to-image data: paired, unpaired and multi-domain images, from folders or generated.

Every module yields `(x, y)` batches like the rest of genflow, images 8-bit uint8 in memory and
float32 k/255 once transformed (by `transform_batch`, on the device under a Trainer):

- paired (`PairedImages`, `EdgesToDigits`): `x` the input image, `y` its target image;
- unpaired (`UnpairedImages`, `GrayToColorDigits`): `x` an image of domain A, `y` an image of
  domain B drawn independently of it;
- multi-domain (`MultiDomainImages`, `ColoredDigits`, `CelebAAttributes`): `x` an image, `y` its
  int64 domain, or for CelebA the float 0/1 vector of the selected attributes.

Paired and unpaired modules describe the target through `target_shape` next to `data_shape`.

The unpaired training stream: an epoch visits index k of `range(max(len A, len B))` in the
shuffled order of the resumable loader; k stands for A image k mod len A and B image
perm_B[k mod len B]. perm_B is a fresh permutation of B every epoch, drawn by the batch sampler
(`UnpairedBatchSampler`) from a generator seeded by the epoch seed that `ResumableDataLoader`
already draws from the global RNG and checkpoints; a resumed epoch rebuilds the same A order and
the same perm_B from that one saved seed, so it needs no state of its own. The batch sampler
hands `(a, b)` index pairs to the dataset, so worker processes hold no per-epoch state.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler, RandomSampler

from genflow.data.base import (
    Batch,
    Binarize,
    ImageDataModule,
    InMemoryDataset,
    ResumableBatchSampler,
    ResumableDataLoader,
    held_out_count,
    missing_data_error,
    random_hflip,
    split_indices,
    to_unit,
)
from genflow.data.digits import digits_uint8
from genflow.data.folder import IMAGE_EXTENSIONS, ImageFiles, ImageFolder, LoadImage, list_images
from genflow.data.idx import read_idx
from genflow.data.torchvision_sets import CelebA

# Fixed RGB colours of the generated colour domains, in domain order.
PALETTE = (
    (255, 0, 0),  # red
    (0, 255, 0),  # green
    (0, 0, 255),  # blue
    (255, 255, 0),  # yellow
    (255, 0, 255),  # magenta
    (0, 255, 255),  # cyan
    (255, 128, 0),  # orange
    (128, 0, 255),  # violet
)
# StarGAN's CelebA domains (Choi et al., 2018, arXiv:1711.09020, Sec. 4.2).
STARGAN_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


# ---- batch transform of image targets --------------------------------------------------------
def transform_pair(batch: Batch, paired: bool, hflip: bool) -> Batch:
    """uint8 `(x, y)` images -> float32 k/255, with an optional random left-right flip.

    A paired example is flipped as one (input and target mirror together, as pix2pix jitters
    them); unpaired images get coins of their own. Float batches (evaluation splits converted at
    setup) pass unchanged.
    """
    x, y = batch
    if hflip and paired and x.dtype == y.dtype == torch.uint8:
        xy = random_hflip(torch.cat([x, y], dim=1))  # (B, C_in + C_out, H, W): one coin each
        x, y = xy[:, : x.shape[1]], xy[:, x.shape[1] :]
    elif hflip:
        x = random_hflip(x) if x.dtype == torch.uint8 else x
        y = random_hflip(y) if y.dtype == torch.uint8 else y
    return to_unit(x), to_unit(y)


class PairCollate:
    """The collate of image-target loaders outside a Trainer (a class, so workers can pickle)."""

    def __init__(self, paired: bool, hflip: bool) -> None:
        self.paired, self.hflip = paired, hflip

    def __call__(self, batch: Batch) -> Batch:
        return transform_pair(batch, self.paired, self.hflip)


# ---- datasets of image pairs -----------------------------------------------------------------
def _images(source: Dataset, indices: Sequence[int]) -> Tensor:
    """The stacked images of `source` (an `InMemoryDataset` or `ImageFiles`) at `indices`."""
    return source.__getitems__(list(indices))[0]


def _image_source(x: Tensor) -> InMemoryDataset:
    return InMemoryDataset(x, torch.zeros(len(x), dtype=torch.long))


class PairedDataset(Dataset):
    """Example k is image `pairs[k, 0]` of `a` with image `pairs[k, 1]` of `b` (k and k when
    `pairs` is None); `a` and `b` are `InMemoryDataset` or `ImageFiles` sources of images."""

    def __init__(self, a: Dataset, b: Dataset, pairs: Tensor | None = None) -> None:
        if pairs is None and len(a) != len(b):
            raise ValueError(f"{len(a)} inputs but {len(b)} targets.")
        self.a, self.b, self.pairs = a, b, pairs

    def __len__(self) -> int:
        return len(self.a) if self.pairs is None else len(self.pairs)

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        if self.pairs is None:
            return _images(self.a, indices), _images(self.b, indices)
        pairs = self.pairs[torch.as_tensor(indices, dtype=torch.long)]  # (B, 2)
        return _images(self.a, pairs[:, 0].tolist()), _images(self.b, pairs[:, 1].tolist())

    def __getitem__(self, index: int) -> Batch:
        x, y = self.__getitems__([index])
        return x[0], y[0]

    def for_eval(self, mode: Binarize, seed: int) -> PairedDataset:
        """Sources in memory converted to float once; files stay uint8, converted per batch."""
        return PairedDataset(
            self.a.for_eval("none", seed), self.b.for_eval("none", seed), self.pairs
        )


class UnpairedDataset(Dataset):
    """Domain A against domain B, of possibly different sizes: max(len A, len B) examples.

    The training loader's `UnpairedBatchSampler` hands `(a, b)` index pairs; a plain index k is
    the fixed pair (k mod len A, k mod len B).
    """

    def __init__(self, a: Dataset, b: Dataset) -> None:
        self.a, self.b = a, b

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitems__(self, indices: Sequence[int | tuple[int, int]]) -> Batch:
        pairs = [
            k if isinstance(k, tuple) else (k % len(self.a), k % len(self.b)) for k in indices
        ]
        a, b = zip(*pairs, strict=True)
        return _images(self.a, a), _images(self.b, b)

    def __getitem__(self, index: int | tuple[int, int]) -> Batch:
        x, y = self.__getitems__([index])
        return x[0], y[0]


def fixed_pairs(a: Dataset, b: Dataset) -> PairedDataset:
    """The deterministic evaluation pairs of an unpaired split: (A i, B i mod len B)."""
    i = torch.arange(len(a))
    return PairedDataset(a, b, torch.stack([i, i % len(b)], dim=1))


def _stream_seed(seed: int) -> int:
    """A second 32-bit seed from an epoch seed: torch's CPU generator keeps only the low 32
    bits of a seed, so the offset acts there and B's stream differs from A's shuffle."""
    return (seed + 0x9E3779B9) % 2**32


class UnpairedBatchSampler(ResumableBatchSampler):
    """Batches of `(a, b)` pairs: A from index k of the shuffled epoch, B from a permutation of
    domain B drawn afresh every epoch.

    The permutation's generator is seeded from the epoch seed given to `start_epoch` (the seed
    `ResumableDataLoader` saves), so a resumed epoch pairs exactly as the interrupted one did.
    Under DDP every rank seeds it from the DistributedSampler's seed and epoch instead, so the
    ranks share one permutation and, holding disjoint k, read disjoint B images. The signature
    stays `(sampler, batch_size, drop_last)` so Lightning can rebuild it around its DDP sampler;
    the domains are found through the sampler's dataset.
    """

    def start_epoch(self, seed: int, skip: int) -> None:
        super().start_epoch(seed, skip)
        self.seed = seed

    def _dataset(self) -> UnpairedDataset:
        sampler = self.sampler
        return sampler.dataset if isinstance(sampler, DistributedSampler) else sampler.data_source

    def _permutation(self, n: int) -> Tensor:
        seed, self.seed = getattr(self, "seed", None), None  # one epoch's seed, used once
        if isinstance(self.sampler, DistributedSampler):
            seed = self.sampler.seed + self.sampler.epoch
        elif seed is None:  # iterated without the resumable loader: a seed from the global RNG
            seed = int(torch.randint(2**62, ()))
        return torch.randperm(n, generator=torch.Generator().manual_seed(_stream_seed(seed)))

    def __iter__(self):
        dataset = self._dataset()
        n_a, n_b = len(dataset.a), len(dataset.b)
        perm_b = self._permutation(n_b).tolist()
        for batch in super().__iter__():
            yield [(k % n_a, perm_b[k % n_b]) for k in batch]


# ---- the shared DataModule -------------------------------------------------------------------
def _split(n: int, test_size: float | int, val_size: float | int, seed: int):
    """(train, val or None, test) index tensors: `test_size` first, then `val_size` of the rest
    (0 validates on the test split), as `ImageFolder` splits."""
    rest, test = split_indices(n, test_size, seed)
    if held_out_count(val_size, len(rest)) == 0:
        return rest, None, test
    train, val = split_indices(len(rest), val_size, seed)
    return rest[train], rest[val], test


class ImageToImageDataModule(ImageDataModule):
    """Image inputs with image targets: `y` is an image of `target_shape`, not a label.

    The data is 8-bit (`num_bits` = 8); `hflip` mirrors training pairs as one (paired) or each
    image on its own (unpaired). `num_classes` is 1: there are no classes.
    """

    paired: bool = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        if self.binarize != "none":
            raise ValueError(
                f"{type(self).__name__} yields 8-bit image targets; binarize={self.binarize!r} "
                f"is not supported. Leave binarize at 'none'."
            )

    @property
    def target_shape(self) -> tuple[int, int, int]:
        """The shape of the target images `y`; the inputs' unless a subclass says otherwise."""
        return self.data_shape

    @property
    def num_classes(self) -> int:
        return 1

    def transform_batch(self, batch: Batch, train: bool) -> Batch:
        return transform_pair(batch, self.paired, train and self.hflip)

    def _collate(self, train: bool):
        if self._runs_in_trainer():
            return super()._collate(train)
        return PairCollate(self.paired, train and self.hflip)

    def _load(self) -> None:
        # Splits come from `_load_splits` as pair datasets; evaluation ones are final already.
        train, val, test = self._load_splits()
        self.train_set, self.test_set = train, test
        self.val_set = test if val is None else val


class UnpairedDataModule(ImageToImageDataModule):
    """Unpaired domains: training pairs are drawn independently by `UnpairedBatchSampler`; an
    epoch is max(len A, len B) pairs, so every image of both domains is seen at least once per
    epoch (the epoch of CycleGAN's reference data loader, Zhu et al., 2017, arXiv:1703.10593).
    Evaluation pairs are fixed: (A test i, B test i mod len B)."""

    paired = False

    def _loader(self, dataset: Dataset, train: bool):
        if not train:
            return super()._loader(dataset, train)
        batches = UnpairedBatchSampler(RandomSampler(dataset), self.batch_size, self.drop_last)
        return ResumableDataLoader(
            dataset,
            batch_sampler=batches,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            collate_fn=self._collate(train),
        )

    def _domains(self) -> tuple[Sequence[Dataset], Sequence[Dataset]]:
        """((A train, A val or None, A test), (B train, B val or None, B test))."""
        raise NotImplementedError

    def _load_splits(self) -> tuple[Dataset, Dataset | None, Dataset]:
        (a_train, a_val, a_test), (b_train, b_val, b_test) = self._domains()
        held = a_val is not None and b_val is not None  # else validate on the test pairs
        val = fixed_pairs(a_val, b_val).for_eval("none", self.seed) if held else None
        test = fixed_pairs(a_test, b_test).for_eval("none", self.seed)
        return UnpairedDataset(a_train, b_train), val, test


# ---- generated offline domains ---------------------------------------------------------------
def resize_uint8(x: Tensor, size: int) -> Tensor:
    """uint8 (N, C, h, w) -> uint8 (N, C, size, size): bilinear on float, rounded."""
    if x.shape[-2:] == (size, size):
        return x
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True)
    return y.round().clamp(0, 255).to(torch.uint8)


def sobel_magnitude(x: Tensor) -> Tensor:
    """Sobel gradient magnitude of gray (N, 1, H, W) images, zero-padded, same size."""
    kernels = torch.stack([_SOBEL_X, _SOBEL_X.T]).unsqueeze(1).to(x)  # (2, 1, 3, 3)
    g = F.conv2d(x, kernels, padding=1)  # (N, 2, H, W): d/dx, d/dy
    return g.pow(2).sum(1, keepdim=True).sqrt()


def edge_map(x: Tensor) -> Tensor:
    """uint8 gray digits -> uint8 edge maps: the Sobel magnitude scaled so each image's
    strongest edge is 255 (an empty image stays 0)."""
    g = sobel_magnitude(x.float())  # (N, 1, H, W)
    peak = g.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    return (g * 255 / peak).round().to(torch.uint8)


def colorize(x: Tensor, colors: Tensor) -> Tensor:
    """uint8 gray (N, 1, H, W) and (N, 3) RGB colours -> uint8 (N, 3, H, W): the gray level
    scales the colour, round(v * c / 255)."""
    rgb = x.float() * colors.float().view(-1, 3, 1, 1) / 255  # (N, 3, H, W)
    return rgb.round().to(torch.uint8)


def check_size(size: int) -> int:
    if size < 16 or size & (size - 1):
        raise ValueError(
            f"size must be a power of two >= 16 (U-Nets halve it down to 1), got {size}."
        )
    return size


class GeneratedDigits:
    """The source of the generated domains: scikit-learn's digits at 16 px, or the uint8
    images of an IDX file (e.g. MNIST's) when `images` is given, resized to `size`.

    Args:
        size: side of the square images, a power of two >= 16.
        images: IDX file of uint8 (N, H, W) images to use instead of the bundled digits.
        test_size: fraction (float below 1) or count held out for testing.
    """

    channels = 1  # of the generated images; the coloured domains have 3

    def __init__(
        self, size: int = 32, images: str | None = None, test_size: float | int = 0.2, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.size, self.images, self.test_size = check_size(size), images, test_size
        if images is not None and not Path(images).is_file():
            hint = "Point images at an IDX file of uint8 (N, H, W) images, or leave it None."
            raise missing_data_error("IDX images", Path(images).parent, [Path(images).name], hint)

    @property
    def data_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)

    def _gray(self) -> Tensor:
        """All source digits, uint8 (N, 1, size, size)."""
        x = digits_uint8(16)[0] if self.images is None else read_idx(self.images).unsqueeze(1)
        return resize_uint8(x, self.size)

    def _splits(self, n: int, offset: int = 0):
        return _split(n, self.test_size, self.val_size, self.seed + offset)


class EdgesToDigits(GeneratedDigits, ImageToImageDataModule):
    """Paired edges -> digits: `x` the Sobel edge map of a digit, `y` the digit, 1 channel.

    The offline stand-in for pix2pix's edges2shoes (Isola et al., 2017, arXiv:1611.07004).

    Args:
        size: side of the square images, a power of two >= 16.
        images: IDX file of uint8 (N, H, W) images to use instead of the bundled digits.
        test_size: fraction (float below 1) or count held out for testing.
        **kwargs: the arguments of `ImageDataModule` (binarize must stay "none").
    """

    def _load_splits(self):
        y = self._gray()
        data = PairedDataset(_image_source(edge_map(y)), _image_source(y))
        return _subsets(data, self._splits(len(y)), self.seed)


def _subsets(data: PairedDataset, splits, seed: int):
    """(train, val or None, test) of an in-memory paired dataset, evaluation ones as floats."""
    train, val, test = (None if i is None else _take(data, i) for i in splits)
    val = None if val is None else val.for_eval("none", seed)
    return train, val, test.for_eval("none", seed)


def _take(data: PairedDataset, index: Tensor) -> PairedDataset:
    return PairedDataset(_image_source(data.a.x[index]), _image_source(data.b.x[index]))


class GrayToColorDigits(GeneratedDigits, UnpairedDataModule):
    """Unpaired gray digits (A) <-> coloured digits (B), 3 channels each.

    The digits are split at random (with the seed) into two disjoint halves: A's are gray,
    replicated to RGB; B's take a colour of `PALETTE[:num_colors]` drawn per image. No digit is
    in both domains, so there is no pairing to learn from.

    Args:
        size: side of the square images, a power of two >= 16.
        num_colors: how many palette colours B's digits are drawn from.
        images: IDX file of uint8 (N, H, W) images to use instead of the bundled digits.
        test_size: fraction (float below 1) or count of each domain held out for testing.
        **kwargs: the arguments of `ImageDataModule` (binarize must stay "none").
    """

    channels = 3

    def __init__(self, size: int = 32, num_colors: int = len(PALETTE), **kwargs) -> None:
        super().__init__(size=size, **kwargs)
        self.num_colors = _check_colors(num_colors)

    def _domains(self):
        gray = self._gray()
        g = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(gray), generator=g)
        a, b = gray[order[: len(gray) // 2]], gray[order[len(gray) // 2 :]]
        hue = torch.randint(self.num_colors, (len(b),), generator=g)
        domains = (a.expand(-1, 3, -1, -1), colorize(b, torch.tensor(PALETTE)[hue]))
        return [
            [None if i is None else _image_source(x[i]) for i in self._splits(len(x), offset)]
            for offset, x in enumerate(domains)
        ]


def _check_colors(k: int) -> int:
    if not 1 <= k <= len(PALETTE):
        raise ValueError(f"num_colors must be in [1, {len(PALETTE)}] (the palette), got {k}.")
    return k


class ColoredDigits(GeneratedDigits, ImageDataModule):
    """Multi-domain digits: each digit recoloured in one of `num_colors` fixed colours, and
    `y` is the colour's index in `PALETTE`, the domain (StarGAN's setting, Choi et al., 2018,
    arXiv:1711.09020). Each image gets one colour drawn with the seed, so every digit class
    appears in every domain.

    Args:
        num_colors: the number of domains, at least 2.
        size: side of the square images, a power of two >= 16.
        images: IDX file of uint8 (N, H, W) images to use instead of the bundled digits.
        test_size: fraction (float below 1) or count held out for testing.
        **kwargs: the arguments of `ImageDataModule`.
    """

    multi_label = False

    channels = 3

    def __init__(self, num_colors: int = 3, size: int = 32, **kwargs) -> None:
        super().__init__(size=size, **kwargs)
        self.num_colors = _check_colors(num_colors)
        if num_colors < 2:
            raise ValueError(_few_domains_message(f"num_colors={num_colors}", num_colors))

    @property
    def num_classes(self) -> int:
        return self.num_colors

    def _load_splits(self):
        gray = self._gray()
        g = torch.Generator().manual_seed(self.seed)
        domain = torch.randint(self.num_colors, (len(gray),), generator=g)
        x = colorize(gray, torch.tensor(PALETTE)[domain])
        train, val, test = self._splits(len(x))
        val = None if val is None else InMemoryDataset(x[val], domain[val])
        return (
            InMemoryDataset(x[train], domain[train]),
            val,
            InMemoryDataset(x[test], domain[test]),
        )


def _few_domains_message(what: str, n: int) -> str:
    return (
        f"Multi-domain data needs at least two domains; {what} gives {n}. Add a domain (one "
        f"subfolder of images each) or ask for more."
    )


# ---- image folders ---------------------------------------------------------------------------
def _require_dir(dataset: str, folder: Path, expected: Sequence[str], hint: str) -> None:
    missing = [name for name in expected if not (folder / name).is_dir()]
    if missing:
        raise missing_data_error(dataset, folder, [f"{name}/" for name in missing], hint)


def _image_list(dataset: str, folder: Path, hint: str) -> list[Path]:
    paths = list_images(folder) if folder.is_dir() else []
    if not paths:
        raise missing_data_error(
            dataset, folder, [f"image files ({', '.join(IMAGE_EXTENSIONS)})"], hint
        )
    return paths


def _native_size(paths_by_domain: dict[str, Sequence[Path]], dataset: str) -> int:
    """The one square size every image shares, for `size=None`; else a clear error."""
    sizes = {}
    for domain, paths in paths_by_domain.items():
        for path in paths:
            with Image.open(path) as image:
                sizes.setdefault(image.size, (domain, path.name))
    square = {w for w, h in sizes} if all(w == h for w, h in sizes) else set()
    if len(square) == 1:
        return square.pop()
    found = "; ".join(f"{w}x{h} in {d} ({name})" for (w, h), (d, name) in sizes.items())
    raise ValueError(
        f"{dataset}: the images are not all one square size ({found}). Give size=N "
        f"(CLI: --data.init_args.size N) to resize every image to N x N, or use images of "
        f"one size."
    )


def _zero_labels(n: int) -> Tensor:
    return torch.zeros(n, dtype=torch.long)


class LoadSideBySide:
    """Read a pix2pix image (left half | right half) as uint8 `(input, target)`: split in the
    middle, each half resized to `size` (its own height when None). `swap` makes the right half
    the input (pix2pix's --direction BtoA)."""

    def __init__(
        self, size: int | None, channels: int = 3, target_channels: int = 3, swap: bool = False
    ) -> None:
        self.size, self.channels, self.target_channels = size, channels, target_channels
        self.swap = swap

    def __call__(self, path: str | Path) -> Batch:
        try:
            with Image.open(path) as image:
                image.load()
        except (OSError, SyntaxError) as err:  # PIL's errors for unreadable or truncated files
            raise ValueError(
                f"Cannot read {Path(path).resolve()} as an image ({type(err).__name__}: {err}). "
                f"Remove it from the folder or replace it with a readable copy."
            ) from None
        w, h = image.size
        if w != 2 * h:
            raise ValueError(
                f"Cannot split {Path(path).resolve()} into input and target: it is {w}x{h} "
                f"(width x height), and a side-by-side pair must be exactly twice as wide as "
                f"high ({2 * h}x{h}). Fix or remove that file, or keep inputs and targets in "
                f"A/ and B/ folders matched by file name."
            )
        left, right = image.crop((0, 0, h, h)), image.crop((h, 0, w, h))
        x, y = (right, left) if self.swap else (left, right)
        return self._tensor(x, self.channels), self._tensor(y, self.target_channels)

    def _tensor(self, half: Image.Image, channels: int) -> Tensor:
        size = self.size or half.height
        half = TF.resize(half.convert("L" if channels == 1 else "RGB"), [size, size])
        return TF.pil_to_tensor(half)


class SideBySideFiles(Dataset):
    """pix2pix files, each one (input, target) pair, decoded per item into uint8 tensors."""

    def __init__(self, paths: Sequence[Path], load: LoadSideBySide) -> None:
        self.paths, self.load = list(paths), load

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Batch:
        return self.load(self.paths[index])

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        xs, ys = zip(*(self[i] for i in indices), strict=True)
        return torch.stack(xs), torch.stack(ys)

    def subset(self, indices: Tensor) -> SideBySideFiles:
        return SideBySideFiles([self.paths[i] for i in indices.tolist()], self.load)


PAIRED_HINT = (
    "Point root (CLI: --data.init_args.root) at a pix2pix folder: train/ (and test/ or val/), "
    "or the images directly; each holding side-by-side images (input left, target right) or "
    "A/ and B/ subfolders of images matched by file name."
)


class PairedImages(ImageToImageDataModule):
    """Aligned image pairs as pix2pix reads them (Isola et al., 2017, arXiv:1611.07004).

    `root` holds split folders `train/` and `test/` (or only `val/`, used as the test split, as
    in pix2pix's maps or edges2shoes), or is itself one folder split with `test_size` and the
    seed. Each such folder holds either side-by-side images (input left, target right, split in
    the middle) or `A/` and `B/` subfolders whose files are matched by name. With both `val/`
    and `test/` present, `val/` is the validation split; otherwise `val_size` of train is held
    out (0 validates on the test split).

    Args:
        root: the dataset folder.
        size: side of the square images; None keeps the images' own (common) size.
        channels: channels of the input image, 1 (gray) or 3 (RGB).
        target_channels: channels of the target image.
        direction: "AtoB" maps left/A to right/B; "BtoA" the reverse.
        test_size: fraction or count held out for testing when root has no split folders.
        **kwargs: the arguments of `ImageDataModule` (binarize must stay "none").
    """

    def __init__(
        self,
        root: str,
        size: int | None = 256,
        channels: Literal[1, 3] = 3,
        target_channels: Literal[1, 3] = 3,
        direction: Literal["AtoB", "BtoA"] = "AtoB",
        test_size: float | int = 0.1,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}.")
        self.root, self.size, self.direction = root, size, direction
        self.channels, self.target_channels, self.test_size = channels, target_channels, test_size

    @property
    def data_shape(self) -> tuple[int, int, int]:
        return (self.channels, self._size, self._size)

    @property
    def target_shape(self) -> tuple[int, int, int]:
        return (self.target_channels, self._size, self._size)

    @cached_property
    def _folders(self) -> dict[str, Path]:
        """split name -> folder: 'train' and 'test', and 'val' when the dataset has its own."""
        root = Path(self.root)
        if not root.is_dir():
            raise missing_data_error(
                "PairedImages", root, ["train/", "test/ or val/"], PAIRED_HINT
            )
        if not (root / "train").is_dir():
            return {"all": root}
        test = root / "test" if (root / "test").is_dir() else root / "val"
        if not test.is_dir():
            raise missing_data_error("PairedImages", root, ["test/ or val/"], PAIRED_HINT)
        folders = {"train": root / "train", "test": test}
        if test.name == "test" and (root / "val").is_dir():
            folders["val"] = root / "val"
        return folders

    @cached_property
    def _size(self) -> int:
        if self.size is not None:
            return self.size
        folder = next(iter(self._folders.values()))
        paths = self._items(folder)
        if isinstance(paths[0], tuple):  # A/ and B/: their images must share one size
            return _native_size(
                {"A": [a for a, _ in paths], "B": [b for _, b in paths]}, "PairedImages"
            )
        sizes = set()
        for path in paths:
            with Image.open(path) as image:
                sizes.add(image.size[1])
        if len(sizes) > 1:
            raise ValueError(
                f"PairedImages: the side-by-side images in {folder.resolve()} have different "
                f"heights {sorted(sizes)}. Give size=N to resize every half to N x N."
            )
        return sizes.pop()

    def _items(self, folder: Path) -> list:
        """Side-by-side image paths, or (A path, B path) pairs matched by file name."""
        if not ((folder / "A").is_dir() or (folder / "B").is_dir()):
            return _image_list("PairedImages", folder, PAIRED_HINT)
        _require_dir("PairedImages", folder, ["A", "B"], PAIRED_HINT)
        a = {p.name: p for p in _image_list("PairedImages", folder / "A", PAIRED_HINT)}
        b = {p.name: p for p in _image_list("PairedImages", folder / "B", PAIRED_HINT)}
        if a.keys() != b.keys():
            only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
            raise ValueError(
                f"PairedImages: the files of {(folder / 'A').resolve()} and "
                f"{(folder / 'B').resolve()} must match by name; {len(only_a)} are only in A "
                f"({', '.join(only_a[:5]) or '-'}) and {len(only_b)} only in B "
                f"({', '.join(only_b[:5]) or '-'}). Rename or remove them so each input has its "
                f"target under the same name."
            )
        return [(a[name], b[name]) for name in sorted(a)]

    def _dataset(self, folder: Path) -> Dataset:
        items, size = self._items(folder), self._size
        swap = self.direction == "BtoA"
        if not isinstance(items[0], tuple):
            load = LoadSideBySide(size, self.channels, self.target_channels, swap)
            return SideBySideFiles(items, load)
        a_paths, b_paths = zip(*items, strict=True)
        x_paths, y_paths = (b_paths, a_paths) if swap else (a_paths, b_paths)
        labels = _zero_labels(len(items))
        x = ImageFiles(x_paths, labels, LoadImage(size, self.channels))
        y = ImageFiles(y_paths, labels, LoadImage(size, self.target_channels))
        return PairedDataset(x, y)

    def _load_splits(self):
        folders = self._folders
        if "all" not in folders:
            train, test = self._dataset(folders["train"]), self._dataset(folders["test"])
            if "val" in folders:
                return train, self._dataset(folders["val"]), test
            parts = _split(len(train), 0, self.val_size, self.seed)
            return _subset(train, parts[0]), _maybe(train, parts[1]), test
        data = self._dataset(folders["all"])
        train, val, test = _split(len(data), self.test_size, self.val_size, self.seed)
        return _subset(data, train), _maybe(data, val), _subset(data, test)


def _subset(data: Dataset, indices: Tensor) -> Dataset:
    if isinstance(data, PairedDataset):
        return PairedDataset(data.a.subset(indices), data.b.subset(indices))
    return data.subset(indices)


def _maybe(data: Dataset, indices: Tensor | None) -> Dataset | None:
    return None if indices is None else _subset(data, indices)


UNPAIRED_HINT = (
    "Point root (CLI: --data.init_args.root) at a CycleGAN folder holding trainA/, trainB/, "
    "testA/ and testB/, each a folder of images."
)
UNPAIRED_FOLDERS = ("trainA", "trainB", "testA", "testB")


class UnpairedImages(UnpairedDataModule):
    """Two unaligned image domains as CycleGAN reads them (Zhu et al., 2017, arXiv:1703.10593):
    `trainA/ trainB/ testA/ testB/` under `root`, sampled independently (see the module doc).

    Args:
        root: the dataset folder.
        size: side of the square images; None keeps the images' own size, which must then be
            one square size in both domains.
        channels: channels of domain A's images, 1 (gray) or 3 (RGB).
        target_channels: channels of domain B's images.
        val_size: fraction or count of each training domain held out for validation; 0 (the
            default, CycleGAN has no validation split) validates on the test pairs.
        **kwargs: the arguments of `ImageDataModule` (binarize must stay "none").
    """

    def __init__(
        self,
        root: str,
        size: int | None = 256,
        channels: Literal[1, 3] = 3,
        target_channels: Literal[1, 3] = 3,
        val_size: float | int = 0,
        **kwargs,
    ) -> None:
        super().__init__(val_size=val_size, **kwargs)
        self.root, self.size = root, size
        self.channels, self.target_channels = channels, target_channels

    @property
    def data_shape(self) -> tuple[int, int, int]:
        return (self.channels, self._size, self._size)

    @property
    def target_shape(self) -> tuple[int, int, int]:
        return (self.target_channels, self._size, self._size)

    @cached_property
    def _paths(self) -> dict[str, list[Path]]:
        root = Path(self.root)
        _require_dir("UnpairedImages", root, UNPAIRED_FOLDERS, UNPAIRED_HINT)
        return {
            name: _image_list("UnpairedImages", root / name, UNPAIRED_HINT)
            for name in UNPAIRED_FOLDERS
        }

    @cached_property
    def _size(self) -> int:
        return self.size or _native_size(self._paths, "UnpairedImages")

    def _domains(self):
        domains = []
        for side, channels in (("A", self.channels), ("B", self.target_channels)):
            load = LoadImage(self._size, channels)
            train = self._paths[f"train{side}"]
            train = ImageFiles(train, _zero_labels(len(train)), load)
            test = self._paths[f"test{side}"]
            test = ImageFiles(test, _zero_labels(len(test)), load)
            kept, held = _split(len(train), 0, self.val_size, self.seed)[:2]
            domains.append((train.subset(kept), _maybe(train, held), test))
        return domains


MULTI_HINT = (
    "Point root (CLI: --data.init_args.root) at a folder with one subfolder of images per "
    "domain (e.g. root/summer/*.jpg, root/winter/*.jpg)."
)


class MultiDomainImages(ImageFolder):
    """Images in several domains, one subfolder each: `y` is the domain's index in the sorted
    subfolder names (`domains`), as StarGAN's folder datasets (Choi et al., 2018,
    arXiv:1711.09020). Split with the seed: `test_size` first, then `val_size` of the rest.

    Args:
        root: the folder of domain subfolders.
        size: side of the square images; None keeps the images' own size, which must then be
            one square size in every domain.
        channels: 1 reads the images as grayscale, 3 as RGB.
        test_size: fraction (float below 1) or count of images held out for testing.
        **kwargs: the arguments of `ImageDataModule`.
    """

    multi_label = False

    def __init__(
        self,
        root: str,
        size: int | None = 128,
        channels: Literal[1, 3] = 3,
        test_size: float | int = 0.1,
        **kwargs,
    ) -> None:
        super().__init__(root, image_size=size, channels=channels, test_size=test_size, **kwargs)
        self.size = size

    @property
    def domains(self) -> list[str]:
        """The domain names, index = label."""
        return self._classes

    @property
    def data_shape(self) -> tuple[int, int, int]:
        return (self.channels, self._size, self._size)

    @cached_property
    def _classes(self) -> list[str]:
        root = Path(self.root)
        if not root.is_dir():
            raise missing_data_error(
                "MultiDomainImages", root, ["one subfolder per domain"], MULTI_HINT
            )
        classes = (
            torchvision.datasets.folder.find_classes(root)[0] if self._has_class_folders() else []
        )
        if len(classes) < 2:
            names = ", ".join(classes) or "none"
            found = f"{root.resolve()} holds {len(classes)} domain subfolder(s) ({names})"
            raise ValueError(_few_domains_message(found, len(classes)) + f" {MULTI_HINT}")
        return classes

    @cached_property
    def _size(self) -> int:
        if self.size is not None:
            return self.size
        paths, labels = self._samples()
        by_domain = {}
        for path, label in zip(paths, labels, strict=True):
            by_domain.setdefault(self.domains[label], []).append(Path(path))
        return _native_size(by_domain, "MultiDomainImages")

    def _samples(self):
        _ = self._classes  # fewer than two domains fails before any image is read
        return super()._samples()

    def _load_splits(self):
        self.image_size = self._size  # ImageFolder reads its images at `image_size`
        return super()._load_splits()


class CelebAAttributes(CelebA):
    """CelebA with selected binary attributes as domains, StarGAN's setting (Choi et al., 2018,
    arXiv:1711.09020): `y` is the float (B, k) 0/1 vector of `attributes` (multi-label).

    Defaults follow StarGAN: five attributes (hair colours, gender, age), the 178 px center
    crop, 128 px images. The official partition gives the splits, so `val_size` is ignored.

    Args:
        attributes: names of CelebA's 40 attributes (list_attr_celeba.txt), in label order.
        root: folder that holds (or will hold) `celeba/`.
        download: fetch the files in `prepare_data` when they are missing (needs gdown).
        image_size: side of the square images.
        crop_size: side of the center crop taken before resizing.
        **kwargs: the other arguments of `CelebA`.
    """

    multi_label = True

    def __init__(
        self,
        attributes: list[str] | None = None,
        root: str = "data",
        download: bool = False,
        image_size: int = 128,
        crop_size: int = 178,
        **kwargs,
    ) -> None:
        super().__init__(
            root=root, download=download, image_size=image_size, crop_size=crop_size, **kwargs
        )
        self.attributes = list(STARGAN_ATTRIBUTES if attributes is None else attributes)
        if not self.attributes:
            raise ValueError("CelebAAttributes needs at least one attribute name.")

    @property
    def num_classes(self) -> int:
        return len(self.attributes)

    def _files(self, split: str) -> ImageFiles:
        dataset = self._open(split)
        names = list(dataset.attr_names)
        unknown = [a for a in self.attributes if a not in names]
        if unknown:
            raise ValueError(
                f"Unknown CelebA attribute(s) {', '.join(unknown)}; list_attr_celeba.txt has: "
                f"{', '.join(names)}. Pick attributes from that list (spelling and case as "
                f"written)."
            )
        columns = [names.index(a) for a in self.attributes]
        images = self._folder() / "img_align_celeba"
        load = LoadImage(self.image_size, self.channels, self.crop_size)
        labels = dataset.attr[:, columns].float()  # (N, k) in {0, 1}
        return ImageFiles([images / name for name in dataset.filename], labels, load)


__all__ = [
    "CelebAAttributes",
    "ColoredDigits",
    "EdgesToDigits",
    "GrayToColorDigits",
    "MultiDomainImages",
    "PairedImages",
    "UnpairedImages",
]
