"""genflow's model families; each implements the GenerativeModel contract."""

from genflow.models.autoencoder import AE, DenoisingAE
from genflow.models.base import GenerativeModel
from genflow.models.classical import GMM, PPCA
from genflow.models.flows import NICE, CouplingFlow, FlowModel, RealNVP
from genflow.models.gan import GAN, WGAN, WGANGP, BiGAN, ConditionalGAN
from genflow.models.image2image import CycleGAN, Pix2Pix, StarGAN
from genflow.models.multiscale_ar import MultiscalePixelCNN
from genflow.models.pixelcnn import GatedPixelCNN, PixelCNN, PixelCNNPlusPlus
from genflow.models.pixelrnn import PixelRNN
from genflow.models.stylegan import StyleGAN
from genflow.models.vae import VAE

__all__ = [
    "AE",
    "GAN",
    "GMM",
    "NICE",
    "PPCA",
    "VAE",
    "WGAN",
    "WGANGP",
    "BiGAN",
    "ConditionalGAN",
    "CycleGAN",
    "CouplingFlow",
    "DenoisingAE",
    "FlowModel",
    "GatedPixelCNN",
    "GenerativeModel",
    "MultiscalePixelCNN",
    "PixelCNN",
    "Pix2Pix",
    "PixelCNNPlusPlus",
    "PixelRNN",
    "RealNVP",
    "StarGAN",
    "StyleGAN",
]
