"""What every genflow DataModule shares: batches `(x, y)`, the data description, the splits.

Images are kept as uint8 (the dataset's own discrete values) until a batch is formed, and the
per-batch work (uint8 -> float32 k/255, the random horizontal flip, the dynamic binarization of
training batches) is one vectorized op on the whole batch, `transform_images`. Under a running
Trainer the loaders yield the uint8 batches as they are (a quarter of the bytes to copy) and the
DataModule's `on_after_batch_transfer` hook transforms them on the training device; a loader
taken outside a Trainer transforms in its collate, so it yields the same float batches. Evaluation
splits are converted (and binarized) once, at setup, with the seed, so every model is scored on
the same bits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.trainer.states import TrainerStatus
from torch import Tensor
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    Sampler,
)

Binarize = Literal["none", "dynamic", "threshold"]
Batch = tuple[Tensor, Tensor]

DOWNLOAD_HINT = (
    "Pass download=True (CLI: --data.init_args.download true) to fetch it, or point root at a "
    "folder that has them."
)


class DatasetNotFoundError(FileNotFoundError):
    """The files of a dataset are not where the DataModule was told to look."""


def missing_data_error(
    dataset: str, folder: str | Path, expected: Sequence[str], hint: str = DOWNLOAD_HINT
) -> DatasetNotFoundError:
    """One paragraph: which dataset, where it was looked for, what was expected, what to do."""
    return DatasetNotFoundError(
        f"{dataset} not found: looked in {Path(folder).resolve()} for "
        f"{', '.join(expected)}. {hint}"
    )


def require_files(
    dataset: str, folder: str | Path, expected: Sequence[str], hint: str = DOWNLOAD_HINT
) -> None:
    """Raise `DatasetNotFoundError` unless every expected file (or folder) is in `folder`."""
    if not all((Path(folder) / name).exists() for name in expected):
        raise missing_data_error(dataset, folder, expected, hint)


# ---- splits ---------------------------------------------------------------------------------
def held_out_count(size: float | int, n: int) -> int:
    """How many of `n` items `size` holds out: a float below 1 is a fraction, else a count."""
    fraction = isinstance(size, float) and 0 <= size < 1
    count = round(size * n) if fraction else int(size)
    if (not fraction and count != size) or not 0 <= count < n:
        raise ValueError(
            f"Cannot hold out {size!r} of {n} items: give a fraction in [0, 1) or a whole count "
            f"in [0, {n})."
        )
    return count


def split_indices(n: int, size: float | int, seed: int) -> tuple[Tensor, Tensor]:
    """(kept, held) sorted indices of a fixed-seed random split of `range(n)`."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    held = held_out_count(size, n)
    return perm[held:].sort().values, perm[:held].sort().values


# ---- binarization, flips and the batch collate ---------------------------------------------
def to_unit(x: Tensor) -> Tensor:
    """uint8 images -> float32 k/255; float data is returned as it is (already final)."""
    return x.to(torch.float32) / 255 if x.dtype == torch.uint8 else x


def binarize(x: Tensor, mode: Binarize, generator: torch.Generator | None = None) -> Tensor:
    """Binarize float [0, 1] data: a Bernoulli draw ("dynamic"), x > 0.5 ("threshold")."""
    if mode == "dynamic":
        return torch.bernoulli(x, generator=generator)
    if mode == "threshold":
        return (x > 0.5).to(x.dtype)
    return x


def random_hflip(x: Tensor) -> Tensor:
    """Mirror each image of a (B, C, H, W) batch left-right with probability 1/2, independently.

    The coins come from the global RNG of the batch's device, which genflow seeds per DDP rank
    and saves in checkpoints, so flips differ across ranks and a resumed run draws the same ones.
    """
    flip = torch.rand(len(x), device=x.device) < 0.5  # (B,)
    return torch.where(flip.view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x)


