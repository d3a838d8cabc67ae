"""The datasets torchvision knows how to fetch: MNIST, Fashion-MNIST, CIFAR-10, CelebA."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torchvision
from torch.utils.data import Dataset

from genflow.data.base import (
    DOWNLOAD_HINT,
    Batch,
    ImageDataModule,
    TensorImageDataModule,
    missing_data_error,
    require_files,
)
from genflow.data.folder import ImageFiles, LoadImage


class _TrustFilesCIFAR10(torchvision.datasets.CIFAR10):
    """torchvision's CIFAR10, which trusts the files it finds when it may not download.

    torchvision checks the md5 of every pickle batch even with download=False. Without a
    download a failed checksum can repair nothing, and it rejects any copy of the real format
    that is not the original bytes (a re-pickled set, or the tiny one the tests write); so, as
    torchvision already does for MNIST, existing files are enough then. With download=True the
    checksums stay, to decide whether to fetch.
    """

    def __init__(self, root: str, train: bool, download: bool) -> None:
        if not download:  # instance attributes shadow the class's checksummed lists
            self.train_list = [[name, None] for name, _ in type(self).train_list]
            self.test_list = [[name, None] for name, _ in type(self).test_list]
            self.meta = {**type(self).meta, "md5": None}
        super().__init__(root, train=train, download=download)


class _TrustFilesCelebA(torchvision.datasets.CelebA):
    """torchvision's CelebA, which trusts the files it finds when it may not download.

    Same reason as for CIFAR-10: its annotation files are checksummed even with
    download=False, which rejects every copy but the original bytes.
    """

    def __init__(self, root: str, split: str, download: bool) -> None:
        if not download:
            self.file_list = [(fid, None, name) for fid, _, name in type(self).file_list]
        super().__init__(root, split=split, target_type=[], download=download)


class _TorchvisionSource:
    """The `root` / `download` behaviour shared by the torchvision DataModules.

    `prepare_data` downloads only with download=True, else checks that the files are there;
    a missing dataset is one `DatasetNotFoundError` paragraph rather than torchvision's
    RuntimeError.
    """

    dataset_name: str
    splits: tuple[Any, ...]
    root: str
    download: bool

    def _folder(self) -> Path:
        raise NotImplementedError

    def _expected(self) -> list[str]:
        raise NotImplementedError

    def _make(self, split: Any, download: bool) -> Dataset:
        raise NotImplementedError

    def _hint(self) -> str:
        # root is the folder above the dataset's own subfolder; say where the files sit in it.
        return f"{DOWNLOAD_HINT[:-1]} in {self._folder().relative_to(self.root).as_posix()}/."

    def _require_files(self) -> None:
        require_files(self.dataset_name, self._folder(), self._expected(), self._hint())

    def prepare_data(self) -> None:
        if not self.download:
            self._require_files()
            return
        for split in self.splits:
            self._make(split, download=True)

    def _open(self, split: Any) -> Dataset:
        if not self.download:
            self._require_files()
        try:
            return self._make(split, download=self.download)
        except RuntimeError as err:
            if "not found" not in str(err):
                raise
            folder, expected = self._folder(), self._expected()
            raise missing_data_error(self.dataset_name, folder, expected, self._hint()) from None


class MNIST(_TorchvisionSource, TensorImageDataModule):
    """MNIST handwritten digits (LeCun, Bottou, Bengio & Haffner, 1998), 28x28 gray, 8-bit.

    The 60,000 training and 10,000 test images are held in memory as uint8, read from the raw
    IDX files in `root/MNIST/raw` (torchvision's layout).

    Args:
        root: folder that holds (or will hold) `MNIST/raw`.
        download: fetch the files in `prepare_data` when they are missing.
        **kwargs: the arguments of `ImageDataModule`.
    """

    dataset_name = "MNIST"
    source = torchvision.datasets.MNIST
    splits = (True, False)

    def __init__(self, root: str = "data", download: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root, self.download = root, download

    @property
    def data_shape(self) -> tuple[int, int, int]:
        return (1, 28, 28)

    @property
    def num_classes(self) -> int:
        return 10

    def _folder(self) -> Path:
        return Path(self.root) / self.source.__name__ / "raw"

    def _expected(self) -> list[str]:
        return [Path(name).stem for name, _ in self.source.resources]  # stored unzipped

    def _make(self, split: bool, download: bool) -> Dataset:
        return self.source(self.root, train=split, download=download)

    def _load_train_test(self) -> tuple[Batch, Batch]:
        train, test = self._open(True), self._open(False)
        return (train.data.unsqueeze(1), train.targets), (test.data.unsqueeze(1), test.targets)


class FashionMNIST(MNIST):
    """Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017, arXiv:1708.07747): MNIST's format, clothes.

    Read from the raw IDX files in `root/FashionMNIST/raw`.

    Args:
        root: folder that holds (or will hold) `FashionMNIST/raw`.
        download: fetch the files in `prepare_data` when they are missing.
        **kwargs: the arguments of `ImageDataModule`.
    """

    dataset_name = "FashionMNIST"
    source = torchvision.datasets.FashionMNIST


class CIFAR10(_TorchvisionSource, TensorImageDataModule):
    """CIFAR-10 (Krizhevsky, 2009): 50,000 + 10,000 colour images, 32x32, ten classes, 8-bit.

    Held in memory as uint8 (N, 3, 32, 32), read from the pickled batches in
    `root/cifar-10-batches-py` (the official python version).

    Args:
        root: folder that holds (or will hold) `cifar-10-batches-py`.
        download: fetch the files in `prepare_data` when they are missing.
        **kwargs: the arguments of `ImageDataModule`.
    """

    dataset_name = "CIFAR10"
    splits = (True, False)

    def __init__(self, root: str = "data", download: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root, self.download = root, download

    @property
    def data_shape(self) -> tuple[int, int, int]:
        return (3, 32, 32)

    @property
    def num_classes(self) -> int:
        return 10

    def _folder(self) -> Path:
        return Path(self.root) / _TrustFilesCIFAR10.base_folder

    def _expected(self) -> list[str]:
        cls = _TrustFilesCIFAR10
        return [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]

    def _make(self, split: bool, download: bool) -> Dataset:
        return _TrustFilesCIFAR10(self.root, train=split, download=download)

    def _load_train_test(self) -> tuple[Batch, Batch]:
        return _cifar_tensors(self._open(True)), _cifar_tensors(self._open(False))


def _cifar_tensors(dataset: torchvision.datasets.CIFAR10) -> Batch:
    x = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    return x, torch.tensor(dataset.targets, dtype=torch.long)


class CelebA(_TorchvisionSource, ImageDataModule):
    """CelebA aligned faces (Liu, Luo, Wang & Tang, 2015, arXiv:1411.7766), read per image.

    Each image is center-cropped to `crop_size` (148 px, the usual face crop of the 178x218
    aligned images) and resized to `image_size`. Labels are zeros. The official
    train / valid / test partition is used, so `val_size` is ignored.

    Args:
        root: folder that holds (or will hold) `celeba/`.
        download: fetch the files in `prepare_data` when they are missing (needs gdown).
        image_size: side of the square images.
        crop_size: side of the center crop taken before resizing.
        channels: 1 reads the images as grayscale, 3 as RGB.
        **kwargs: the arguments of `ImageDataModule`.
    """

    dataset_name = "CelebA"
    splits = ("train", "valid", "test")

    def __init__(
        self,
        root: str = "data",
        download: bool = False,
        image_size: int = 64,
        crop_size: int = 148,
        channels: Literal[1, 3] = 3,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root, self.download = root, download
        self.image_size, self.crop_size, self.channels = image_size, crop_size, channels

    @property
    def data_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    @property
    def num_classes(self) -> int:
        return 1

    def _folder(self) -> Path:
        return Path(self.root) / _TrustFilesCelebA.base_folder

    def _expected(self) -> list[str]:
        names = [name for _, _, name in _TrustFilesCelebA.file_list]
        return [name for name in names if not name.endswith(".zip")] + ["img_align_celeba/"]

    def _make(self, split: str, download: bool) -> Dataset:
        return _TrustFilesCelebA(self.root, split=split, download=download)

    def _files(self, split: str) -> ImageFiles:
        names = self._open(split).filename
        images = self._folder() / "img_align_celeba"
        load = LoadImage(self.image_size, self.channels, self.crop_size)
        return ImageFiles(
            [images / name for name in names], torch.zeros(len(names), dtype=torch.long), load
        )

    def _load_splits(self) -> tuple[ImageFiles, ImageFiles, ImageFiles]:
        return self._files("train"), self._files("valid"), self._files("test")
