"""The image-to-image benchmark (experiments/benchmarks/image2image.py) at 16 px: its labels
match the DataModules, its classifiers learn the generated domains, its figures are right on
hand-made translators whose answers are known, and a tiny end-to-end run writes its table and
JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from genflow.data.image2image import PALETTE, colorize

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))

import image2image as bench  # noqa: E402

SIZE = {"size": 16}
EPOCHS = 8  # classifier epochs: enough at 16 px, seconds each


@pytest.fixture(scope="module")
def cyclegan_setup():
    data = bench.make_data("cyclegan", SIZE)
    train, test = bench.labelled_splits(data)
    return data, test, bench.train_classifiers(train, test, 2, EPOCHS)


@pytest.fixture(scope="module")
def stargan_setup():
    data = bench.make_data("stargan", SIZE)
    train, test = bench.labelled_splits(data)
    return data, test, bench.train_classifiers(train, test, data.num_classes, EPOCHS)


class Identity:
    """A translator that returns its input: no domain is ever changed."""

    def eval(self):
        return self

    def translate(self, x, target=None):
        return x


class Recolour(Identity):
    """A perfect translator of the colour domains: the gray digit (channel maximum) painted in
    the target's colour, or left gray (CycleGAN's domain A, target 0)."""

    def __init__(self, cyclegan: bool) -> None:
        self.cyclegan = cyclegan

    def translate(self, x, target=None):
        gray = x.amax(1, keepdim=True)  # (B, 1, H, W)
        if self.cyclegan:
            if target == 0:
                return gray.expand(-1, 3, -1, -1)
            target = torch.zeros(len(x), dtype=torch.long)  # domain B: red, a palette colour
        return colorize(gray * 255, torch.tensor(PALETTE)[target]).float() / 255


class Lookup(Identity):
    """pix2pix's oracle: hands back the true targets, batch after batch."""

    def __init__(self, targets) -> None:
        self.batches = iter(targets.split(bench.EVAL_BATCH))

    def translate(self, x, target=None):
        return next(self.batches)


@pytest.mark.parametrize("name", ["cyclegan", "stargan", "pix2pix"])
def test_labels_follow_the_datamodules_test_split(name):
    """labelled_splits recomputes the DataModule's draw (it raises if an image differs); the
    digits it assigns are the bundled ones, every class present, and the domains are right."""
    data = bench.make_data(name, SIZE)
    train, test = bench.labelled_splits(data)
    if name == "cyclegan":  # both domains' images, train and test
        n_train = len(data.train_set.a) + len(data.train_set.b)
        n_test = len(data.test_set.a) + len(data.test_set.b)
    else:
        n_train, n_test = len(data.train_set), len(data.test_set)
    assert (len(train), len(test)) == (n_train, n_test)
    assert set(test.digit.tolist()) == set(range(10))
    assert test.x.shape[1:] == (data.data_shape[0] if name != "pix2pix" else 1, 16, 16)
    if name == "cyclegan":  # A is gray (equal channels), B is coloured
        gray = (test.x[:, 0] == test.x[:, 1]).flatten(1).all(1) & (
            test.x[:, 1] == test.x[:, 2]
        ).flatten(1).all(1)
        assert torch.equal(gray, test.domain == 0)
    if name == "stargan":  # the domain's palette colour is the only one lit
        for k in range(data.num_colors):
            lit = test.x[test.domain == k].amax((0, 2, 3)) > 0
            assert lit.tolist() == [c > 0 for c in PALETTE[k]]
    if name == "pix2pix":
        assert torch.equal(test.inputs, data.test_set.a.x)


def test_classifiers_learn_the_generated_domains(cyclegan_setup, stargan_setup):
    for _, _, clf in (cyclegan_setup, stargan_setup):
        assert clf.domain_accuracy >= 0.99  # the domains are colours: easy
        assert clf.digit_accuracy >= 0.85