def transform_images(x: Tensor, mode: Binarize = "none", hflip: bool = False) -> Tensor:
    """The per-batch image work: optional random flip, uint8 -> float32 k/255, binarization.

    Only uint8 batches are transformed; float batches pass unchanged, since they are final
    already: evaluation splits converted (and binarized) once at setup, or continuous data.
    The flip acts on the uint8 values, a quarter of the bytes of the float ones.
    """
    if x.dtype != torch.uint8:
        return x
    if hflip:
        x = random_hflip(x)
    return binarize(to_unit(x), mode)


class BatchCollate:
    """Collate a gathered `(x, y)` batch on the CPU with `transform_images(x, mode, hflip)`.

    The collate of loaders used outside a Trainer; a class rather than a closure so worker
    processes can pickle it.
    """

    def __init__(self, mode: Binarize = "none", hflip: bool = False) -> None:
        self.mode, self.hflip = mode, hflip

    def __call__(self, batch: Batch) -> Batch:
        x, y = batch
        return transform_images(x, self.mode, self.hflip), y


def keep_batch(batch: Batch) -> Batch:
    """The collate of a loader whose batches are transformed later, on the training device."""
    return batch


# ---- datasets -------------------------------------------------------------------------------
class InMemoryDataset(Dataset):
    """Examples held as one tensor; a whole batch is gathered by one tensor index.

    PyTorch's fetcher calls `__getitems__(indices)` when a dataset has it, so the collate receives
    the stacked `(x, y)` batch; a DistributedSampler only changes which indices arrive.
    """

    def __init__(self, x: Tensor, y: Tensor) -> None:
        if len(x) != len(y):
            raise ValueError(f"{len(x)} examples but {len(y)} labels.")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> Batch:
        return self.x[index], self.y[index]

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        index = torch.as_tensor(indices, dtype=torch.long)
        return self.x[index], self.y[index]

    def for_eval(self, mode: Binarize, seed: int) -> InMemoryDataset:
        """The split converted to float once; a dynamic binarization is drawn once, with `seed`."""
        x = to_unit(self.x)
        if mode == "dynamic":
            # The published MNIST-10k protocol: one call on the whole (N, C, H, W) split.
            return InMemoryDataset(
                torch.bernoulli(x, generator=torch.Generator().manual_seed(seed)), self.y
            )
        return InMemoryDataset(binarize(x, mode), self.y)


# ---- a training loader that can stop mid-epoch ----------------------------------------------
class ResumableBatchSampler(BatchSampler):
    """The batches of `sampler`, able to start an epoch part-way through (`start_epoch`)."""

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.skip = 0

    def start_epoch(self, seed: int, skip: int) -> None:
        """Shuffle this epoch from `seed` (a `RandomSampler`'s own generator; a DDP sampler's
        order follows the epoch number instead) and leave out its first `skip` batches."""
        if isinstance(self.sampler, RandomSampler):
            self.sampler.generator = torch.Generator().manual_seed(seed)
        self.skip = skip

    def __iter__(self):
        skip, self.skip = self.skip, 0
        for i, batch in enumerate(super().__iter__()):
            if i >= skip:
                yield batch


class ResumableDataLoader(DataLoader):
    """A training DataLoader that Lightning can checkpoint mid-epoch: Lightning saves the
    `state_dict()` of loaders that have one and calls `load_state_dict()` on resume.

    The state is the epoch's shuffle seed (drawn from the global RNG when the epoch starts, so
    it is part of the seeded random stream) and the number of batches handed out, counted where
    they leave the loader, so batches that workers prefetched are not counted as trained on. A
    resumed epoch reuses the seed and skips the batches already trained on.
    """

    def __iter__(self):
        resume, self._resume = getattr(self, "_resume", None), None
        seed, skip = resume or (self._draw_seed(), 0)
        if isinstance(self.batch_sampler, ResumableBatchSampler):
            self.batch_sampler.start_epoch(seed, skip)
        self._epoch_seed, self._served = seed, skip
        rng = torch.random.get_rng_state()
        iterator = super().__iter__()  # draws the workers' base seed from the global RNG
        if resume:  # ... which the interrupted epoch drew already: draw nothing twice
            torch.random.set_rng_state(rng)
        for batch in iterator:
            self._served += 1
            yield batch

    @staticmethod
    def _draw_seed() -> int:
        return int(torch.empty((), dtype=torch.int64).random_().item())

    def state_dict(self) -> dict:
        return {"seed": getattr(self, "_epoch_seed", None), "batches": getattr(self, "_served", 0)}

    def load_state_dict(self, state: dict) -> None:
        if state.get("seed") is not None:
            self._resume = (state["seed"], state["batches"])


