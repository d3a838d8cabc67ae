"""Sample-quality metrics on one set of features: FID, KID, Inception Score, precision/recall.

`SampleQuality` runs a feature extractor (`genflow.metrics.features`) once per batch and feeds
the features to torchmetrics' FID, KID and IS (given an identity "network", so the extractor is
not run three times) and to `PrecisionRecall` (Kynkäänniemi et al. 2019, which torchmetrics
lacks). Every state is a sum or a list that torchmetrics adds up or gathers across DDP ranks, so
the figures over a split shared between ranks equal the single-process ones. Real statistics are
kept across `reset_fake()`, so a callback extracts them once per run.

FID follows the TF reference (Heusel et al. 2017): statistics accumulate in float64, the
covariances are unbiased (N - 1), and images reach the extractor without antialiased resizing.
KID (Bińkowski et al. 2018) is the unbiased MMD estimate with the cubic polynomial kernel,
averaged over random subsets; IS (Salimans et al. 2016) is exp E[KL(p(y|x) || p(y))] over splits.
The random subsets and splits use a fixed seed in a forked RNG: figures are reproducible and the
caller's random stream is untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.image import FrechetInceptionDistance, InceptionScore, KernelInceptionDistance
from torchmetrics.utilities.data import dim_zero_cat

from genflow.metrics.features import FeatureExtractor

METRICS = ("fid", "kid", "is", "pr")


class _Identity(nn.Module):
    """The "network" handed to torchmetrics: features are computed before the update."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: Tensor) -> Tensor:
        return x.double()


def fid_metric(num_features: int, **kwargs) -> FrechetInceptionDistance:
    """torchmetrics' FID on precomputed (N, num_features) features, in float64."""
    return FrechetInceptionDistance(feature=_Identity(num_features), **kwargs)


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """FID between two feature sets (N, F) and (M, F), by torchmetrics."""
    metric = fid_metric(real.shape[1])
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def canonical_order(features: Tensor) -> Tensor:
    """The rows of `features` sorted by a fixed random projection: an order that depends on the
    set of rows only, not on the order the ranks gathered them in, so that the random subsets
    of KID and the splits of IS are the same whatever the number of ranks."""
    direction = torch.randn(
        features.shape[1], generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    return features[torch.argsort(features.double() @ direction.to(features.device))]


def _gather_by_concatenation(metric: Metric, *states: str) -> None:
    """Sync list states as one tensor per rank: torchmetrics gathers the elements of a state
    without a reduction one by one, which deadlocks when ranks hold different numbers of
    batches."""
    for state in states:
        metric._reductions[state] = dim_zero_cat


class _KID(KernelInceptionDistance):
    """torchmetrics' KID on rows in `canonical_order`, with the subset size capped by the
    number of samples present after the sync."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _gather_by_concatenation(self, "real_features", "fake_features")

    def compute(self) -> tuple[Tensor, Tensor]:
        self.real_features = [canonical_order(dim_zero_cat(self.real_features))]
        self.fake_features = [canonical_order(dim_zero_cat(self.fake_features))]
        size = min(len(self.real_features[0]), len(self.fake_features[0]))
        self.subset_size = min(self.max_subset_size, size)
        return super().compute()


class _IS(InceptionScore):
    """torchmetrics' Inception Score on logits in `canonical_order`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _gather_by_concatenation(self, "features")

    def compute(self) -> tuple[Tensor, Tensor]:
        self.features = [canonical_order(dim_zero_cat(self.features))]
        return super().compute()


def kid_metric(num_features: int, subset_size: int = 1000, subsets: int = 100, **kwargs) -> _KID:
    metric = _KID(
        feature=_Identity(num_features), subset_size=subset_size, subsets=subsets, **kwargs
    )
    metric.max_subset_size = subset_size
    return metric


def knn_radii(features: Tensor, k: int, chunk: int = 1024) -> Tensor:
    """Distance of each row of `features` to its k-th nearest other row."""
    radii = []
    for start in range(0, len(features), chunk):
        dist = torch.cdist(features[start : start + chunk], features)
        radii.append(dist.kthvalue(k + 1, dim=1).values)  # k+1: the row itself is at 0
    return torch.cat(radii)


def fraction_inside(queries: Tensor, centres: Tensor, radii: Tensor, chunk: int = 1024) -> Tensor:
    """Fraction of `queries` within `radii[j]` of some `centres[j]` (the k-NN manifold)."""
    inside = []
    for start in range(0, len(queries), chunk):
        dist = torch.cdist(queries[start : start + chunk], centres)
        inside.append((dist <= radii.unsqueeze(0)).any(dim=1))
    return torch.cat(inside).double().mean()


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[Tensor, Tensor]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): precision is the fraction of
    fake features inside the real k-NN manifold, recall the fraction of real features inside
    the fake one (k = 3 in the paper)."""
    for name, features in (("real", real), ("fake", fake)):
        if len(features) <= k:
            raise ValueError(
                f"Precision/recall with k={k} needs more than {k} {name} samples, got "
                f"{len(features)}. Use more samples or a smaller k."
            )
    real, fake = real.double(), fake.double()
    precision = fraction_inside(fake, real, knn_radii(real, k))
    recall = fraction_inside(real, fake, knn_radii(fake, k))
    return precision, recall


class PrecisionRecall(Metric):
    """`precision_recall` as a torchmetrics Metric; features are gathered across ranks."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, k: int = 3, reset_real_features: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.k = k
        self.reset_real_features = reset_real_features
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    def update(self, features: Tensor, real: bool) -> None:
        (self.real_features if real else self.fake_features).append(features.double())

    def compute(self) -> tuple[Tensor, Tensor]:
        real, fake = dim_zero_cat(self.real_features), dim_zero_cat(self.fake_features)
        return precision_recall(real, fake, self.k)

    def reset(self) -> None:
        kept = list(self.real_features)  # reset() clears the list in place
        super().reset()
        if not self.reset_real_features:
            self.real_features = kept