def test_identity_translation_changes_no_domain(cyclegan_setup, stargan_setup):
    """Returning the input: nothing lands in the target domain (up to the classifier's own
    errors), every digit is kept (digit accuracy = the classifier's), no cycle error."""
    data, test, clf = cyclegan_setup
    f = bench.cyclegan_figures(Identity(), test, clf)
    assert f["domain_acc"] == pytest.approx(1 - clf.domain_accuracy, abs=1e-6)
    assert f["digit_acc"] == pytest.approx(clf.digit_accuracy, abs=1e-6)
    assert f["cycle"] == 0
    data, test, clf = stargan_setup
    f = bench.stargan_figures(Identity(), test, clf, data.num_classes)
    assert f["domain_acc"] <= 1 - clf.domain_accuracy + 1e-6
    assert f["digit_acc"] == pytest.approx(clf.digit_accuracy, abs=1e-6)
    assert f["rec"] == 0


def test_a_perfect_recolouring_reaches_every_target(cyclegan_setup, stargan_setup):
    """Translations that are real images of the target domain with the source's digit: domain
    accuracy 1, digit accuracy = the classifier's, and they cycle back exactly where no colour
    is lost (A -> red -> A, and StarGAN back to the source's own colour)."""
    data, test, clf = cyclegan_setup
    f = bench.cyclegan_figures(Recolour(cyclegan=True), test, clf)
    assert f["domain_acc"] >= 0.99
    assert f["digit_acc"] == pytest.approx(clf.digit_accuracy, abs=1e-6)
    assert f["cycle_a"] == pytest.approx(0, abs=1e-6)
    assert f["cycle_b"] > 0.01  # gray -> red does not bring back B's other colours
    data, test, clf = stargan_setup
    f = bench.stargan_figures(Recolour(cyclegan=False), test, clf, data.num_classes)
    assert f["domain_acc"] >= 0.99
    assert f["digit_acc"] == pytest.approx(clf.digit_accuracy, abs=1e-6)
    assert f["rec"] == pytest.approx(0, abs=1e-6)


def test_pix2pix_figures_against_known_translators():
    data = bench.make_data("pix2pix", SIZE)
    train, test = bench.labelled_splits(data)
    clf = bench.train_classifiers(train, test, 1, EPOCHS)
    assert clf.domain is None and clf.digit_accuracy >= 0.85
    f = bench.pix2pix_figures(Identity(), test, clf)
    assert f["l1"] == f["l1_input"] == pytest.approx((test.inputs - test.x).abs().mean().item())
    assert f["l1"] > 0.05  # edges are not the digit: a real baseline to beat
    f = bench.pix2pix_figures(Lookup(test.x), test, clf)
    assert f["l1"] == 0
    assert f["digit_acc"] == pytest.approx(clf.digit_accuracy, abs=1e-6)


def test_cyclegan_needs_a_finite_epoch_count():
    with pytest.raises(ValueError, match="max_epochs must be >= 1"):
        bench.run_model("cyclegan", 0.01, max_epochs=-1, data_overrides=SIZE)


def test_end_to_end_writes_a_row_per_model(tmp_path, capsys):
    """Seconds of training of narrow networks at 16 px: one table row and one JSON result per
    model, with the figures each model defines."""
    out = tmp_path / "i2i.json"
    argv = "--models cyclegan,stargan,pix2pix --minutes 0.01 --max-epochs 1 --size 16"
    argv += f" --base-channels 4 --classifier-epochs 2 --out {out}"
    record = bench.main(argv.split())
    table = capsys.readouterr().out.split("\n\n")[-1]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| model", "| cyclegan", "| stargan", "| pix2pix"]
    saved = json.loads(out.read_text())
    assert saved["machine"]["threads"] == 1 and saved["machine"]["wall_seconds"] > 0
    results = {r["model"]: r for r in saved["results"]}
    assert record["results"][0]["model"] == "cyclegan"
    for name in ("cyclegan", "stargan"):
        figures = results[name]["figures"]
        assert 0 <= figures["domain_acc"] <= 1 and 0 <= figures["digit_acc"] <= 1
        assert results[name]["classifiers"]["domain_clf_acc"] is not None
        assert 0 < results[name]["epochs"] <= 1
    assert results["cyclegan"]["figures"]["cycle"] > 0
    assert results["stargan"]["figures"]["rec"] > 0
    assert results["pix2pix"]["figures"]["l1_input"] > 0
    assert results["pix2pix"]["classifiers"]["domain_clf_acc"] is None
