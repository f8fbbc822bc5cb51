"""Optimizers over one flat parameter vector. The update rules, as in the
papers, live in ``kernels.dense.optimizer_step``; these classes hold settings and
state, so one fused training kernel can run any of them."""

import numpy as np

from . import kernels as K
from .registry import lookup


class Optimizer:
    code = K.SGD
    beta1 = beta2 = eps = 0.0

    def __init__(self, lr: float):
        self.lr = lr
        self.t = 0  # steps taken

    def init_state(self, n, dtype=np.float32):
        self.m = np.zeros(n, dtype)
        self.v = np.zeros(n, dtype)

    def step(self, params, grads, lr=None):
        """params -= update(grads), in place; both flat (P,)."""
        self.t += 1
        K.optimizer_step(self.code, params, grads, self.m, self.v, self.lr if lr is None else lr,
                         self.beta1, self.beta2, self.eps, self.t)


class SGD(Optimizer):
    """p -= lr g (the original project's ``learn_coef``)."""


class Momentum(Optimizer):
    """m = mu m + g; p -= lr m (heavy ball)."""
    code = K.MOMENTUM

    def __init__(self, lr: float, momentum: float = 0.9):
        super().__init__(lr)
        self.beta1 = momentum


class Adam(Optimizer):
    """Kingma & Ba 2015, with bias correction."""
    code = K.ADAM

    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adam": Adam}


def get_optimizer(name, lr):
    return lookup(OPTIMIZERS, name, "optimizer")(lr)


def schedule(name, lr, epoch, epochs, warmup=0):
    """Learning rate for 0-based ``epoch`` of ``epochs``: constant or cosine."""
    if name == "constant":
        return lr
    if name == "cosine":
        return 0.5 * lr * (1 + np.cos(np.pi * min(epoch, epochs) / max(epochs, 1))) + 0.0
    lookup(SCHEDULES, name, "schedule")  # raises: both schedules are handled above


SCHEDULES = ("constant", "cosine")
