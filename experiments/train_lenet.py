"""Train the LeNet whose features give the domain FID / KID / IS of a dataset, and save it.

    .venv/bin/python experiments/train_lenet.py --config experiments/vae/mnist10k.yaml \\
        --out runs/lenet/mnist10k.pt

Reads the `data:` section of any genflow config, trains on its training split (8-bit images,
half the batches binarized so the same features serve binarized models), reports the accuracy on
its test split and saves weights, architecture and provenance. The file is never overwritten:
FIDs are comparable only when computed with the same LeNet file.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import yaml
from jsonargparse import ArgumentParser
from torch.utils.data import DataLoader

from genflow.data.base import BaseDataModule, BatchCollate
from genflow.metrics.lenet import accuracy, save_lenet, train_lenet


def build_data(config_path: str, overrides: dict) -> BaseDataModule:
    """The DataModule of a genflow config's `data:` section, with 8-bit images."""
    with open(config_path) as f:
        data = yaml.safe_load(f).get("data")
    if not data:
        raise ValueError(f"{config_path} has no `data:` section to train the LeNet on.")
    init = {**data.get("init_args", {}), **overrides}
    if "binarize" in init:
        init["binarize"] = "none"
    parser = ArgumentParser()
    parser.add_subclass_arguments(BaseDataModule, "data")
    cfg = parser.parse_object({"data": {"class_path": data["class_path"], "init_args": init}})
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # < 4.49
    return instantiate(cfg).data


def tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole (small) split as float [0, 1] images and int64 labels."""
    batches = DataLoader(dataset, batch_size=1000, collate_fn=BatchCollate("none"))
    xs, ys = zip(*batches, strict=True)
    return torch.cat(xs).float(), torch.cat(ys)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", required=True, help="a genflow config whose data: section to use")
    p.add_argument("--out", required=True, help="where to save the LeNet (.pt); never overwritten")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--data-args", default="{}", help="JSON overrides of the data init_args")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = build_data(args.config, json.loads(args.data_args))
    data.setup("fit")
    x_train, y_train = tensors(data.train_set)
    x_test, y_test = tensors(data.test_set)
    start = time.perf_counter()
    net = train_lenet(x_train, y_train, args.epochs, args.batch_size, args.lr, args.seed)
    seconds = time.perf_counter() - start
    result = {
        "out": args.out,
        "config": args.config,
        "train_images": len(x_train),
        "test_accuracy": accuracy(net, x_test, y_test),
        "test_accuracy_binarized": accuracy(net, torch.bernoulli(x_test), y_test),
        "train_seconds": round(seconds, 1),
        "epochs": args.epochs,
    }
    save_lenet(net, args.out, **{k: v for k, v in result.items() if k != "out"})
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
