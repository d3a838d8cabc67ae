"""scikit-learn's bundled 8x8 digits: the offline default dataset."""

from __future__ import annotations

from typing import Literal

import torch
from sklearn.datasets import load_digits

from genflow.data.base import Batch, TensorImageDataModule, split_indices


def digits_uint8(size: Literal[8, 16] = 8) -> Batch:
    """All 1,797 digits as uint8 (N, 1, size, size) round(255 v / 16) and int64 labels.

    The 17 gray levels v in {0..16} become 8-bit values, so the digits are 8-bit data like MNIST.
    Size 16 repeats each pixel as a 2x2 block, which keeps the values on the same 17 levels.
    """
    bunch = load_digits()
    v = torch.from_numpy(bunch.images).unsqueeze(1)  # (N, 1, 8, 8) float64 in {0..16}
    x = (v * 255 / 16).round().to(torch.uint8)
    if size == 16:
        x = x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)  # (N, 1, 16, 16)
    return x, torch.from_numpy(bunch.target).long()


class Digits(TensorImageDataModule):
    """The UCI optical handwritten digits (Alpaydin & Kaynak, 1998) as bundled by scikit-learn.

    1,797 images of 8x8 pixels with 17 gray levels, stored as 8-bit values round(255 v / 16);
    no download, so it is the dataset every test and quick run can use. There is no official
    test split: `test_size` is held out with the seed first, then `val_size` of the rest.

    Args:
        size: 8 for the original images, 16 for each pixel repeated as a 2x2 block.
        test_size: fraction (float below 1) or count of the digits held out for testing.
        **kwargs: the arguments of `ImageDataModule`.
    """

    def __init__(self, size: Literal[8, 16] = 8, test_size: float | int = 0.2, **kwargs) -> None:
        super().__init__(**kwargs)
        if size not in (8, 16):
            raise ValueError(f"Digits size must be 8 or 16, got {size}.")
        self.size, self.test_size = size, test_size

    @property
    def data_shape(self) -> tuple[int, int, int]:
        return (1, self.size, self.size)

    @property
    def num_classes(self) -> int:
        return 10

    def _load_train_test(self) -> tuple[Batch, Batch]:
        x, y = digits_uint8(self.size)
        train, test = split_indices(len(x), self.test_size, self.seed)
        return (x[train], y[train]), (x[test], y[test])
