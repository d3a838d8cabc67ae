"""genflow: the classic families of deep generative models on PyTorch Lightning."""

__version__ = "0.1.0"
