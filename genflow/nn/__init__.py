"""Network building blocks and likelihood heads (plain torch, no Lightning)."""

from genflow.nn.autoregressive import (
    GatedLayer,
    GatedResnet,
    MaskedConv2d,
    ResidualBlock,
    discretized_logistic_mixture_log_prob,
    sample_discretized_logistic_mixture,
)
from genflow.nn.conv import (
    conv_output_size,
    conv_transpose_output_size,
    round_trip_output_padding,
    same_size_after_round_trip,
)
from genflow.nn.flows import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    DiagonalScaling,
    FactorOut,
    FlowBatchNorm,
    FlowLayer,
    FlowSequential,
    LogitTransform,
    Squeeze,
    Unsqueeze,
)
from genflow.nn.likelihoods import LIKELIHOODS, Likelihood, get_likelihood
from genflow.nn.nets import MLP, ConvDecoder, ConvEncoder, SeedDecoder, SeedEncoder

__all__ = [
    "LIKELIHOODS",
    "MLP",
    "ActNorm",
    "AdditiveCoupling",
    "AffineCoupling",
    "ConvDecoder",
    "ConvEncoder",
    "DiagonalScaling",
    "FactorOut",
    "FlowBatchNorm",
    "FlowLayer",
    "FlowSequential",
    "GatedLayer",
    "GatedResnet",
    "Likelihood",
    "LogitTransform",
    "MaskedConv2d",
    "ResidualBlock",
    "SeedDecoder",
    "SeedEncoder",
    "Squeeze",
    "Unsqueeze",
    "conv_output_size",
    "conv_transpose_output_size",
    "discretized_logistic_mixture_log_prob",
    "get_likelihood",
    "round_trip_output_padding",
    "sample_discretized_logistic_mixture",
    "same_size_after_round_trip",
]
