"""A description of data without the data, for commands that need only its shape."""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl


class DataSpec(pl.LightningDataModule):
    """Carries `data_shape`, `num_bits` and `num_classes` and yields nothing.

    `genflow sample --ckpt_path ...` builds one from the checkpoint, so that a model can be
    rebuilt and sampled without its dataset on disk.
    """

    def __init__(
        self, data_shape: Sequence[int], num_bits: int | None = 8, num_classes: int = 1
    ) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.num_bits = num_bits
        self.num_classes = num_classes
