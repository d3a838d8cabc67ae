"""Classical density models fitted without a gradient optimizer: a Gaussian mixture by
expectation-maximization (Dempster, Laird & Rubin 1977) and probabilistic PCA (Tipping & Bishop
1999, J. R. Statist. Soc. B 61(3)), in closed form or by EM.

Both are fitted in Lightning with `automatic_optimization = False`: each training epoch
accumulates sufficient statistics over its batches (in float64), the statistics are summed over
the DDP ranks at the epoch's end, and one update (an M-step or the closed-form solution) follows.
Discrete data is dequantized with each example's fixed noise (`hashed_uniform`), so EM sees one
fixed data set and its log-likelihood never decreases; `log_prob` subtracts D * b * ln 2 as the
flows do, so bits/dim compare across families.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from genflow.models.base import GenerativeModel
from genflow.nn.flows import quantize
from genflow.nn.noise import bin_levels, fixed_dequantize

CovarianceType = Literal["full", "diag"]
LOG_2PI = math.log(2 * math.pi)


# ---- Gaussian mixture: the math -------------------------------------------------------------
def component_log_probs(x: Tensor, means: Tensor, covariances: Tensor, kind: str) -> Tensor:
    """log N(x_n; mu_k, Sigma_k), (N, K), for x (N, D), means (K, D), covariances (K, D, D)
    (full) or (K, D) (diag)."""
    diff = x[None] - means[:, None]  # (K, N, D)
    if kind == "diag":
        maha = (diff.pow(2) / covariances[:, None]).sum(-1)  # (K, N)
        log_det = covariances.log().sum(-1)  # (K,)
    else:
        chol = torch.linalg.cholesky(covariances)  # (K, D, D)
        sol = torch.linalg.solve_triangular(chol, diff.transpose(1, 2), upper=False)  # (K, D, N)
        maha = sol.pow(2).sum(1)  # (K, N)
        log_det = 2 * chol.diagonal(dim1=1, dim2=2).log().sum(-1)  # (K,)
    return -0.5 * (x.shape[1] * LOG_2PI + log_det[:, None] + maha).T


def gmm_log_prob(x: Tensor, weights: Tensor, means: Tensor, covariances: Tensor, kind: str):
    """log sum_k pi_k N(x; mu_k, Sigma_k), (N,)."""
    joint = weights.log() + component_log_probs(x, means, covariances, kind)  # (N, K)
    return torch.logsumexp(joint, dim=1)


def e_step(x: Tensor, weights: Tensor, means: Tensor, covariances: Tensor, kind: str):
    """Responsibilities r_nk = p(k | x_n), (N, K), and log p(x_n), (N,)."""
    joint = weights.log() + component_log_probs(x, means, covariances, kind)  # (N, K)
    log_px = torch.logsumexp(joint, dim=1)
    return (joint - log_px[:, None]).exp(), log_px


def gmm_statistics(x: Tensor, resp: Tensor, log_px: Tensor, kind: str) -> dict[str, Tensor]:
    """The sums EM needs over a batch: N, sum r_nk, sum r_nk x_n, sum r_nk x_n x_n^T (full) or
    sum r_nk x_n^2 (diag), and sum log p(x_n)."""
    second = torch.einsum("nk,nd,ne->kde", resp, x, x) if kind == "full" else resp.T @ x.pow(2)
    return {
        "n": x.new_tensor(float(len(x))),
        "nk": resp.sum(0),  # (K,)
        "sx": resp.T @ x,  # (K, D)
        "sxx": second,  # (K, D, D) or (K, D)
        "log_lik": log_px.sum(),
    }


def gmm_m_step(stats: dict[str, Tensor], kind: str, reg: float):
    """Maximum-likelihood weights, means and covariances from the summed statistics; `reg` is
    added to the covariance diagonals to keep them positive definite."""
    nk = stats["nk"].clamp(min=1e-12)
    weights = nk / stats["n"]
    means = stats["sx"] / nk[:, None]
    if kind == "diag":
        cov = stats["sxx"] / nk[:, None] - means.pow(2) + reg
    else:
        outer = means[:, :, None] * means[:, None, :]  # (K, D, D)
        eye = torch.eye(means.shape[1], dtype=means.dtype, device=means.device)
        cov = stats["sxx"] / nk[:, None, None] - outer + reg * eye
        cov = 0.5 * (cov + cov.transpose(1, 2))  # exact symmetry for the Cholesky factor
    return weights, means, cov


def kmeans_plusplus(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """k centres of x (N, D) by k-means++ seeding (Arthur & Vassilvitskii 2007): the first
    uniformly, each next one with probability proportional to its squared distance to the
    nearest centre chosen so far."""
    first = torch.randint(len(x), (1,), generator=generator)
    centres = [x[first.item()]]
    dist2 = (x - centres[0]).pow(2).sum(1)  # (N,)
    for _ in range(1, k):
        probs = dist2 / dist2.sum() if dist2.sum() > 0 else torch.ones_like(dist2) / len(x)
        index = torch.multinomial(probs.cpu().float(), 1, generator=generator).item()
        centres.append(x[index])
        dist2 = torch.minimum(dist2, (x - x[index]).pow(2).sum(1))
    return torch.stack(centres)


# ---- PPCA: the math -------------------------------------------------------------------------
def ppca_log_prob(x: Tensor, mean: Tensor, W: Tensor, sigma2: Tensor) -> Tensor:
    """log N(x; mu, W W^T + sigma^2 I), (N,), through the q x q matrix M = W^T W + sigma^2 I
    (Woodbury identity and determinant lemma): O(N D q) instead of O(D^3)."""
    d, q = W.shape
    diff = x - mean  # (N, D)
    M = W.T @ W + sigma2 * torch.eye(q, dtype=W.dtype, device=W.device)  # (q, q)
    proj = diff @ W  # (N, q)
    maha = (diff.pow(2).sum(1) - (proj * torch.linalg.solve(M, proj.T).T).sum(1)) / sigma2
    log_det = (d - q) * sigma2.log() + torch.linalg.slogdet(M)[1]
    return -0.5 * (d * LOG_2PI + log_det + maha)


def ppca_closed_form(cov: Tensor, q: int) -> tuple[Tensor, Tensor]:
    """Maximum-likelihood W (D, q) and sigma^2 from the data covariance S: sigma^2 = mean of the
    D - q smallest eigenvalues, W = U_q (Lambda_q - sigma^2 I)^(1/2) (Tipping & Bishop 1999,
    section 3.2, with the rotation R = I)."""
    eigvals, eigvecs = torch.linalg.eigh(cov)  # ascending
    eigvals, eigvecs = eigvals.flip(0), eigvecs.flip(1)  # descending
    sigma2 = eigvals[q:].mean()
    W = eigvecs[:, :q] * (eigvals[:q] - sigma2).clamp(min=0).sqrt()
    return W, sigma2


def ppca_max_log_likelihood(cov: Tensor, q: int) -> Tensor:
    """The mean log-likelihood per example at the ML solution, -1/2 (D ln 2 pi + sum_{j<=q}
    ln lambda_j + (D - q) ln sigma^2 + D), lambda the eigenvalues of S (Tipping & Bishop 1999)."""
    eigvals = torch.linalg.eigvalsh(cov).flip(0)
    d = len(eigvals)
    sigma2 = eigvals[q:].mean()
    return -0.5 * (d * LOG_2PI + eigvals[:q].log().sum() + (d - q) * sigma2.log() + d)


def ppca_posterior(x: Tensor, mean: Tensor, W: Tensor, sigma2: Tensor) -> tuple[Tensor, Tensor]:
    """E[z|x] = M^-1 W^T (x - mu), (N, q), and Cov[z|x] = sigma^2 M^-1, (q, q)."""
    q = W.shape[1]
    M_inv = torch.linalg.inv(W.T @ W + sigma2 * torch.eye(q, dtype=W.dtype, device=W.device))
    return (x - mean) @ W @ M_inv, sigma2 * M_inv


def ppca_em_statistics(x: Tensor, mean: Tensor, W: Tensor, sigma2: Tensor) -> dict[str, Tensor]:
    """Sums over a batch for one EM step: A = sum (x - mu) E[z]^T, B = sum E[z z^T],
    sum |x - mu|^2, N and sum log p(x) under the current parameters."""
    ez, cov_z = ppca_posterior(x, mean, W, sigma2)  # (N, q), (q, q)
    diff = x - mean
    return {
        "n": x.new_tensor(float(len(x))),
        "A": diff.T @ ez,  # (D, q)
        "B": len(x) * cov_z + ez.T @ ez,  # (q, q)
        "sq": diff.pow(2).sum(),
        "log_lik": ppca_log_prob(x, mean, W, sigma2).sum(),
    }


def ppca_em_update(stats: dict[str, Tensor], d: int) -> tuple[Tensor, Tensor]:
    """W = A B^-1, sigma^2 = (sum |x - mu|^2 - 2 tr(W^T A) + tr(B W^T W)) / (N D)
    (Tipping & Bishop 1999, the EM algorithm, written with the summed statistics)."""
    W = torch.linalg.solve(stats["B"], stats["A"].T).T  # A B^-1, B symmetric
    fit = stats["sq"] - 2 * (W * stats["A"]).sum() + (stats["B"] * (W.T @ W)).sum()
    return W, fit / (stats["n"] * d)


# ---- shared Lightning plumbing --------------------------------------------------------------
class _EpochFitModel(GenerativeModel):
    """Accumulates statistics over a training epoch and updates once at its end.

    The fitted quantities are nn.Parameters that no optimizer ever sees (configure_optimizers
    returns None): they require grad only because DistributedDataParallel refuses to wrap a
    module without such parameters. Every update happens in place under no_grad.
    """

    logs_likelihood_in_validation = True

    def __init__(self, data_shape, num_bits, num_classes, noise_seed: int) -> None:
        super().__init__(data_shape, num_bits, num_classes)
        self.automatic_optimization = False
        self.noise_seed = noise_seed
        self.register_buffer("initialized", torch.tensor(False))
        self._stats: dict[str, Tensor] = {}
        self.log_likelihoods: list[float] = []  # mean train log-likelihood per epoch, in nats

    def configure_optimizers(self) -> None:
        return None

    @property
    def ddp_record(self) -> dict[str, list[float]]:
        """The per-epoch log-likelihoods, which every DDP rank must agree on."""
        return {"log_likelihoods": list(self.log_likelihoods)}

    # ---- checkpoints: a resumed fit keeps the per-epoch likelihood history -------------------
    # (The fitted quantities and `initialized` are in the state_dict. Checkpoints are written at
    # epoch ends, after the update, so no partial statistics are pending.)
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["em_state"] = {"log_likelihoods": list(self.log_likelihoods)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.log_likelihoods = list(checkpoint.get("em_state", {}).get("log_likelihoods", []))

    # ---- data -------------------------------------------------------------------------------
    @property
    def _log_bin_volume(self) -> float:
        return 0.0 if self.num_bits is None else -self.num_dims * self.num_bits * math.log(2)

    def model_input(self, x: Tensor) -> Tensor:
        """(B, D) float64: the data flattened, discrete values dequantized with fixed noise."""
        if self.num_bits is not None:
            x = fixed_dequantize(x.double(), self.num_bits, self.noise_seed)
        return x.flatten(1).double()

    def _to_data(self, u: Tensor) -> Tensor:
        u = u.to(torch.get_default_dtype()).reshape(-1, *self.data_shape)
        return u if self.num_bits is None else quantize(u, self.num_bits)

    def _bin_centres(self, x: Tensor) -> Tensor:
        if self.num_bits is not None:
            x = (bin_levels(x.double(), self.num_bits) + 0.5) / 2**self.num_bits
        return x.flatten(1).double()

    # ---- statistics ---------------------------------------------------------------------------
    def _accumulate(self, stats: dict[str, Tensor]) -> None:
        for key, value in stats.items():
            self._stats[key] = self._stats[key] + value if key in self._stats else value

    def _reduced_statistics(self) -> dict[str, Tensor]:
        """This epoch's statistics summed over the DDP ranks (and cleared for the next one)."""
        stats, self._stats = self._stats, {}
        if self._trainer is not None and self.trainer.world_size > 1:
            stats = {k: self.trainer.strategy.reduce(v, reduce_op="sum") for k, v in stats.items()}
        return stats

    def _log_epoch_likelihood(self, stats: dict[str, Tensor]) -> None:
        mean = (stats["log_lik"] / stats["n"]).item()
        self.log_likelihoods.append(mean)
        self.log("train/log_likelihood", mean, on_step=False, on_epoch=True, prog_bar=True)

    def _broadcast(self, value: Tensor) -> Tensor:
        """Rank 0's tensor on every rank (initializations drawn from a rank's own batch)."""
        if self._trainer is None or self.trainer.world_size == 1:
            return value
        return self.trainer.strategy.broadcast(value.cpu(), src=0).to(value.device)

    # ---- evaluation -------------------------------------------------------------------------
    def _log_density(self, u: Tensor) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def log_prob(self, x: Tensor) -> Tensor:
        """log P(x) in nats of the data as yielded, (B,), with each example's fixed noise."""
        self.check_batch(x)
        log_p = self._log_density(self.model_input(x)) + self._log_bin_volume
        return log_p.to(x.dtype if x.is_floating_point() else torch.get_default_dtype())

    def _eval_step(self, batch, stage: str) -> None:
        log_p = self.log_prob(batch[0])
        self.log_likelihood_metrics(stage, log_p)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")


