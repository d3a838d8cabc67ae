"""MNIST-10k benchmark of genflow's Bernoulli VAE against the pythae peer (../shared/peers.md).

Purpose: train `genflow.models.VAE` through genflow's own path (the `IDX` DataModule, the VAE
LightningModule and a CPU `pytorch_lightning.Trainer`) and report, next to the peer's figures,
the test IWAE NLL (K = 1000) and the negative ELBO at fixed epochs, the figure reached in a
fixed wall-clock budget, seconds per epoch and training images per second.

Protocol (MNIST-10k, binarized): images 0-7,999 of MNIST's t10k file train, images 8,000-9,999
evaluate. Training batches are binarized afresh (`torch.bernoulli(x)`); the 2,000 evaluation
images are binarized once as `torch.bernoulli(x_eval, generator=torch.Generator().manual_seed(0))`
(genflow's `IDX(binarize="dynamic", seed=0)` does exactly this). NLL = -mean over the 2,000 images
of the IWAE bound with K = 1000, in nats summed over the 784 pixels. Latent 32, Adam, batch 128,
one CPU thread. Evaluation runs inside `torch.random.fork_rng()` with its own seed, so it neither
disturbs training nor varies between runs; Lightning's validation loop is off for the same reason
(it would draw from the training RNG), and its time is not counted in s/epoch.

Reproduce the figures of experiments/benchmarks/README.md (from the repository root, about
16 minutes on one thread of a 2-core CPU):

    .venv/bin/python experiments/benchmarks/mnist10k_vae.py --arch mlp --hidden 1024 \
        --epochs 10,30,100 --minutes 10 --k 1000 --threads 1 \
        --out runs/benchmarks/mnist10k_vae.json
"""

from __future__ import annotations

import argparse
import functools

import mnist10k
import torch
from mnist10k import fmt
from torch import Tensor

from genflow.data import IDX
from genflow.models import VAE

EVAL_SEED = 1234  # the seed of the importance samples, fixed so figures repeat exactly

# pythae 0.1.2 default MLP VAE, 854k params (../shared/peers.md)
PEER = {
    "name": "pythae 0.1.2, default MLP (784-512-32, 854k params)",
    "iwae_nll": {10: 114.9, 30: 102.1, 100: 97.6},
    "neg_elbo": {100: 104.5},
    "img_per_s": 3900,
}


# ---- model ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mnist10k.add_protocol_args(p, epochs="10,30,100")
    p.add_argument("--k", type=int, default=1000, help="importance samples of the IWAE bound")
    p.add_argument("--arch", choices=("mlp", "conv", "seed"), default="mlp")
    p.add_argument("--hidden", default="1024", help="MLP widths, comma-separated")
    p.add_argument("--channels", type=int, default=16, help="first conv width")
    p.add_argument("--latent", type=int, default=32)
    mnist10k.add_optimizer_args(p, batch_size=128)
    p.add_argument("--out", default=None, help="JSON file for the results")
    return p.parse_args(argv)


def make_model(args: argparse.Namespace, data: IDX) -> VAE:
    return VAE(
        latent_dim=args.latent,
        likelihood="bernoulli",
        architecture=args.arch,
        hidden_dims=tuple(mnist10k.int_list(args.hidden)),
        channels=args.channels,
        num_importance_samples=args.k,
        **mnist10k.model_kwargs(args, data),
    )


# ---- evaluation -------------------------------------------------------------------------------
@torch.no_grad()
def neg_elbo(model: VAE, x: Tensor, draws: int = 10, batch: int = 500) -> float:
    """-ELBO in nats: single-sample reconstruction term + closed-form KL, mean of `draws`."""
    was_training = model.training
    model.eval()
    terms = [model.elbo_terms(xb) for _ in range(draws) for xb in x.split(batch)]
    model.train(was_training)
    return torch.cat([kl - rec for rec, kl in terms]).mean().item()


def iwae_nll(model: VAE, x: Tensor, k: int, batch: int = 500) -> float:
    """-mean IWAE bound in nats with exactly k importance samples (`VAE.log_prob`)."""
    log_p = torch.cat([model.log_prob(xb, num_samples=k) for xb in x.split(batch)])
    if not torch.isfinite(log_p).all():
        raise FloatingPointError("non-finite IWAE bound on the evaluation images")
    return -log_p.mean().item()


def evaluate(model: VAE, tag: str, x_eval: Tensor, x_train: Tensor, k: int) -> dict[str, float]:
    """Test IWAE NLL and -ELBO (and train -ELBO), seeded, without touching the training RNG."""

    def figures() -> dict[str, float]:
        return {
            "iwae_nll": iwae_nll(model, x_eval, k),
            "neg_elbo": neg_elbo(model, x_eval),
            "train_neg_elbo": neg_elbo(model, x_train),
        }

    return mnist10k.timed_eval(figures, seed=EVAL_SEED)


# ---- report -----------------------------------------------------------------------------------
def epoch_table(run: dict) -> list[str]:
    lines = [
        "| epoch | genflow IWAE NLL | peer IWAE NLL | genflow −ELBO | peer −ELBO | "
        "genflow train −ELBO |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in run["rows"]:
        e = row["epoch"]
        lines.append(
            f"| {e} | {fmt(row['iwae_nll'])} | {fmt(PEER['iwae_nll'].get(e))} | "
            f"{fmt(row['neg_elbo'])} | {fmt(PEER['neg_elbo'].get(e))} | "
            f"{fmt(row['train_neg_elbo'])} |"
        )
    lines.append(
        f"\nTraining speed: {run['s_per_epoch']:.2f} s/epoch, {run['img_per_s']:.0f} img/s "
        f"(peer ≈{PEER['img_per_s']} img/s)."
    )
    return lines


def minutes_line(run: dict) -> str:
    return (
        f"\n{run['minutes']:g}-minute run: {run['epochs']:.1f} epochs, IWAE NLL "
        f"{run['iwae_nll']:.1f}, −ELBO {run['neg_elbo']:.1f} (train −ELBO "
        f"{run['train_neg_elbo']:.1f})."
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = mnist10k.make_data(args)
    x_eval, x_train = mnist10k.eval_images(data), mnist10k.train_images(data)
    extra = {"eval_seed": EVAL_SEED, "peer": PEER}
    results = mnist10k.describe(args, make_model(args, data), extra)
    print(f"{args.arch} VAE, {results['params']:,} params, {args.threads} thread(s)")
    score = functools.partial(evaluate, x_eval=x_eval, x_train=x_train, k=args.k)
    results |= mnist10k.run_epochs(args, data, make_model, score)
    headline = ("IWAE NLL", "iwae_nll", 2)
    results |= mnist10k.run_minutes(args, data, make_model, score, headline)
    mnist10k.report(results, mnist10k.markdown(results, epoch_table, minutes_line), args.out)
    return results


if __name__ == "__main__":
    main()
