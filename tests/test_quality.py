"""Sample-quality metrics: FID, KID, IS and precision/recall against what they must equal, and
the LeNet feature extractor."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from ddp import GivenFeatures

from genflow.data import Digits
from genflow.metrics.features import build_extractor
from genflow.metrics.lenet import LeNet, accuracy, load_lenet, save_lenet, train_lenet
from genflow.metrics.quality import (
    SampleQuality,
    canonical_order,
    frechet_distance,
    kid_metric,
    precision_recall,
)


def closed_form_frechet(mu1, s1, mu2, s2) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), by symmetric eigendecompositions
    (independent of torchmetrics' eigvals of S1 S2)."""

    def sqrtm(a):
        w, v = torch.linalg.eigh(a)
        return v @ torch.diag(w.clamp(min=0).sqrt()) @ v.T

    r1 = sqrtm(s1)
    cross = sqrtm(r1 @ s2 @ r1)
    return float((mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * cross.trace())


def gaussian(n, mean, scale, seed):
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, len(mean), generator=g, dtype=torch.float64)
    return mean.double() + noise @ scale.double()


def test_fid_of_a_feature_set_against_itself_is_zero():
    features = gaussian(500, torch.zeros(16), torch.eye(16) + 0.3, seed=0)
    assert abs(frechet_distance(features, features)) < 1e-6


def test_fid_of_gaussian_feature_sets_is_the_closed_form_frechet_distance():
    d = 8
    g = torch.Generator().manual_seed(1)
    scale1 = torch.randn(d, d, generator=g, dtype=torch.float64) / 2
    scale2 = torch.randn(d, d, generator=g, dtype=torch.float64) / 2
    real = gaussian(4000, torch.zeros(d, dtype=torch.float64), scale1, seed=2)
    fake = gaussian(3000, torch.linspace(-1, 1, d, dtype=torch.float64), scale2, seed=3)
    fid = frechet_distance(real, fake)
    # exactly the distance between the two sets' empirical Gaussians (unbiased covariances) ...
    empirical = closed_form_frechet(real.mean(0), real.T.cov(), fake.mean(0), fake.T.cov())
    assert fid == pytest.approx(empirical, rel=1e-9)
    # ... which estimates the population distance
    population = closed_form_frechet(
        torch.zeros(d, dtype=torch.float64),
        scale1.T @ scale1,
        torch.linspace(-1, 1, d, dtype=torch.float64),
        scale2.T @ scale2,
    )
    assert fid == pytest.approx(population, rel=0.05)


def test_fid_of_diagonal_gaussians_matches_the_textbook_formula():
    """Commuting covariances: FID = ||mu1 - mu2||^2 + sum (sqrt(a_i) - sqrt(b_i))^2."""
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 1.0])
    mu = torch.tensor([0.0, 1.0, 2.0])
    expected = float(mu.square().sum() + (a.sqrt() - b.sqrt()).square().sum())
    real = gaussian(20000, torch.zeros(3), torch.diag(a.sqrt()).double(), seed=4)
    fake = gaussian(20000, mu.double(), torch.diag(b.sqrt()).double(), seed=5)
    assert frechet_distance(real, fake) == pytest.approx(expected, rel=0.03)


def test_kid_is_unbiased_on_two_draws_of_the_same_distribution():
    """The unbiased MMD estimate averages to 0 over independent equal-distribution pairs (the
    biased V-statistic would be positive every time); a shifted distribution is far from 0."""
    values = []
    for seed in range(40):
        kid = kid_metric(6, subset_size=50, subsets=10)
        kid.update(gaussian(100, torch.zeros(6), torch.eye(6), seed=2 * seed), real=True)
        kid.update(gaussian(100, torch.zeros(6), torch.eye(6), seed=2 * seed + 1), real=False)
        values.append(float(kid.compute()[0]))
    values = torch.tensor(values)
    stderr = values.std() / math.sqrt(len(values))
    assert abs(values.mean()) < 3 * stderr
    assert (values < 0).any() and (values > 0).any()
    shifted = kid_metric(6, subset_size=50, subsets=10)
    shifted.update(gaussian(100, torch.zeros(6), torch.eye(6), seed=0), real=True)
    shifted.update(gaussian(100, torch.ones(6), torch.eye(6), seed=1), real=False)
    assert float(shifted.compute()[0]) > 20 * values.abs().max()


def test_kid_subset_size_is_capped_by_the_samples_present():
    kid = kid_metric(4, subset_size=1000, subsets=5)
    kid.update(gaussian(30, torch.zeros(4), torch.eye(4), seed=0), real=True)
    kid.update(gaussian(20, torch.zeros(4), torch.eye(4), seed=1), real=False)
    assert torch.isfinite(kid.compute()[0])
    assert kid.subset_size == 20


def test_precision_recall_on_a_worked_example():
    """1-D, k = 1. Real 0..9: every real radius is 1. Fakes 0.5, 1.5 lie within 1 of a real
    point, 100 does not: precision 2/3. Fake radii: 1, 1 and 98.5 (100's nearest other fake is
    1.5), so the outlier's ball [1.5, 198.5] covers the reals >= 2 and the others cover 0, 1:
    recall 1 (the known weakness the paper's k = 3 softens)."""
    real = torch.arange(10.0).unsqueeze(1)
    fake = torch.tensor([[0.5], [1.5], [100.0]])
    precision, recall = precision_recall(real, fake, k=1)
    assert float(precision) == pytest.approx(2 / 3)
    assert float(recall) == 1.0
    same = precision_recall(real, real.clone(), k=3)
    assert [float(v) for v in same] == [1.0, 1.0]
    with pytest.raises(ValueError, match="needs more than 3 fake samples"):
        precision_recall(real, fake, k=3)


