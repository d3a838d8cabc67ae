"""Network building blocks and likelihood heads (plain torch, no Lightning)."""

from genflow.nn.likelihoods import LIKELIHOODS, Likelihood, get_likelihood
from genflow.nn.nets import MLP, ConvDecoder, ConvEncoder, SeedDecoder, SeedEncoder

__all__ = [
    "LIKELIHOODS",
    "MLP",
    "ConvDecoder",
    "ConvEncoder",
    "Likelihood",
    "SeedDecoder",
    "SeedEncoder",
    "get_likelihood",
]
