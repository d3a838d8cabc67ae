"""genflow's data: one LightningDataModule per source, all yielding `(x, y)` batches.

Images are float32 in [0, 1] holding the data's discrete values exactly (k/255, or {0, 1} when
binarized); every DataModule states `data_shape`, `num_classes` and `num_bits` before setup.
"""

from genflow.data.base import (
    BaseDataModule,
    DatasetNotFoundError,
    ImageDataModule,
    InMemoryDataset,
    TensorImageDataModule,
)
from genflow.data.digits import Digits
from genflow.data.folder import ImageFiles, ImageFolder
from genflow.data.idx import IDX, IDXFormatError, read_idx, read_idx_header
from genflow.data.image2image import (
    CelebAAttributes,
    ColoredDigits,
    EdgesToDigits,
    GrayToColorDigits,
    MultiDomainImages,
    PairedImages,
    UnpairedImages,
)
from genflow.data.torchvision_sets import CIFAR10, MNIST, CelebA, FashionMNIST
from genflow.data.toy2d import Toy2D, sample_toy2d

__all__ = [
    "BaseDataModule",
    "CIFAR10",
    "CelebA",
    "CelebAAttributes",
    "ColoredDigits",
    "DatasetNotFoundError",
    "Digits",
    "EdgesToDigits",
    "FashionMNIST",
    "GrayToColorDigits",
    "IDX",
    "IDXFormatError",
    "ImageDataModule",
    "ImageFiles",
    "ImageFolder",
    "InMemoryDataset",
    "MNIST",
    "MultiDomainImages",
    "PairedImages",
    "TensorImageDataModule",
    "Toy2D",
    "UnpairedImages",
    "read_idx",
    "read_idx_header",
    "sample_toy2d",
]
