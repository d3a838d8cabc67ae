"""Network building blocks and likelihood heads (plain torch, no Lightning)."""

from genflow.nn.conv import (
    conv_output_size,
    conv_transpose_output_size,
    round_trip_output_padding,
    same_size_after_round_trip,
)
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
    "conv_output_size",
    "conv_transpose_output_size",
    "get_likelihood",
    "round_trip_output_padding",
    "same_size_after_round_trip",
]
