"""Writers of the datasets' real on-disk formats, for offline tests of the real loaders."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """An IDX file of uint8 `array`: magic 0x000008DD, big-endian int32 sizes, the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_mnist(root: Path, folder: str, n_train: int = 20, n_test: int = 10) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx(root / folder / "raw" / name, array)
    return arrays


def write_cifar10(root: Path, per_batch: int = 3, n_test: int = 4) -> dict:
    """cifar-10-batches-py: pickled dicts of 'data' uint8 (N, 3072) and 'labels'.

    The official files are Python 2 pickles whose keys torchvision reads back as str (it loads
    them with encoding="latin1"), so str keys here give it the same dicts.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    sizes = {**{f"data_batch_{i}": per_batch for i in range(1, 6)}, "test_batch": n_test}
    for name, n in sizes.items():
        batch = {
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "labels": [i % 10 for i in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
        batches[name] = batch
    (folder / "batches.meta").write_bytes(
        pickle.dumps({"label_names": [str(i) for i in range(10)]})
    )
    return batches


def write_celeba(root: Path, partition: list[int]) -> None:
    """A CelebA folder in torchvision's layout with one 178x218 JPEG per partition entry."""
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(len(partition))]
    rng = np.random.default_rng(0)
    for name in names:
        pixels = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "img_align_celeba" / name)
    count, attrs = str(len(names)), " ".join(f"attr_{i}" for i in range(40))
    tables = {
        "list_eval_partition.txt": [f"{n} {p}" for n, p in zip(names, partition, strict=True)],
        "identity_CelebA.txt": [f"{n} {i}" for i, n in enumerate(names)],
        "list_bbox_celeba.txt": [count, "image_id x_1 y_1 width height"]
        + [f"{n}  95  71 226 313" for n in names],
        "list_landmarks_align_celeba.txt": [count, " ".join(f"p{i}" for i in range(10))]
        + [f"{n} 69 109 106 113 77 142 73 152 108 154" for n in names],
        "list_attr_celeba.txt": [count, attrs]
        + [f"{n} " + " ".join(["-1", "1"] * 20) for n in names],
    }
    for name, lines in tables.items():
        (folder / name).write_text("\n".join(lines) + "\n")


def write_pngs(folder: Path, n: int, size: tuple[int, int] = (8, 8), seed: int = 0) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]
    for i, pixels in enumerate(images):
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return images


def write_png(path: Path, pixels: np.ndarray) -> np.ndarray:
    """One PNG of uint8 (H, W, 3) or (H, W) `pixels`, folders made as needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def write_celeba_attributes(root: Path, names: list[str], values: np.ndarray) -> None:
    """Replace list_attr_celeba.txt of a `write_celeba` folder: the header of attribute
    `names`, then per image its -1/1 `values` (N, len(names)), in the official layout."""
    folder = root / "celeba"
    images = sorted(p.name for p in (folder / "img_align_celeba").iterdir())
    lines = [str(len(images)), " ".join(names)]
    rows = zip(images, values, strict=True)
    lines += [f"{n} " + " ".join(f"{v:2d}" for v in row) for n, row in rows]
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
