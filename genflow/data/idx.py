"""IDX files, the format of MNIST and its family, read directly (plain or gzip-compressed).

An IDX file is a 4-byte magic number 0x0000TTDD (TT the value type, DD the number of
dimensions), DD big-endian int32 sizes, then the values in row-major order, big-endian.
"""

from __future__ import annotations

import gzip
import math
import struct
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from torch import Tensor

from genflow.data.base import Batch, TensorImageDataModule, missing_data_error

# type code -> (big-endian numpy type of the values on disk, torch type once in memory)
_TYPES = {
    0x08: (">u1", torch.uint8),
    0x09: (">i1", torch.int8),
    0x0B: (">i2", torch.int16),
    0x0C: (">i4", torch.int32),
    0x0D: (">f4", torch.float32),
    0x0E: (">f8", torch.float64),
}
_GZIP_MAGIC = b"\x1f\x8b"
_IDX_HINT = (
    "Point images (and labels) at IDX files (CLI: --data.init_args.images PATH), e.g. MNIST's "
    "t10k-images-idx3-ubyte.gz; IDX files are never downloaded."
)


class IDXFormatError(ValueError):
    """A file that is not a well-formed IDX file."""


def _open(path: str | Path) -> BinaryIO:
    # Decide by content, not suffix: gzip files are often renamed without .gz and vice versa.
    with open(path, "rb") as f:
        compressed = f.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def _read_header(f: BinaryIO, path: str | Path) -> tuple[int, tuple[int, ...]]:
    magic = f.read(4)
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _TYPES or magic[3] == 0:
        raise IDXFormatError(
            f"{path} is not an IDX file: its magic number is 0x{magic.hex():0>8}, expected "
            f"0x0000TTDD with a known type TT, e.g. 0x00000803 (uint8 images) or 0x00000801 "
            f"(uint8 labels)."
        )
    ndim = magic[3]
    sizes = f.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise IDXFormatError(f"{path} is truncated: its header ends before its {ndim} sizes.")
    return magic[2], struct.unpack(f">{ndim}I", sizes)


def read_idx_header(path: str | Path) -> tuple[torch.dtype, tuple[int, ...]]:
    """(dtype, shape) from an IDX file's header, without reading its values."""
    with _open(path) as f:
        code, shape = _read_header(f, path)
    return _TYPES[code][1], shape


def read_idx(path: str | Path) -> Tensor:
    """The whole IDX file as a tensor of its own type and shape (e.g. uint8 (N, 28, 28))."""
    try:
        with _open(path) as f:
            code, shape = _read_header(f, path)
            body = f.read()
    except (EOFError, gzip.BadGzipFile) as err:
        raise IDXFormatError(f"{path} is a damaged gzip file: {err}.") from None
    dtype = np.dtype(_TYPES[code][0])
    expected = math.prod(shape) * dtype.itemsize
    if len(body) != expected:
        raise IDXFormatError(
            f"{path} does not match its header: {'x'.join(map(str, shape))} values of "
            f"{dtype.itemsize} byte(s) need {expected} bytes, the file holds {len(body)}."
        )
    values = np.frombuffer(body, dtype=dtype).reshape(shape)
    return torch.from_numpy(values.astype(dtype.newbyteorder("=")))  # native order, writable


class IDX(TensorImageDataModule):
    """Images (and optional labels) from IDX files, the format of MNIST (LeCun et al., 1998).

    The images file holds uint8 (N, H, W); `train_range` and `test_range` pick [start, stop)
    slices of it, in file order. With the default val_size=0 validation is the test range:
    on MNIST's t10k files this is the MNIST-10k protocol (first 8,000 images train, last 2,000
    evaluate). The header is read at construction, so a missing or malformed file fails then.

    Args:
        images: IDX file of uint8 images, plain or gzip-compressed.
        labels: IDX file of labels; labels are zeros when None.
        train_range: [start, stop) of the training images.
        test_range: [start, stop) of the test images.
        val_size: fraction (float below 1) or count of the training range held out for
            validation; 0 validates on the test range.
        **kwargs: the other arguments of `ImageDataModule`.
    """

    def __init__(
        self,
        images: str,
        labels: str | None = None,
        train_range: tuple[int, int] = (0, 8000),
        test_range: tuple[int, int] = (8000, 10000),
        val_size: float | int = 0,
        **kwargs,
    ) -> None:
        super().__init__(val_size=val_size, **kwargs)
        self.images, self.labels = images, labels
        self.train_range, self.test_range = tuple(train_range), tuple(test_range)
        self._shape = self._image_header()
        for name, (start, stop) in (("train", self.train_range), ("test", self.test_range)):
            if not 0 <= start < stop <= self._shape[0]:
                raise ValueError(
                    f"IDX {name}_range {start, stop} is not a non-empty [start, stop) inside "
                    f"the {self._shape[0]} images of {self.images}."
                )

    def _image_header(self) -> tuple[int, ...]:
        path = Path(self.images)
        if not path.is_file():
            raise missing_data_error("IDX images", path.parent, [path.name], _IDX_HINT)
        dtype, shape = read_idx_header(path)
        if dtype != torch.uint8 or len(shape) != 3:
            raise IDXFormatError(
                f"{path} holds {dtype} data of shape {shape}; IDX images must be uint8 (N, H, W)."
            )
        return shape

    @property
    def data_shape(self) -> tuple[int, int, int]:
        return (1, self._shape[1], self._shape[2])

    @property
    def num_classes(self) -> int:
        return 1 if self.labels is None else int(self._labels.max()) + 1

    @cached_property
    def _labels(self) -> Tensor:
        if self.labels is None:
            return torch.zeros(self._shape[0], dtype=torch.long)
        path = Path(self.labels)
        if not path.is_file():
            raise missing_data_error("IDX labels", path.parent, [path.name], _IDX_HINT)
        y = read_idx(path).long()
        if y.shape != self._shape[:1]:
            raise IDXFormatError(
                f"{path} holds {tuple(y.shape)} labels for {self._shape[0]} images."
            )
        return y

    def _load_train_test(self) -> tuple[Batch, Batch]:
        x, y = read_idx(self.images).unsqueeze(1), self._labels  # (N, 1, H, W)
        train, test = slice(*self.train_range), slice(*self.test_range)
        return (x[train], y[train]), (x[test], y[test])
