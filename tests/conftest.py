import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# No test may use the network: lookups of other hosts and connections off this machine raise,
# here and in the DDP ranks the tests start (they inherit GENFLOW_OFFLINE and re-import genflow).
os.environ["GENFLOW_OFFLINE"] = "1"
import genflow  # noqa: E402,F401  (installs the guard)

torch.set_num_threads(1)  # tests are many small ops: one thread is fastest and shares the machine


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
