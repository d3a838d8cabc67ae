"""A LeNet-style digit classifier whose features give a domain FID and Inception Score.

Inception features describe natural photographs; for MNIST-like data the usual practice is a
small classifier trained on the domain itself: its penultimate layer replaces Inception's pool3
for FID/KID/precision-recall and its softmax replaces Inception's for the Inception Score.
FIDs computed with different LeNet weights are not comparable, so a LeNet is trained once per
dataset (`experiments/train_lenet.py`), saved, and named by path wherever FID is computed.

Architecture (LeCun et al. 1998, widened): conv 5x5 (32) - max-pool - conv 5x5 (64) - max-pool -
dense (feature_dim, the features) - dense (num_classes). Inputs are resized to `image_size`
(bilinear, no antialiasing) and must have the channels it was trained with.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genflow.metrics.features import FeatureExtractor

FORMAT = "genflow-lenet-1"


class LeNet(FeatureExtractor):
    """A small convolutional classifier; `features` is its penultimate layer (after ReLU)."""

    name = "lenet"

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        feature_dim: int = 128,
    ) -> None:
        super().__init__()
        self.config = dict(
            in_channels=in_channels,
            image_size=image_size,
            num_classes=num_classes,
            feature_dim=feature_dim,
        )
        self.num_features, self.num_classes, self.image_size = feature_dim, num_classes, image_size
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.hidden = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * side * side, feature_dim), nn.ReLU()
        )
        self.head = nn.Linear(feature_dim, num_classes)
        self.eval()

    def _prepare(self, x: Tensor) -> Tensor:
        channels = self.config["in_channels"]
        if x.dim() != 4 or x.shape[1] != channels:
            raise ValueError(
                f"This LeNet was trained on {channels}-channel images, got a batch of shape "
                f"{tuple(x.shape)}. Train a LeNet on this kind of data "
                f"(experiments/train_lenet.py) and use its weights."
            )
        x = x.to(self.head.weight.dtype)
        if x.shape[-2:] != (self.image_size, self.image_size):
            size = (self.image_size, self.image_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
        return x

    def _hidden(self, x: Tensor) -> Tensor:
        return self.hidden(self.convs(self._prepare(x)))

    def features(self, x: Tensor) -> Tensor:
        return self._hidden(x)

    def logits(self, x: Tensor) -> Tensor:
        return self.head(self._hidden(x))

    @torch.no_grad()
    def features_and_logits(self, x: Tensor, with_logits: bool = True):
        hidden = self._hidden(x)
        return hidden.double(), self.head(hidden).double() if with_logits else None

    def classify(self, x: Tensor) -> Tensor:
        """Logits with gradients, for training."""
        return self.head(self._hidden(x))


def train_lenet(
    images: Tensor,
    labels: Tensor,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    binarize_prob: float = 0.5,
    feature_dim: int = 128,
) -> LeNet:
    """Train a LeNet on images in [0, 1] (N, C, H, W) with int64 labels (plain Adam loop).

    With probability `binarize_prob` a batch is replaced by a Bernoulli draw of itself, so the
    same features serve 8-bit and binarized models of the dataset.
    """
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(
            f"Need as many labels as images (>0), got {len(images)} and {len(labels)}."
        )
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}.")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = LeNet(
        in_channels=images.shape[1],
        image_size=max(images.shape[-2:]),
        num_classes=int(labels.max()) + 1,
        feature_dim=feature_dim,
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    nn.Module.train(net, True)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), batch_size):
            index = order[start : start + batch_size]
            x, y = images[index].float(), labels[index]
            if torch.rand((), generator=generator) < binarize_prob:
                x = torch.bernoulli(x, generator=generator)
            loss = F.cross_entropy(net.classify(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: LeNet, images: Tensor, labels: Tensor, batch_size: int = 500) -> float:
    """Fraction of `images` whose arg-max class is the label."""
    correct = sum(
        int((net.logits(images[i : i + batch_size]).argmax(1) == labels[i : i + batch_size]).sum())
        for i in range(0, len(images), batch_size)
    )
    return correct / max(1, len(images))


def save_lenet(net: LeNet, path: str | Path, **meta) -> Path:
    """Save weights, architecture and `meta` (data, accuracy, ...); never overwrite a file."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(
            f"{path} already exists and was left as it is. Choose another --out path, or "
            f"delete the file if you mean to replace it (FIDs computed with it change)."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save({"format": FORMAT, "config": net.config, "state_dict": state, "meta": meta}, path)
    return path


def load_lenet(path: str | Path) -> LeNet:
    """A LeNet saved by `save_lenet`, in eval mode, with clear errors for a wrong file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"LeNet weights not found: {path.resolve()}. Train them with "
            f"`python experiments/train_lenet.py --config <config with the data> --out {path}`."
        )
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("format") != FORMAT:
            raise ValueError(f"format is {saved.get('format')!r}, expected {FORMAT!r}")
        net = LeNet(**saved["config"])
        net.load_state_dict(saved["state_dict"])
    except Exception as err:  # torch.load raises many types for a damaged file
        raise ValueError(
            f"{path.resolve()} is not a LeNet saved by genflow ({type(err).__name__}: {err}). "
            f"Point to a file written by experiments/train_lenet.py."
        ) from None
    net.meta = saved.get("meta", {})
    return net.eval()
