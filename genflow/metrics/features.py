"""Feature extractors for sample-quality metrics: one interface, several networks.

An extractor maps images as the DataModules yield them (float in [0, 1], (B, C, H, W)) to
features (B, F) in float64, and, where its network has a classifier head, to class logits for
the Inception Score. It does its own resizing, channel conversion and input scaling, so the
metrics never care which network they use:

- `lenet`: a small MNIST-style classifier trained by genflow (`genflow.metrics.lenet`): its
  penultimate layer gives a domain FID and its softmax a domain Inception Score, the usual
  practice for MNIST-like data;
- `inception`: the TF-Inception (2015-12-05) pool3 features of the FID literature
  (`genflow.metrics.inception`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn


class FeatureExtractor(nn.Module):
    """Images in [0, 1], (B, C, H, W) -> features (B, num_features) in float64.

    Subclasses set `name`, `num_features` and `num_classes` (None when the network has no
    classifier head) and implement `features` and, where they can, `logits`. Extractors are
    frozen and always run in eval mode with no gradient.
    """

    name: str = "features"
    num_features: int
    num_classes: int | None = None
    logits_hint: str = "Use an extractor that has one (e.g. features='lenet')."

    def features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def logits(self, x: Tensor) -> Tensor:
        raise NotImplementedError(
            f"The {self.name} feature extractor has no classifier head, so it cannot give the "
            f"Inception Score. {self.logits_hint}"
        )

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.features(x).double()

    @torch.no_grad()
    def features_and_logits(self, x: Tensor, with_logits: bool = True):
        """(features, logits or None) in float64; subclasses may share one network pass."""
        logits = self.logits(x).double() if with_logits else None
        return self.features(x).double(), logits

    def train(self, mode: bool = True) -> FeatureExtractor:  # always frozen, always eval
        return super().train(False)


def build_extractor(name: str, weights: str | Path | None = None, **kwargs) -> FeatureExtractor:
    """The extractor called `name` ('lenet' or 'inception'); `weights` is the LeNet file
    written by `genflow.metrics.lenet.save_lenet`, or for Inception a local weights file."""
    if name == "lenet":
        from genflow.metrics.lenet import load_lenet

        if weights is None:
            raise ValueError(
                "features='lenet' needs the weights of a LeNet trained on this kind of data. "
                "Train one with `python experiments/train_lenet.py --config <your config> "
                "--out lenet.pt` and pass its path (e.g. --lenet lenet.pt)."
            )
        return load_lenet(weights)
    if name == "inception":
        from genflow.metrics.inception import InceptionFeatures

        return InceptionFeatures(weights_path=weights, **kwargs)
    raise ValueError(f"Unknown feature extractor {name!r}: choose 'lenet' or 'inception'.")