# ---- DataModules ----------------------------------------------------------------------------
def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class UnpaddedDistributedSampler(DistributedSampler):
    """Rank r of R reads examples r, r + R, r + 2R, ...: every example exactly once across the
    ranks, in order, with no padding (ranks may get one example more than others).

    Lightning keeps a DataLoader's sampler when it already is a DistributedSampler, so this
    replaces the padding one it would inject for validation and test.
    """

    def __init__(self, dataset: Dataset, num_replicas: int | None = None, rank: int | None = None):
        super().__init__(dataset, num_replicas, rank, shuffle=False, drop_last=False)
        self.indices = range(self.rank, len(dataset), self.num_replicas)
        self.num_samples = len(self.indices)
        self.total_size = len(dataset)

    def __iter__(self):
        return iter(self.indices)


class BaseDataModule(pl.LightningDataModule):
    """Loaders, batch sizes and the data description shared by every genflow DataModule.

    Subclasses fill `train_set`, `val_set` and `test_set` in `_load()` and describe one example
    through `data_shape`, `num_classes` and `num_bits`, all known before `setup()` so the CLI can
    link them into the model.

    Batches are transformed by `transform_batch(batch, train)`: on the training device by the
    `on_after_batch_transfer` hook while a Trainer runs with this DataModule, in the loader's
    collate otherwise. Either way a loop over `dm.train_dataloader()` outside a Trainer gets the
    final float batches, and so does the model inside one.

    Args:
        batch_size: training batch size.
        eval_batch_size: validation and test batch size; the training one when None.
        num_workers: DataLoader worker processes (kept alive between epochs when > 0).
        seed: seed of the fixed splits and of the evaluation binarization.
        drop_last: drop the last incomplete training batch.
        pin_memory: pin batches in page-locked memory for faster host-to-GPU copies.
    """

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        drop_last: bool = False,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.drop_last = drop_last
        self.pin_memory = pin_memory
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    @property
    def data_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        raise NotImplementedError

    @property
    def num_bits(self) -> int | None:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        # Loads every split on the first call, whatever the stage: the sets are small or lazy.
        if self.train_set is None:
            self._load()

    def _load(self) -> None:
        raise NotImplementedError

    def _transforms(self, train: bool) -> tuple[Binarize, bool]:
        """The (binarization, flip) of `transform_images` for training or evaluation batches."""
        return "none", False

    def transform_batch(self, batch: Batch, train: bool) -> Batch:
        """A loader's batch made final: uint8 images become float32 k/255, flipped and binarized
        as configured for training (`train=True`) or evaluation; float batches pass unchanged.
        Runs on whatever device the batch is on, drawing from that device's global RNG."""
        x, y = batch
        return transform_images(x, *self._transforms(train)), y

    def _runs_in_trainer(self) -> bool:
        """True while a Trainer runs with this DataModule attached: then Lightning calls this
        DataModule's `on_after_batch_transfer` on every batch, so the loaders may skip the work.
        A loader taken before or after the run (or for `trainer.fit(model, loader)`, which
        attaches no DataModule) transforms in its collate instead."""
        trainer = self.trainer
        return (
            trainer is not None
            and trainer.datamodule is self
            and trainer.state.status == TrainerStatus.RUNNING
        )

    def _collate(self, train: bool) -> BatchCollate | Callable[[Batch], Batch]:
        if self._runs_in_trainer():
            return keep_batch
        return BatchCollate(*self._transforms(train))

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """Lightning's hook after a batch reached the training device: transform it there.

        Training batches are told apart by the Trainer's stage. The float result is cast like
        Lightning casts the loader's float batches before the transfer (to half precision under
        `precision="16-true"` or `"bf16-true"`), which the uint8 batch escaped.
        """
        trainer = self.trainer
        batch = self.transform_batch(batch, train=trainer is not None and trainer.training)
        return batch if trainer is None else trainer.precision_plugin.convert_input(batch)

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        # Training loaders get Lightning's DistributedSampler under DDP; evaluation loaders get
        # one that neither pads nor repeats, so every example is scored exactly once.
        workers = dict(
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            collate_fn=self._collate(train),
        )
        if train:  # resumable mid-epoch
            batches = ResumableBatchSampler(
                RandomSampler(dataset), self.batch_size, self.drop_last
            )
            return ResumableDataLoader(dataset, batch_sampler=batches, **workers)
        sampler = UnpaddedDistributedSampler(dataset) if _distributed() else None
        return DataLoader(dataset, batch_size=self.eval_batch_size, sampler=sampler, **workers)

    # Each loader calls the idempotent setup() so the module also works outside a Trainer.
    def train_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.test_set, train=False)