class SampleQuality(nn.Module):
    """FID, KID, IS and precision/recall of generated images against real ones.

    Args:
        extractor: images in [0, 1] -> features (and logits for IS).
        metrics: any of "fid", "kid", "is" (needs an extractor with logits), "pr".
        kid_subset_size, kid_subsets: KID subsets (capped by the number of samples).
        is_splits: Inception Score splits.
        pr_k: k of the precision/recall k-NN manifolds.
        seed: seed of the KID subsets and IS splits.
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        metrics: Sequence[str] = ("fid", "kid"),
        kid_subset_size: int = 1000,
        kid_subsets: int = 100,
        is_splits: int = 10,
        pr_k: int = 3,
        seed: int = 0,
    ) -> None:
        super().__init__()
        unknown = set(metrics) - set(METRICS)
        if unknown or not metrics:
            raise ValueError(
                f"Unknown sample-quality metrics {sorted(unknown)}: choose from {list(METRICS)}."
            )
        if "is" in metrics and extractor.num_classes is None:
            raise ValueError(
                f"The Inception Score needs class probabilities, and the {extractor.name} "
                f"feature extractor has no classifier head. {extractor.logits_hint}"
            )
        self.extractor, self.names, self.seed = extractor, tuple(metrics), seed
        f = extractor.num_features
        self.metrics = nn.ModuleDict()
        if "fid" in metrics:
            self.metrics["fid"] = fid_metric(f, reset_real_features=False)
        if "kid" in metrics:
            self.metrics["kid"] = kid_metric(
                f, kid_subset_size, kid_subsets, reset_real_features=False
            )
        if "is" in metrics:
            self.metrics["is"] = _IS(feature=_Identity(extractor.num_classes), splits=is_splits)
        if "pr" in metrics:
            self.metrics["pr"] = PrecisionRecall(pr_k)
        self.num_real = 0  # this rank's

    @property
    def has_real(self) -> bool:
        """Whether real statistics are cached (on this rank)."""
        return self.num_real > 0

    @torch.no_grad()
    def update(self, images: Tensor, real: bool) -> None:
        """Add a batch of real or generated images in [0, 1] (B, C, H, W)."""
        wants_logits = "is" in self.metrics and not real
        features, logits = self.extractor.features_and_logits(images, wants_logits)
        for name, metric in self.metrics.items():
            if name != "is":
                metric.update(features, real=real)
            elif not real:
                metric.update(logits)
        if real:
            self.num_real += len(images)

    def compute(self) -> dict[str, float]:
        """The figures over everything added on every rank; names as in `genflow evaluate`."""
        out: dict[str, float] = {}
        with torch.random.fork_rng(devices=[]):
            for name, metric in self.metrics.items():
                torch.manual_seed(self.seed)
                value = metric.compute()
                if name == "fid":
                    out["fid"] = float(value)
                elif name == "pr":
                    out["precision"], out["recall"] = float(value[0]), float(value[1])
                else:
                    out[name], out[f"{name}_std"] = float(value[0]), float(value[1])
        return out

    def reset_fake(self) -> None:
        """Forget generated images, keep the real statistics."""
        for metric in self.metrics.values():
            metric.reset()  # FID, KID and PR keep their real features

    def reset(self) -> None:
        """Forget everything, real statistics included."""
        for metric in self.metrics.values():
            flag = getattr(metric, "reset_real_features", None)
            if flag is not None:
                metric.reset_real_features = True
            metric.reset()
            if flag is not None:
                metric.reset_real_features = flag
        self.num_real = 0