# ---- GMM ------------------------------------------------------------------------------------
class GMM(_EpochFitModel):
    """Gaussian mixture with K components fitted by EM: each training epoch is one E-step over
    all its batches and one M-step at its end, so the logged `train/log_likelihood` (under the
    parameters the epoch started with) never decreases.

    Initialization, on the first training batch (rank 0's under DDP, then broadcast): k-means++
    or K random points as means, the batch covariance for every component, equal weights.

    Args:
        num_components: K.
        covariance_type: full or diag.
        init: kmeans++ or random.
        reg_covar: added to the covariance diagonals (keeps them positive definite).
        seed: seed of the initialization.
        noise_seed: seed of the fixed dequantization noise (discrete data).
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (2,),
        num_bits: int | None = None,
        num_classes: int = 1,
        num_components: int = 8,
        covariance_type: CovarianceType = "full",
        init: Literal["kmeans++", "random"] = "kmeans++",
        reg_covar: float = 1e-6,
        seed: int = 0,
        noise_seed: int = 0,
    ) -> None:
        super().__init__(data_shape, num_bits, num_classes, noise_seed)
        self.save_hyperparameters()
        _check_gmm_args(num_components, covariance_type, init, reg_covar)
        k, d = num_components, self.num_dims
        self.kind, self.init, self.reg, self.seed = covariance_type, init, reg_covar, seed
        self.weights = nn.Parameter(torch.full((k,), 1.0 / k, dtype=torch.float64))
        self.means = nn.Parameter(torch.zeros(k, d, dtype=torch.float64))
        cov = torch.eye(d, dtype=torch.float64).repeat(k, 1, 1) if self.kind == "full" else None
        self.covariances = nn.Parameter(cov if cov is not None else torch.ones(k, d).double())

    @property
    def num_components(self) -> int:
        return len(self.weights)

    def _params(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.weights.detach(), self.means.detach(), self.covariances.detach()

    def _log_density(self, u: Tensor) -> Tensor:
        return gmm_log_prob(u, *self._params(), self.kind)

    @torch.no_grad()
    def _initialize(self, u: Tensor) -> None:
        if len(u) < self.num_components:
            raise ValueError(
                f"GMM initializes its {self.num_components} components from the first training "
                f"batch, which has only {len(u)} examples. Raise the batch size to at least "
                f"num_components."
            )
        generator = torch.Generator().manual_seed(self.seed)
        if self.init == "kmeans++":
            means = kmeans_plusplus(u.cpu(), self.num_components, generator)
        else:
            means = u.cpu()[torch.randperm(len(u), generator=generator)[: self.num_components]]
        centred = u - u.mean(0)
        cov = centred.T @ centred / len(u)  # (D, D)
        cov = cov + self.reg * torch.eye(len(cov), dtype=cov.dtype, device=cov.device)
        cov = cov if self.kind == "full" else cov.diagonal()
        self.means.copy_(self._broadcast(means.to(u.device)))
        self.covariances.copy_(self._broadcast(cov.expand_as(self.covariances).contiguous()))
        self.weights.fill_(1.0 / self.num_components)
        self.initialized.fill_(True)

    @torch.no_grad()
    def training_step(self, batch, batch_idx: int) -> None:
        x, _ = batch
        self.check_batch(x)
        u = self.model_input(x)
        if not self.initialized:
            self._initialize(u)
        resp, log_px = e_step(u, *self._params(), self.kind)
        self._accumulate(gmm_statistics(u, resp, log_px, self.kind))

    @torch.no_grad()
    def on_train_epoch_end(self) -> None:
        if not self._stats:
            return
        stats = self._reduced_statistics()
        self._log_epoch_likelihood(stats)
        weights, means, cov = gmm_m_step(stats, self.kind, self.reg)
        empty = stats["nk"] < 1e-8  # a component with no data keeps its parameters
        self.weights.copy_(weights)
        self.means.copy_(torch.where(empty[:, None], self.means, means))
        keep = empty.view(-1, *[1] * (cov.dim() - 1))
        self.covariances.copy_(torch.where(keep, self.covariances, cov))

    @torch.no_grad()
    def sample(
        self, num_samples: int, *, labels: Tensor | None = None, temperature: float = 1.0
    ) -> Tensor:
        """Component k ~ pi, then x ~ N(mu_k, T^2 Sigma_k); discrete data is quantized."""
        self.check_sample_args(num_samples, labels)
        weights, means, cov = self._params()
        k = torch.multinomial(weights.float(), num_samples, replacement=True)  # (N,)
        eps = temperature * torch.randn(num_samples, means.shape[1], dtype=means.dtype)
        eps = eps.to(means.device)
        if self.kind == "full":
            noise = (torch.linalg.cholesky(cov)[k] @ eps[:, :, None])[:, :, 0]
        else:
            noise = cov[k].sqrt() * eps
        return self._to_data(means[k] + noise)


def _check_gmm_args(k: int, kind: str, init: str, reg: float) -> None:
    if k < 1:
        raise ValueError(f"num_components must be >= 1, got {k}.")
    if kind not in ("full", "diag"):
        raise ValueError(f"covariance_type must be 'full' or 'diag', got {kind!r}.")
    if init not in ("kmeans++", "random"):
        raise ValueError(f"init must be 'kmeans++' or 'random', got {init!r}.")
    if reg < 0:
        raise ValueError(f"reg_covar must be >= 0, got {reg}.")


# ---- PPCA -----------------------------------------------------------------------------------
class PPCA(_EpochFitModel):
    """Probabilistic PCA (Tipping & Bishop 1999): z ~ N(0, I_q), x | z ~ N(W z + mu, sigma^2 I),
    so x ~ N(mu, W W^T + sigma^2 I).

    method "closed_form": one epoch accumulates the data mean and covariance S and sets the
    maximum-likelihood W and sigma^2 from the eigendecomposition of S (later epochs recompute the
    same solution). method "em": the first epoch sets mu (the sample mean) and a random start,
    then each epoch is one EM step over the data, never lowering the likelihood.

    Args:
        latent_dim: q, below the data dimension.
        method: closed_form or em.
        seed: seed of the EM start.
        noise_seed: seed of the fixed dequantization noise (discrete data).
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (2,),
        num_bits: int | None = None,
        num_classes: int = 1,
        latent_dim: int = 1,
        method: Literal["closed_form", "em"] = "closed_form",
        seed: int = 0,
        noise_seed: int = 0,
    ) -> None:
        super().__init__(data_shape, num_bits, num_classes, noise_seed)
        self.save_hyperparameters()
        d = self.num_dims
        if not 1 <= latent_dim < d:
            raise ValueError(
                f"PPCA needs 1 <= latent_dim < data dimension ({d}), got latent_dim={latent_dim}."
            )
        if method not in ("closed_form", "em"):
            raise ValueError(f"method must be 'closed_form' or 'em', got {method!r}.")
        self.method, self.seed = method, seed
        self.mean = nn.Parameter(torch.zeros(d, dtype=torch.float64))
        self.W = nn.Parameter(torch.zeros(d, latent_dim, dtype=torch.float64))
        self.sigma2 = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.W.shape[1],)

    def _params(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.mean.detach(), self.W.detach(), self.sigma2.detach()

    def _log_density(self, u: Tensor) -> Tensor:
        return ppca_log_prob(u, *self._params())

    def _moment_statistics(self, u: Tensor) -> dict[str, Tensor]:
        return {"n": u.new_tensor(float(len(u))), "sx": u.sum(0), "sxx": u.T @ u}

    @torch.no_grad()
    def training_step(self, batch, batch_idx: int) -> None:
        x, _ = batch
        self.check_batch(x)
        u = self.model_input(x)
        if self.method == "em" and self.initialized:
            self._accumulate(ppca_em_statistics(u, *self._params()))
        else:
            self._accumulate(self._moment_statistics(u))

    @torch.no_grad()
    def on_train_epoch_end(self) -> None:
        if not self._stats:
            return
        stats = self._reduced_statistics()
        if "A" in stats:  # an EM epoch
            self._log_epoch_likelihood(stats)
            W, sigma2 = ppca_em_update(stats, self.num_dims)
            self.W.copy_(W)
            self.sigma2.copy_(sigma2)
            return
        mean = stats["sx"] / stats["n"]
        cov = stats["sxx"] / stats["n"] - torch.outer(mean, mean)  # S, the ML data covariance
        self.mean.copy_(mean)
        if self.method == "closed_form":
            W, sigma2 = ppca_closed_form(cov, self.W.shape[1])
            self._log_epoch_likelihood(
                {"log_lik": ppca_max_log_likelihood(cov, W.shape[1]), "n": 1}
            )
        else:
            sigma2 = cov.diagonal().mean()
            generator = torch.Generator().manual_seed(self.seed)
            W = torch.randn(self.W.shape, generator=generator, dtype=torch.float64)
            W = W.to(cov.device) * sigma2.sqrt() * 0.1
        self.W.copy_(W)
        self.sigma2.copy_(sigma2)
        self.initialized.fill_(True)

    # ---- latent space -------------------------------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        """The posterior mean E[z|x] = M^-1 W^T (x - mu), (B, q); discrete values at their bin
        centres."""
        return ppca_posterior(self._bin_centres(x), *self._params())[0].to(x.dtype)

    def decode(self, z: Tensor) -> Tensor:
        """The mean W z + mu of p(x|z), in the data space (quantized for discrete data)."""
        mean, W, _ = self._params()
        return self._to_data(z.to(W.dtype) @ W.T + mean)

    @torch.no_grad()
    def sample(
        self, num_samples: int, *, labels: Tensor | None = None, temperature: float = 1.0
    ) -> Tensor:
        """x = W z + mu + sigma eps with z, eps ~ N(0, T^2 I); discrete data is quantized."""
        self.check_sample_args(num_samples, labels)
        mean, W, sigma2 = self._params()
        z = temperature * torch.randn(num_samples, W.shape[1], dtype=W.dtype).to(W.device)
        eps = temperature * torch.randn(num_samples, W.shape[0], dtype=W.dtype).to(W.device)
        return self._to_data(z @ W.T + mean + sigma2.sqrt() * eps)
