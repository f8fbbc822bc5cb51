"""Activation registry: name -> kernel code, default argument and the weight
initialisation that suits it (used by the Connected layer before it)."""

from dataclasses import dataclass

from . import kernels as K
from .registry import lookup


@dataclass(frozen=True)
class ActivationInfo:
    code: int
    default_arg: float | None  # leaky slope, sine's w0, or None
    init: str                  # "he", "xavier" or "siren"
    arg_name: str | None = None


ACTIVATIONS = {
    "identity": ActivationInfo(K.IDENTITY, None, "xavier"),
    "relu": ActivationInfo(K.RELU, None, "he"),
    "leaky_relu": ActivationInfo(K.LEAKY_RELU, 0.01, "he", "slope"),
    "sigmoid": ActivationInfo(K.SIGMOID, None, "xavier"),
    "tanh": ActivationInfo(K.TANH, None, "xavier"),
    "sine": ActivationInfo(K.SINE, 30.0, "siren", "w0"),
}


def get_activation(name) -> ActivationInfo:
    return lookup(ACTIVATIONS, name, "activation")
