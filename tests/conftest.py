import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(1)  # tests are many small ops: one thread is fastest and shares the machine


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
