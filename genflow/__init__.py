"""genflow: the classic families of deep generative models on PyTorch Lightning."""

import os as _os

if _os.environ.get("GENFLOW_OFFLINE") == "1":  # tests, `make demo` and their DDP children
    from genflow.offline import block_network as _block_network

    _block_network()

__version__ = "0.1.0"
