"""One small config of every model class genflow has, shared by the tests that run every
family (exact resume, DDP, `genflow evaluate`): `FAMILIES[name] = (config, extra CLI args)`,
configs relative to experiments/, shrunk where the paper-size model would be slow."""

from __future__ import annotations

TINY_PIXELCNNPP = [
    "--model", "genflow.models.PixelCNNPlusPlus", "--model.init_args.filters", "8",
    "--model.init_args.num_resnet", "1", "--model.init_args.num_mixtures", "2",
    "--model.init_args.dropout", "0.0",
]  # fmt: skip
TINY_PIXELCNN = [
    "--model.init_args.hidden_channels", "8", "--model.init_args.num_blocks", "1",
    "--model.init_args.head_channels", "8",
]  # fmt: skip
# Batch 8 gives the 36 tiny MNIST training images 5 batches, so 3 per epoch are 3 real steps.
MNIST_BATCH = ["--data.init_args.batch_size", "8"]
# (config, extra fit arguments): one config of every model class genflow has
FAMILIES = {
    "AE": ("ae/digits.yaml", []),
    "DenoisingAE": ("ae/digits_denoising.yaml", []),
    "VAE": ("vae/digits.yaml", []),
    "GAN": ("gan/dcgan_mnist.yaml", [*MNIST_BATCH, "--model.init_args.ema_decay", "0.9"]),
    # 3 steps an epoch and n_critic 5: the stop falls inside the cycle, the G step after it
    "WGAN": ("gan/wgan_mnist.yaml", MNIST_BATCH),
    "WGANGP": ("gan/wgangp_mnist.yaml", MNIST_BATCH),
    "ConditionalGAN": ("gan/cgan_mnist.yaml", MNIST_BATCH),
    "BiGAN": ("gan/bigan_mnist.yaml", MNIST_BATCH),
    "CouplingFlow": ("flows/coupling_moons.yaml", []),
    "NICE": ("flows/nice_mnist.yaml", [*MNIST_BATCH, "--model.init_args.hidden_dims", "[16]"]),
    "RealNVP": ("flows/realnvp_digits.yaml", []),
    "GMM": ("classical/gmm_digits.yaml", []),
    # EM carries state from epoch to epoch (the closed form recomputes the same solution)
    "PPCA": ("classical/ppca_digits.yaml", ["--model.init_args.method", "em"]),
    "PixelCNN": ("pixelcnn/mnist_binary.yaml", [*MNIST_BATCH, *TINY_PIXELCNN]),
    "GatedPixelCNN": ("pixelcnn/digits.yaml", []),
    "PixelCNNPlusPlus": ("pixelcnn/digits.yaml", TINY_PIXELCNNPP),
}

TINY_STYLEGAN = [
    *MNIST_BATCH, "--model.init_args.latent_dim", "8", "--model.init_args.w_dim", "8",
    "--model.init_args.mapping_layers", "2", "--model.init_args.channels", "4",
    "--model.init_args.max_channels", "8", "--model.init_args.r1_interval", "2",
]  # fmt: skip
TINY_PIXELRNN = [
    *MNIST_BATCH, "--model.init_args.hidden_channels", "8", "--model.init_args.num_layers", "2",
    "--model.init_args.head_channels", "8",
]  # fmt: skip
TINY_MULTISCALE = [
    *MNIST_BATCH, "--model.init_args.hidden_channels", "8", "--model.init_args.num_blocks", "1",
    "--model.init_args.base_layers", "2", "--model.init_args.head_channels", "8",
]  # fmt: skip
# The models added after the first families, on the MNIST-10k configs (tests write tiny IDX files)
LATER_FAMILIES = {
    # R1 every 2 critic steps: the 3-step epochs hit both lazy and plain steps
    "StyleGAN": ("gan/stylegan_mnist10k.yaml", TINY_STYLEGAN),
    "PixelRNN": ("pixelcnn/pixelrnn_mnist10k.yaml", TINY_PIXELRNN),
    "PixelRNNRow": ("pixelcnn/pixelrnn_mnist10k.yaml",
                    [*TINY_PIXELRNN, "--model.init_args.layer", "row"]),
    "MultiscalePixelCNN": ("pixelcnn/multiscale_mnist10k.yaml", TINY_MULTISCALE),
}  # fmt: skip

# The image-to-image GANs on their offline digit domains, shrunk to 16 px and narrow networks.
TINY_I2I = ["--data.init_args.size", "16", "--model.init_args.base_channels", "8"]
TRANSLATION_FAMILIES = {
    "Pix2Pix": ("image2image/pix2pix_edges_digits.yaml", TINY_I2I),
    # an explicit decay: the default (the second half of max_epochs) depends on max_epochs
    "CycleGAN": ("image2image/cyclegan_gray_color_digits.yaml",
                 [*TINY_I2I, "--model.init_args.num_blocks", "1",
                  "--model.init_args.decay_start", "1", "--model.init_args.decay_epochs", "2"]),
    "StarGAN": ("image2image/stargan_colored_digits.yaml",
                [*TINY_I2I, "--model.init_args.num_blocks", "1",
                 "--model.init_args.critic_layers", "2"]),
}  # fmt: skip
# Every trainable model class: the tests of exact resume and of DDP run all of them.
ALL_FAMILIES = FAMILIES | LATER_FAMILIES | TRANSLATION_FAMILIES