class ImageDataModule(BaseDataModule):
    """Image data as uint8 with a fixed-seed validation split and optional binarization.

    Subclasses return the three splits from `_load_splits()` as datasets of uint8 images
    (`InMemoryDataset` or `ImageFiles`); validation is None when it is the test split.

    Args:
        val_size: fraction (float below 1) or count of the training split held out for
            validation with a fixed-seed permutation; 0 validates on the test split.
        binarize: "dynamic" draws training batches afresh as Bernoulli(x) and the evaluation
            splits once with the seed; "threshold" is x > 0.5 everywhere.
        hflip: mirror each training image left-right with probability 1/2, drawn afresh every
            batch; evaluation splits are never flipped. Only for data whose mirror image is as
            likely as the image itself (photos such as CIFAR-10 or CelebA), not for digits or
            letters.
        **kwargs: the loader arguments of `BaseDataModule`.
    """

    def __init__(
        self,
        val_size: float | int = 0.1,
        binarize: Binarize = "none",
        hflip: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if binarize not in ("none", "dynamic", "threshold"):
            raise ValueError(
                f"binarize must be 'none', 'dynamic' or 'threshold', got {binarize!r}."
            )
        self.val_size = val_size
        self.binarize = binarize
        self.hflip = hflip

    @property
    def num_bits(self) -> int:
        return 8 if self.binarize == "none" else 1

    def _load_splits(self) -> tuple[Dataset, Dataset | None, Dataset]:
        raise NotImplementedError

    def _load(self) -> None:
        train, val, test = self._load_splits()
        self.test_set = test.for_eval(self.binarize, self.seed)
        self.val_set = self.test_set if val is None else val.for_eval(self.binarize, self.seed)
        self.train_set = train

    def _transforms(self, train: bool) -> tuple[Binarize, bool]:
        if train:
            return self.binarize, self.hflip
        # Eval sets in memory arrive as final floats; only per-item uint8 sets still need work,
        # and their dynamic binarization is already frozen per item.
        return ("threshold" if self.binarize == "threshold" else "none"), False


class TensorImageDataModule(ImageDataModule):
    """An `ImageDataModule` whose splits fit in memory as uint8 tensors.

    Subclasses return the official `(train, test)` splits as `(x uint8 (N, C, H, W), y int64)`;
    validation is held out of train with `val_size`.
    """

    def _load_train_test(self) -> tuple[Batch, Batch]:
        raise NotImplementedError

    def _load_splits(self) -> tuple[Dataset, Dataset | None, Dataset]:
        (x, y), (x_test, y_test) = self._load_train_test()
        test = InMemoryDataset(x_test, y_test)
        if held_out_count(self.val_size, len(x)) == 0:
            return InMemoryDataset(x, y), None, test
        kept, held = split_indices(len(x), self.val_size, self.seed)
        return InMemoryDataset(x[kept], y[kept]), InMemoryDataset(x[held], y[held]), test
