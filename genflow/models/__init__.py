"""genflow's model families; each implements the GenerativeModel contract."""

from genflow.models.autoencoder import AE, DenoisingAE
from genflow.models.base import GenerativeModel
from genflow.models.gan import GAN, WGAN, WGANGP, BiGAN, ConditionalGAN
from genflow.models.pixelcnn import GatedPixelCNN, PixelCNN, PixelCNNPlusPlus
from genflow.models.vae import VAE

__all__ = [
    "AE",
    "GAN",
    "VAE",
    "WGAN",
    "WGANGP",
    "BiGAN",
    "ConditionalGAN",
    "DenoisingAE",
    "GatedPixelCNN",
    "GenerativeModel",
    "PixelCNN",
    "PixelCNNPlusPlus",
]
