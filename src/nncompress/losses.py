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
    return float(np.mean(E * E)), E * (2.0 / E.size)


def bce(P, T, eps=1e-7):
    P = np.clip(P, eps, 1 - eps)
    loss = -np.mean(T * np.log(P) + (1 - T) * np.log(1 - P))
    return float(loss), (P - T) / (P * (1 - P)) / P.size


def l1(P, T):
    """Mean absolute error; its gradient is sign(P - T) (0 where equal).
    Trains the conv networks' residual (``--loss l1``): for super-resolution
    it measures higher PSNR than MSE itself (EDSR, Lim et al. 2017)."""
    E = P - T
    return float(np.mean(np.abs(E))), np.sign(E) * (1.0 / E.size)


LOSSES = {"mse": (K.MSE, mse), "bce": (K.BCE, bce)}
RESIDUAL_LOSSES = {"mse": mse, "l1": l1}  # conv networks, on the predicted residual


def get_loss(name):
    return lookup(LOSSES, name, "loss")


def get_residual_loss(name, error=ValueError):
    return lookup(RESIDUAL_LOSSES, name, "loss", error)
