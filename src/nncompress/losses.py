"""Losses over predictions P and targets T, both (N, D), averaged over all
N*D elements. Each returns (loss, dL/dP).

The network trains BCE through the sigmoid's logits (see ``kernels.dense.
loss_output_grad``), which is exact where p saturates; ``bce`` here is the
textbook form on probabilities, for reporting and gradient checks."""

import numpy as np

from . import kernels as K
from .registry import lookup


def mse(P, T):
    E = P - T
    return float(np.mean(E * E)), 2 * E / E.size


def bce(P, T, eps=1e-7):
    P = np.clip(P, eps, 1 - eps)
    loss = -np.mean(T * np.log(P) + (1 - T) * np.log(1 - P))
    return float(loss), (P - T) / (P * (1 - P)) / P.size


LOSSES = {"mse": (K.MSE, mse), "bce": (K.BCE, bce)}


def get_loss(name):
    return lookup(LOSSES, name, "loss")
