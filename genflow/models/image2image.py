"""Image-to-image GANs: pix2pix (paired), CycleGAN (unpaired) and StarGAN (many domains).

Batches follow the image-to-image DataModules (`genflow.data.image2image`): for paired data `x` is
the input and `y` its target image; for unpaired data `x` is from domain A and `y` from domain B;
for many domains `y` is the domain (int64 index, or a float 0/1 attribute vector). Images are
[0, 1] in the data space and [-1, 1] for the networks (tanh outputs).

`translate(x, target)` is each model's entry point. `sample(n)` translates the first n
evaluation inputs the model kept (the first validation batch it saw, stored in its checkpoint),
so grids and `genflow sample` show translations of fixed inputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from functools import partial

import torch
from pytorch_lightning.cli import OptimizerCallable
from torch import Tensor, nn

from genflow.losses import (
    cycle_consistency_loss,
    discriminator_loss,
    domain_classification_loss,
    gradient_penalty,
    identity_loss,
    l1_per_example,
    least_squares_discriminator_loss,
    least_squares_generator_loss,
    non_saturating_generator_loss,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from genflow.models.gan import AlternatingModel
from genflow.nn.image2image import (
    ImagePool,
    Norm,
    PatchDiscriminator,
    ResnetGenerator,
    StarDiscriminator,
    StarGenerator,
    UNetGenerator,
)

ADAM_2E4 = partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999))  # pix2pix and CycleGAN


class _TranslationModel(AlternatingModel):
    """What the three share: [-1, 1] model space, alternating steps, kept evaluation inputs.

    Args:
        num_examples: how many evaluation inputs to keep for `sample` and grids.
        optimizer_g / optimizer_d: callables building each optimizer; None gives the paper's.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (3, 32, 32),
        num_bits: int | None = 8,
        num_classes: int = 1,
        num_examples: int = 16,
        optimizer_g: OptimizerCallable | None = None,
        optimizer_d: OptimizerCallable | None = None,
    ) -> None:
        super().__init__(data_shape, num_bits, num_classes, optimizer=None, lr_scheduler=None)
        if len(self.data_shape) != 3:
            raise ValueError(
                f"{type(self).__name__} translates images (C, H, W), but the data has shape "
                f"{self.data_shape}. Use an image DataModule (genflow.data.image2image)."
            )
        if num_examples < 1:
            raise ValueError(f"num_examples must be >= 1, got {num_examples}.")
        self.automatic_optimization = False
        self.optimizer_g = optimizer_g or self.default_optimizer()
        self.optimizer_d = optimizer_d or self.default_optimizer()
        self.register_buffer("example_inputs", torch.zeros(num_examples, *self.data_shape))
        self.register_buffer("example_targets", torch.zeros(num_examples, dtype=torch.long))
        self.register_buffer("examples_kept", torch.tensor(0))
        self.generator_steps = self.critic_steps = 0

    def default_optimizer(self) -> OptimizerCallable:
        return ADAM_2E4

    # ---- spaces -------------------------------------------------------------------------------
    @staticmethod
    def to_model_space(x: Tensor) -> Tensor:
        return x * 2 - 1

    @staticmethod
    def to_data_space(x: Tensor) -> Tensor:
        return ((x + 1) / 2).clamp(0, 1)

    # ---- contract -----------------------------------------------------------------------------
    def translate(self, x: Tensor, target: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def sample(
        self, num_samples: int, *, labels: Tensor | None = None, temperature: float = 1.0
    ) -> Tensor:
        """Translations of the first `num_samples` kept evaluation inputs (cycled when fewer
        are kept); `labels` are StarGAN's target domains."""
        self.check_sample_args(num_samples, labels)
        kept = int(self.examples_kept)
        if kept == 0:
            raise ValueError(
                f"{type(self).__name__} has kept no evaluation inputs to translate yet (they "
                f"are taken from the first validation batch). Validate or fit first, or call "
                f"translate(x) with images of your own."
            )
        index = torch.arange(num_samples, device=self.device) % kept
        return self.translate(self.example_inputs[index], self._sample_targets(index, labels))

    def _sample_targets(self, index: Tensor, labels: Tensor | None) -> Tensor | None:
        return None

    @torch.no_grad()
    def translation_rows(self, num_images: int) -> list[Tensor]:
        """Rows of a grid, each (n, C, H, W) in the data space: the first kept evaluation
        inputs, their translations and, for the cyclic models, the reconstructions back."""
        n = min(num_images, int(self.examples_kept))
        if n == 0:
            return []
        index = torch.arange(n, device=self.device)
        x, target = self.example_inputs[:n], self._sample_targets(index, None)
        return [x, *self._translation_and_back(x, target, index)]

    def _translation_and_back(self, x: Tensor, target, index: Tensor) -> list[Tensor]:
        return [self.translate(x, target)]

    def _keep_examples(self, x: Tensor, y: Tensor) -> None:
        """Keep the first validation inputs (and their labels) for `sample` and grids."""
        kept, room = int(self.examples_kept), len(self.example_inputs)
        if kept >= room:
            return
        take = min(room - kept, len(x))
        self.example_inputs[kept : kept + take] = x[:take].to(self.example_inputs.dtype)
        if y.dtype == torch.long and y.dim() == 1:
            self.example_targets[kept : kept + take] = y[:take]
        self.examples_kept.fill_(kept + take)

    # ---- training -----------------------------------------------------------------------------
    def configure_optimizers(self):
        return [
            self.optimizer_g(self.generator_parameters()),
            self.optimizer_d(self.discriminator_parameters()),
        ]

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        raise NotImplementedError

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        raise NotImplementedError

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        self.check_batch(x)
        self._keep_examples(x, y)
        self.log_example_means("val", self.eval_metrics(x, y), prog_bar=True)

    def test_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        self.check_batch(x)
        self.log_example_means("test", self.eval_metrics(x, y))

    def eval_metrics(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    # ---- checkpoints --------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["gan_counters"] = {
            "generator_steps": self.generator_steps,
            "critic_steps": self.critic_steps,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        for name, value in checkpoint.get("gan_counters", {}).items():
            setattr(self, name, value)


def weighted_loss(
    terms: dict[str, Tensor], weights: dict[str, float], logged: dict[str, Tensor]
) -> Tensor:
    """sum_k weights[k] * terms[k] (terms (B,) each, missing ones skipped), averaged over the
    batch; every term's batch mean is also put in `logged`, detached."""
    logged.update({k: v.mean().detach() for k, v in terms.items()})
    return sum(w * terms[k] for k, w in weights.items() if k in terms).mean()


def _num_downs(data_shape: Sequence[int]) -> int:
    """The U-Net depth that takes the smaller side down to 1 (8 for pix2pix's 256x256)."""
    side = min(data_shape[-2:])
    depth = int(math.log2(side))
    if 2**depth != side:
        raise ValueError(
            f"Pix2Pix's U-Net halves the image down to 1x1, so the side must be a power of 2, "
            f"got {data_shape[-2]}x{data_shape[-1]}. Resize the data (size: 32, 64, 256, ...)."
        )
    return depth


def _check_patch_grid(model: str, discriminator: PatchDiscriminator, data_shape) -> None:
    """A clear error when the PatchGAN's convolutions leave no output on these images."""
    side = min(data_shape[-2:])
    try:
        discriminator.output_size(side)
    except ValueError:
        raise ValueError(
            f"{model}'s PatchGAN with patch_layers={discriminator.num_layers} has no output on "
            f"{data_shape[-2]}x{data_shape[-1]} images (each stride-2 layer halves them before "
            f"two 4x4 convolutions). Lower patch_layers (1 sees 16x16 patches, 2 34x34, 3 70x70) "
            f"or use larger images."
        ) from None


class Pix2Pix(_TranslationModel):
    """pix2pix (Isola et al. 2017, arXiv:1611.07004): a U-Net G(x) trained on paired data
    against a PatchGAN D(x, y) that sees the input with the real or translated output, with
    the non-saturating adversarial loss plus lambda * L1(G(x), y), lambda = 100; D's objective
    is halved (sec. 3.3). Dropout in G is the noise source. Adam 2e-4, betas (0.5, 0.999).

    Validation logs `l1` (translation against target, mean absolute error in [0, 1] units)
    and `l1_input` (the input itself against the target: the trivial baseline).

    Args:
        target_channels: channels of the target images (the input's when None).
        base_channels: width of G's and D's first layers (64 in the paper).
        patch_layers: D's stride-2 layers: 3 gives the 70x70 PatchGAN.
        l1_weight: lambda.
        dropout: G's decoder dropout (0.5 in the paper).
        norm: batch (the paper, batch size 1 to 10) or instance.
    """

    def __init__(
        self,
        *args,
        target_channels: int | None = None,
        base_channels: int = 64,
        patch_layers: int = 3,
        l1_weight: float = 100.0,
        dropout: float = 0.5,
        norm: Norm = "batch",
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.save_hyperparameters(ignore=["optimizer_g", "optimizer_d"])
        if l1_weight < 0:
            raise ValueError(f"l1_weight (lambda) must be >= 0, got {l1_weight}.")
        c_in = self.data_shape[0]
        self.target_channels = target_channels or c_in
        self.l1_weight = l1_weight
        self.generator = UNetGenerator(
            c_in, self.target_channels, _num_downs(self.data_shape), base_channels, norm, dropout
        )
        self.discriminator = PatchDiscriminator(
            c_in + self.target_channels, base_channels, patch_layers, norm
        )
        _check_patch_grid("Pix2Pix", self.discriminator, self.data_shape)

    def compilable_networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        return self.generator.parameters()

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        return self.discriminator.parameters()

    @torch.no_grad()
    def translate(self, x: Tensor, target: Tensor | None = None) -> Tensor:
        """G(x) in the data space (eval mode: no dropout)."""
        return self.to_data_space(self.generator(self.to_model_space(x)))

    def _patch_logits(self, x: Tensor, y: Tensor) -> Tensor:
        return self.discriminator(torch.cat([x, y], dim=1)).flatten(1).mean(1)

    def losses_d(self, x: Tensor, y: Tensor) -> Tensor:
        """(B,) D's cross-entropy on (x, y) against (x, G(x)), halved; patches averaged."""
        fake = self.generator(x).detach()
        real_logits = self.discriminator(torch.cat([x, y], dim=1))
        fake_logits = self.discriminator(torch.cat([x, fake], dim=1))
        return 0.5 * discriminator_loss(real_logits, fake_logits).flatten(1).mean(1)

    def losses_g(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """(B,) adversarial and L1 terms of G's loss."""
        fake = self.generator(x)
        logits = self.discriminator(torch.cat([x, fake], dim=1))
        adversarial = non_saturating_generator_loss(logits).flatten(1).mean(1)
        return {"adv": adversarial, "l1": l1_per_example(fake, y)}

    def training_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        self.check_batch(x)
        x, y = self.to_model_space(x), self.to_model_space(y)
        opt_g, opt_d = self.optimizers()
        loss_d = self._optimize(opt_d, lambda: self.losses_d(x, y).mean())
        logged = {"loss_d": loss_d}
        weights = {"adv": 1.0, "l1": self.l1_weight}
        logged["loss_g"] = self._optimize(
            opt_g,
            lambda: weighted_loss(self.losses_g(x, y), weights, logged),
        )
        self.critic_steps += 1
        self.generator_steps += 1
        self.log_stage("train", logged)

    def eval_metrics(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        # [0, 1] units: half the [-1, 1] error
        return {"l1": l1_per_example(self.translate(x), y), "l1_input": l1_per_example(x, y)}


class CycleGAN(_TranslationModel):
    """CycleGAN (Zhu et al. 2017, arXiv:1703.10593): ResNet generators G: A -> B and F: B -> A,
    PatchGANs D_A and D_B, least-squares adversarial losses, cycle loss lambda * (|F(G(a)) - a|
    + |G(F(b)) - b|) with lambda = 10, identity loss 0.5 lambda (|G(b) - b| + |F(a) - a|), and a
    history of 50 generated images per discriminator (sec. 4 and appendix 7). Adam 2e-4, betas
    (0.5, 0.999); the paper keeps the rate for 100 epochs, then decays it linearly to zero over
    100 more: `decay_start` and `decay_epochs` set that (None: the second half of max_epochs;
    no decay when the run has no epoch limit, e.g. `max_epochs: -1` with `max_time`).

    The batch's x is from A and y from B. `translate(x, target)` maps A -> B (target None or 1)
    or B -> A (target 0). Validation logs `cycle_a`, `cycle_b` (reconstruction errors, mean
    absolute error in [0, 1] units) and `identity`.

    Args:
        base_channels: width of the networks' first layers.
        num_blocks: residual blocks in each generator (6 for 128x128, 9 for 256x256).
        patch_layers: the discriminators' stride-2 layers (3: 70x70 patches).
        cycle_weight: lambda.
        identity_weight: the identity loss's weight as a fraction of lambda (0.5).
        pool_size: images in each discriminator's history (0 turns it off).
    """

    def __init__(
        self,
        *args,
        base_channels: int = 64,
        num_blocks: int = 9,
        patch_layers: int = 3,
        cycle_weight: float = 10.0,
        identity_weight: float = 0.5,
        pool_size: int = 50,
        decay_start: int | None = None,
        decay_epochs: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.save_hyperparameters(ignore=["optimizer_g", "optimizer_d"])
        if cycle_weight < 0 or identity_weight < 0:
            raise ValueError(
                f"cycle_weight and identity_weight must be >= 0, got {cycle_weight} and "
                f"{identity_weight} (the paper: 10 and 0.5)."
            )
        c = self.data_shape[0]
        self.cycle_weight, self.identity_weight = cycle_weight, identity_weight
        self.decay_start, self.decay_epochs = decay_start, decay_epochs
        self.g_ab = ResnetGenerator(c, c, base_channels, num_blocks)
        self.g_ba = ResnetGenerator(c, c, base_channels, num_blocks)
        self.d_a = PatchDiscriminator(c, base_channels, patch_layers, "instance")
        self.d_b = PatchDiscriminator(c, base_channels, patch_layers, "instance")
        self.pool_a, self.pool_b = ImagePool(pool_size), ImagePool(pool_size)
        _check_patch_grid("CycleGAN", self.d_a, self.data_shape)

    def compilable_networks(self) -> dict[str, nn.Module]:
        return {"g_ab": self.g_ab, "g_ba": self.g_ba, "d_a": self.d_a, "d_b": self.d_b}

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.g_ab.parameters()
        yield from self.g_ba.parameters()

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.d_a.parameters()
        yield from self.d_b.parameters()

    def configure_optimizers(self):
        optimizers = super().configure_optimizers()
        epochs = self.trainer.max_epochs if self._trainer is not None else None
        if self.decay_start is None and (epochs is None or epochs < 2):
            return optimizers  # no epoch count to halve (e.g. time-limited runs): no decay
        start = self.decay_start if self.decay_start is not None else epochs // 2
        length = self.decay_epochs if self.decay_epochs is not None else max(1, start)
        factor = partial(linear_decay, start=start, length=length)
        schedulers = [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in optimizers]
        return optimizers, schedulers

    @torch.no_grad()
    def translate(self, x: Tensor, target: Tensor | int | None = None) -> Tensor:
        """A -> B (target None or 1) or B -> A (target 0), in the data space."""
        to_a = target is not None and int(torch.as_tensor(target).flatten()[0]) == 0
        net = self.g_ba if to_a else self.g_ab
        return self.to_data_space(net(self.to_model_space(x)))

    def _translation_and_back(self, x: Tensor, target, index: Tensor) -> list[Tensor]:
        fake_b = self.translate(x)  # A -> B
        return [fake_b, self.translate(fake_b, torch.tensor(0))]  # and back to A

    def generator_losses(self, a: Tensor, b: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """(B,) adversarial, cycle and identity terms, and the two translations (for the
        discriminators' step)."""
        fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        terms = {
            "adv": least_squares_generator_loss(self.d_b(fake_b))
            + least_squares_generator_loss(self.d_a(fake_a)),
            "cycle": cycle_consistency_loss(a, self.g_ba(fake_b))
            + cycle_consistency_loss(b, self.g_ab(fake_a)),
        }
        if self.identity_weight > 0:
            terms["identity"] = identity_loss(b, self.g_ab(b)) + identity_loss(a, self.g_ba(a))
        return terms, fake_a, fake_b

    def training_step(self, batch, batch_idx: int) -> None:
        a, b = batch
        self.check_batch(a)
        a, b = self.to_model_space(a), self.to_model_space(b)
        opt_g, opt_d = self.optimizers()
        logged: dict[str, Tensor] = {}
        fakes: list[Tensor] = []

        weights = {
            "adv": 1.0,
            "cycle": self.cycle_weight,
            "identity": self.identity_weight * self.cycle_weight,
        }

        def loss_g() -> Tensor:
            terms, fake_a, fake_b = self.generator_losses(a, b)
            fakes[:] = [fake_a.detach(), fake_b.detach()]
            return weighted_loss(terms, weights, logged)

        logged["loss_g"] = self._optimize(opt_g, loss_g)
        fake_a, fake_b = self.pool_a.query(fakes[0]), self.pool_b.query(fakes[1])

        def loss_d() -> Tensor:
            return (
                least_squares_discriminator_loss(self.d_a(a), self.d_a(fake_a))
                + least_squares_discriminator_loss(self.d_b(b), self.d_b(fake_b))
            ).mean()

        logged["loss_d"] = self._optimize(opt_d, loss_d)
        self.generator_steps += 1
        self.critic_steps += 1
        self.log_stage("train", logged)

    def eval_metrics(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        a, b = self.to_model_space(x), self.to_model_space(y)
        fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        half = 0.5  # [-1, 1] errors in [0, 1] units
        return {
            "cycle_a": half * cycle_consistency_loss(a, self.g_ba(fake_b)),
            "cycle_b": half * cycle_consistency_loss(b, self.g_ab(fake_a)),
            "identity": half * (identity_loss(b, self.g_ab(b)) + identity_loss(a, self.g_ba(a))),
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["image_pools"] = {"a": self.pool_a.state_dict(), "b": self.pool_b.state_dict()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        pools = checkpoint.get("image_pools")
        if pools is not None:
            self.pool_a.load_state_dict(pools["a"])
            self.pool_b.load_state_dict(pools["b"])


def linear_decay(epoch: int, start: int, length: int) -> float:
    """CycleGAN's learning-rate factor: 1 before epoch `start`, then down by 1 / (length + 1)
    per epoch, reaching 1 / (length + 1) at the last of `length` decay epochs (0 after)."""
    return max(0.0, 1.0 - max(0, epoch + 1 - start) / (length + 1))


class StarGAN(_TranslationModel):
    """StarGAN (Choi et al. 2018, arXiv:1711.09020): one generator G(x, c) for every target
    domain c, and a discriminator with a real/fake head D_src and a domain classifier D_cls.
    WGAN-GP adversarial loss (lambda_gp = 10) with n_critic = 5, classification loss lambda_cls
    = 1 (true labels for reals, target labels for fakes), reconstruction loss lambda_rec = 10 of
    G(G(x, c), c') against x. Adam 1e-4, betas (0.5, 0.999) (sec. 4). Targets are the batch's
    labels in a random order, as in the authors' training.

    Labels are int64 domain indices, or float 0/1 attribute vectors (CelebA), where the
    classification loss is a sum of binary cross-entropies. `translate(x, target)` maps x to
    the target domains. Validation translates each image to domain (y + 1) mod K (attribute
    vectors: every attribute flipped) and logs `rec` (reconstruction error) and `cls_accuracy`
    (D_cls's accuracy on those translations: the fraction of targets reached).

    Args:
        base_channels: width of G's and D's first layers.
        num_blocks: G's residual blocks (6).
        critic_layers: D's stride-2 layers (6 for 128x128).
        n_critic: D steps per G step.
        gp_weight / cls_weight / rec_weight: lambda_gp, lambda_cls, lambda_rec.
        identity_weight: weight of an identity term |G(x, c_x) - x| (x's own domain), which
            the paper does not have (0 by default). CycleGAN's identity loss carried over: on
            small, sparse images (the offline coloured digits) the paper's objective settles
            on one shape per target domain before the reconstruction term can tie outputs to
            inputs, and this term keeps G close to the identity from the first steps.
    """

    def __init__(
        self,
        *args,
        base_channels: int = 64,
        num_blocks: int = 6,
        critic_layers: int = 6,
        n_critic: int = 5,
        gp_weight: float = 10.0,
        cls_weight: float = 1.0,
        rec_weight: float = 10.0,
        identity_weight: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.save_hyperparameters(ignore=["optimizer_g", "optimizer_d"])
        if min(gp_weight, cls_weight, rec_weight, identity_weight) < 0:
            raise ValueError(
                f"StarGAN's loss weights must be >= 0, got gp_weight={gp_weight}, cls_weight="
                f"{cls_weight}, rec_weight={rec_weight}, identity_weight={identity_weight} "
                f"(the paper: 10, 1, 10 and no identity term)."
            )
        if self.num_classes < 2:
            raise ValueError(
                f"StarGAN translates between domains and needs at least 2, got num_classes="
                f"{self.num_classes}. Use a multi-domain DataModule (genflow.data.image2image)."
            )
        if n_critic < 1:
            raise ValueError(
                f"n_critic (critic steps per generator step) must be >= 1, got {n_critic}. "
                f"StarGAN uses 5."
            )
        self.n_critic = n_critic
        self.gp_weight, self.cls_weight, self.rec_weight = gp_weight, cls_weight, rec_weight
        self.identity_weight = identity_weight
        c, size = self.data_shape[0], tuple(self.data_shape[-2:])
        self.generator = StarGenerator(c, self.num_classes, base_channels, num_blocks)
        self.discriminator = StarDiscriminator(
            size, c, self.num_classes, base_channels, critic_layers
        )

    def default_optimizer(self) -> OptimizerCallable:
        return partial(torch.optim.Adam, lr=1e-4, betas=(0.5, 0.999))

    def compilable_networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator}  # the penalty differentiates the critic twice

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        return self.generator.parameters()

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        return self.discriminator.parameters()

    @torch.no_grad()
    def translate(self, x: Tensor, target: Tensor | None = None) -> Tensor:
        """G(x, target) in the data space; `target` is (B,) domain indices or (B, K) 0/1."""
        if target is None:
            raise ValueError(
                "StarGAN translates to given domains: pass target, (B,) domain indices or "
                "(B, num_domains) 0/1 attribute vectors."
            )
        return self.to_data_space(self.generator(self.to_model_space(x), target.to(x.device)))

    def _sample_targets(self, index: Tensor, labels: Tensor | None) -> Tensor:
        if labels is not None:
            return torch.as_tensor(labels, device=self.device)
        return (self.example_targets[index] + 1) % self.num_classes

    conditional = True  # sample(labels=...) gives the target domains

    def _translation_and_back(self, x: Tensor, target, index: Tensor) -> list[Tensor]:
        fake = self.translate(x, target)
        return [fake, self.translate(fake, self.example_targets[index])]  # back to the source

    def check_sample_args(self, num_samples: int, labels: Tensor | None = None) -> None:
        super().check_sample_args(num_samples, labels)
        if labels is not None and len(labels) != num_samples:
            raise ValueError(
                f"labels must hold one target domain per sample: got {len(labels)} for "
                f"{num_samples} samples. Pass one target per sample, or none for each kept "
                f"input's next domain."
            )

    @staticmethod
    def _critic_scores(d_src: Tensor) -> Tensor:
        return d_src.flatten(1).mean(1)  # (B,): one score per image from the patch grid

    def critic_losses(self, x: Tensor, labels: Tensor, targets: Tensor) -> dict[str, Tensor]:
        """(B,) WGAN critic loss, gradient penalty and classification loss on reals."""
        fake = self.generator(x, targets).detach()
        real_src, real_cls = self.discriminator(x)
        fake_src, _ = self.discriminator(fake)
        eps = torch.rand(x.shape[0], device=x.device)
        penalty = gradient_penalty(
            lambda v: self._critic_scores(self.discriminator(v)[0]), x, fake, eps
        )
        return {
            "wasserstein": wasserstein_critic_loss(
                self._critic_scores(real_src), self._critic_scores(fake_src)
            ),
            "gp": penalty,
            "cls_real": domain_classification_loss(real_cls, labels),
        }

    def generator_losses(self, x: Tensor, labels: Tensor, targets: Tensor) -> dict[str, Tensor]:
        """(B,) adversarial, classification (fakes, target labels) and reconstruction terms,
        and the identity term when it has a weight."""
        fake = self.generator(x, targets)
        src, cls = self.discriminator(fake)
        terms = {
            "adv": wasserstein_generator_loss(self._critic_scores(src)),
            "cls_fake": domain_classification_loss(cls, targets),
            "rec": l1_per_example(self.generator(fake, labels), x),
        }
        if self.identity_weight > 0:
            terms["identity"] = identity_loss(x, self.generator(x, labels))
        return terms

    def training_step(self, batch, batch_idx: int) -> None:
        x, labels = batch
        self.check_batch(x)
        x = self.to_model_space(x)
        targets = labels[torch.randperm(len(labels), device=labels.device)]
        opt_g, opt_d = self.optimizers()
        logged: dict[str, Tensor] = {}

        critic = {"wasserstein": 1.0, "gp": self.gp_weight, "cls_real": self.cls_weight}
        logged["loss_d"] = self._optimize(
            opt_d, lambda: weighted_loss(self.critic_losses(x, labels, targets), critic, logged)
        )
        self.critic_steps += 1
        if self.critic_steps % self.n_critic == 0:
            generator = {
                "adv": 1.0,
                "cls_fake": self.cls_weight,
                "rec": self.rec_weight,
                "identity": self.identity_weight,
            }
            logged["loss_g"] = self._optimize(
                opt_g,
                lambda: weighted_loss(
                    self.generator_losses(x, labels, targets), generator, logged
                ),
            )
            self.generator_steps += 1
        self.log_stage("train", logged)

    def eval_targets(self, labels: Tensor) -> Tensor:
        """The fixed evaluation target of each image: the next domain, or every attribute
        flipped."""
        if labels.is_floating_point():
            return 1 - labels
        return (labels + 1) % self.num_classes

    def eval_metrics(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        targets = self.eval_targets(y)
        x = self.to_model_space(x)
        fake = self.generator(x, targets)
        _, cls = self.discriminator(fake)
        if targets.is_floating_point():
            hit = ((cls > 0).to(targets.dtype) == targets).all(1)
        else:
            hit = cls.argmax(1) == targets
        return {
            "rec": 0.5 * l1_per_example(self.generator(fake, y), x),
            "cls_accuracy": hit.to(x.dtype),
        }