def test_canonical_order_depends_on_the_set_not_the_order():
    features = torch.randn(50, 7, dtype=torch.float64)
    shuffled = features[torch.randperm(50)]
    assert torch.equal(canonical_order(features), canonical_order(shuffled))


def test_inception_score_of_confident_uniform_classes_is_the_class_count():
    """IS = exp E KL(p(y|x) || p(y)): one-hot predictions spread evenly over 5 classes give 5;
    the same prediction everywhere gives 1."""
    logits = 50 * F.one_hot(torch.arange(100) % 5, 5).double()
    quality = SampleQuality(GivenFeatures(2, 5), metrics=["is"], is_splits=1)
    quality.update(torch.cat([torch.zeros(100, 2), logits], 1), real=False)
    assert quality.compute()["is"] == pytest.approx(5.0, rel=1e-6)
    quality.reset_fake()
    quality.update(torch.cat([torch.zeros(100, 2), logits[:1].repeat(100, 1)], 1), real=False)
    assert quality.compute()["is"] == pytest.approx(1.0, rel=1e-6)


def test_sample_quality_keeps_real_statistics_across_evaluations():
    quality = SampleQuality(GivenFeatures(4), metrics=["fid", "kid", "pr"], kid_subset_size=50)
    real = gaussian(200, torch.zeros(4), torch.eye(4), seed=0).float()
    quality.update(real, real=True)
    quality.update(real, real=False)
    first = quality.compute()
    assert first["fid"] == pytest.approx(0.0, abs=1e-6)
    assert first["precision"] == first["recall"] == 1.0
    quality.reset_fake()
    assert quality.has_real
    quality.update(real + 10, real=False)  # the real statistics are still there
    second = quality.compute()
    assert second["fid"] == pytest.approx(100 * 4, rel=1e-6)  # a mean shift of 10 in 4 dims
    assert second["precision"] == 0.0
    quality.reset()
    assert not quality.has_real


def test_inception_score_needs_an_extractor_with_logits():
    with pytest.raises(ValueError, match="no classifier head"):
        SampleQuality(GivenFeatures(4, num_classes=None), metrics=["is"])
    with pytest.raises(ValueError, match="Unknown sample-quality metrics"):
        SampleQuality(GivenFeatures(4), metrics=["fid", "sharpness"])


# ---- LeNet ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_lenet():
    data = Digits()
    data.setup()
    x, y = data.train_set.x.float() / 255, data.train_set.y
    net = train_lenet(x, y, epochs=15, seed=0)
    return net, data


def test_lenet_learns_digits(digits_lenet):
    net, data = digits_lenet
    x, y = data.test_set.x, data.test_set.y
    assert accuracy(net, x, y) > 0.9  # a usable classifier, so its features mean something


def _blur(x, sigma):
    radius = 3
    t = torch.arange(-radius, radius + 1.0)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = (k / k.sum()).view(1, 1, 1, -1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), k)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), k.transpose(2, 3))


def test_lenet_fid_grows_monotonically_with_noise_and_blur(digits_lenet):
    net, data = digits_lenet
    real, other = data.test_set.x, data.train_set.x[:359].float() / 255

    def fid(fake):
        quality = SampleQuality(net, metrics=["fid"])
        quality.update(real, real=True)
        quality.update(fake.clamp(0, 1), real=False)
        return quality.compute()["fid"]

    g = torch.Generator().manual_seed(0)
    noise = torch.randn(other.shape, generator=g)
    noisy = [fid(other + s * noise) for s in (0.0, 0.1, 0.2, 0.4, 0.8)]
    blurred = [fid(_blur(other, s)) for s in (0.3, 0.6, 1.0, 1.5)]
    assert noisy == sorted(noisy) and noisy[-1] > 5 * noisy[0], noisy
    assert blurred == sorted(blurred) and blurred[-1] > 2 * blurred[0], blurred


def test_lenet_saves_loads_and_never_overwrites(digits_lenet, tmp_path):
    net, data = digits_lenet
    path = save_lenet(net, tmp_path / "lenet.pt", data="digits")
    loaded = build_extractor("lenet", path)
    x = data.test_set.x[:16]
    assert torch.equal(loaded(x), net(x))
    assert loaded(x).dtype == torch.float64 and loaded(x).shape == (16, 128)
    assert load_lenet(path).meta == {"data": "digits"}
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="left as it is"):
        save_lenet(net, path)
    assert path.read_bytes() == before


def test_lenet_errors_say_what_to_do(digits_lenet, tmp_path):
    net, _ = digits_lenet
    with pytest.raises(FileNotFoundError, match="train_lenet.py"):
        load_lenet(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a LeNet saved by genflow"):
        load_lenet(tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="trained on 1-channel images"):
        net(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="needs the weights of a LeNet"):
        build_extractor("lenet")
    with pytest.raises(ValueError, match="Unknown feature extractor"):
        build_extractor("vgg")
    assert not LeNet().training  # extractors are frozen in eval mode
