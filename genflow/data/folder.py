"""Images read from files one at a time: the per-item dataset and any folder of images."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Literal

import torch
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from genflow.data.base import (
    Batch,
    Binarize,
    DatasetNotFoundError,
    ImageDataModule,
    held_out_count,
    missing_data_error,
    split_indices,
    to_unit,
)

IMAGE_EXTENSIONS = torchvision.datasets.folder.IMG_EXTENSIONS
FOLDER_HINT = (
    "Point root (CLI: --data.init_args.root) at a folder of images, one subfolder per class or "
    "the images directly."
)


class LoadImage:
    """Read an image file as uint8 (C, H, W), `image_size` square.

    An optional center crop first (CelebA's 148 px face crop), then the shorter side is resized
    to `image_size` and the center square kept, so any aspect ratio gives the same shape.
    """

    def __init__(self, image_size: int, channels: int = 3, crop_size: int | None = None) -> None:
        self.image_size, self.channels, self.crop_size = image_size, channels, crop_size

    def __call__(self, path: str | Path) -> Tensor:
        try:
            with Image.open(path) as image:
                image = image.convert("L" if self.channels == 1 else "RGB")
        except FileNotFoundError:
            raise
        except (OSError, SyntaxError) as err:  # PIL's errors for unreadable or truncated files
            raise ValueError(
                f"Cannot read {Path(path).resolve()} as an image ({type(err).__name__}: {err}). "
                f"The file is damaged or not an image despite its name; remove it from the "
                f"folder or replace it with a readable copy."
            ) from None
        if self.crop_size is not None:
            image = TF.center_crop(image, [self.crop_size])
        image = TF.resize(image, self.image_size, antialias=True)
        image = TF.center_crop(image, [self.image_size])
        return TF.pil_to_tensor(image)


class ImageFiles(Dataset):
    """Image files decoded per item into uint8 tensors; a batch is stacked in `__getitems__`.

    With `binarize_seed` set (an evaluation split under dynamic binarization) each image is
    drawn once from its own generator seeded by (seed, index): the split is never in memory as
    one tensor, yet every model is scored on the same bits.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        labels: Tensor,
        load: LoadImage,
        binarize_seed: int | None = None,
    ) -> None:
        self.paths, self.labels, self.load = list(paths), labels, load
        self.binarize_seed = binarize_seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Batch:
        x = self.load(self.paths[index])
        if self.binarize_seed is not None:
            seed = (self.binarize_seed * 2**32 + index) % 2**63
            x = torch.bernoulli(to_unit(x), generator=torch.Generator().manual_seed(seed))
        return x, self.labels[index]

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        xs, ys = zip(*(self[i] for i in indices), strict=True)
        return torch.stack(xs), torch.stack(ys)

    def for_eval(self, mode: Binarize, seed: int) -> ImageFiles:
        """This split with its dynamic binarization frozen; other modes happen at collate."""
        if mode != "dynamic":
            return self
        return ImageFiles(self.paths, self.labels, self.load, binarize_seed=seed)

    def subset(self, indices: Tensor) -> ImageFiles:
        return ImageFiles(
            [self.paths[i] for i in indices.tolist()], self.labels[indices], self.load
        )


def list_images(root: Path) -> list[Path]:
    """The image files directly in `root`, sorted."""
    return sorted(
        p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


class ImageFolder(ImageDataModule):
    """Any folder of images: one subfolder per class, or the images directly as one class.

    Class subfolders go through `torchvision.datasets.ImageFolder`. Images are resized on the
    shorter side and center-cropped to `image_size`, then split with a fixed seed: `test_size`
    first, `val_size` out of the rest (0 validates on the test split).

    Args:
        root: the folder of images.
        image_size: side of the square images.
        channels: 1 reads the images as grayscale, 3 as RGB.
        test_size: fraction (float below 1) or count of images held out for testing.
        **kwargs: the arguments of `ImageDataModule`.
    """

    def __init__(
        self,
        root: str,
        image_size: int = 32,
        channels: Literal[1, 3] = 3,
        test_size: float | int = 0.1,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root, self.image_size, self.channels = root, image_size, channels
        self.test_size = test_size

    @property
    def data_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    @property
    def num_classes(self) -> int:
        return len(self._classes)

    @cached_property
    def _classes(self) -> list[str]:
        if self._has_class_folders():
            return torchvision.datasets.folder.find_classes(self.root)[0]
        return [Path(self.root).name]

    def _has_class_folders(self) -> bool:
        root = Path(self.root)
        if not root.is_dir():
            raise missing_data_error("ImageFolder", root, ["image files"], FOLDER_HINT)
        return any(entry.is_dir() for entry in root.iterdir())

    def _samples(self) -> tuple[list[str | Path], list[int]]:
        if not self._has_class_folders():
            paths = list_images(Path(self.root))
            if not paths:
                expected = [f"image files ({', '.join(IMAGE_EXTENSIONS)})"]
                raise missing_data_error("ImageFolder", self.root, expected, FOLDER_HINT)
            return paths, [0] * len(paths)
        try:
            samples = torchvision.datasets.ImageFolder(self.root).samples
        except FileNotFoundError as err:  # a class folder without images
            where = Path(self.root).resolve()
            raise DatasetNotFoundError(f"ImageFolder in {where}: {err}. {FOLDER_HINT}") from None
        paths, labels = zip(*samples, strict=True)
        return list(paths), list(labels)

    def _load_splits(self) -> tuple[ImageFiles, ImageFiles | None, ImageFiles]:
        paths, labels = self._samples()
        files = ImageFiles(paths, torch.tensor(labels), LoadImage(self.image_size, self.channels))
        rest, test = split_indices(len(files), self.test_size, self.seed)
        if held_out_count(self.val_size, len(rest)) == 0:
            return files.subset(rest), None, files.subset(test)
        train, val = split_indices(len(rest), self.val_size, self.seed)
        return files.subset(rest[train]), files.subset(rest[val]), files.subset(test)
