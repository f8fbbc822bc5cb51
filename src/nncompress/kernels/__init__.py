"""Numba kernels: pure functions over arrays, no classes, no user-facing errors.

Callers validate shapes and dtypes; kernels assume clean, C-contiguous input.
Every kernel has a plain-numpy oracle in ``tests/test_kernels.py``.

* ``activations``: activation codes, value and slope per row, fused bias + activation
* ``dense``: loss and optimizer kernels, the fused small-network epoch and forward pass
* ``conv``: convolution (direct kernels, im2col with virtual padding, the reflect pad's adjoint)
* ``resize``: one axis of a MATLAB-style resize as sums of a few taps (oracle: the weight matrix, tests/test_metrics.py)
"""

import os

import numba

# The parallel kernels' threads. Imported as a library, numba's own
# workqueue: safe in a process that forks (GNU OpenMP kills a forked child
# that runs a parallel loop). The command line, which never forks, asks for
# OpenMP first (``threads.configure``). A user's NUMBA_THREADING_LAYER or
# NUMBA_THREADING_LAYER_PRIORITY still wins.
if "NUMBA_THREADING_LAYER" not in os.environ and "NUMBA_THREADING_LAYER_PRIORITY" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

from .activations import (IDENTITY, LEAKY_RELU, PARALLEL_MIN, RELU, SIGMOID, SINE, TANH, act_row,
                          activation_backward, activation_forward, bias_activation, bias_activation_inference,
                          fast_cos, fast_sin, slope_row)
from .dense import (ADAM, BCE, MOMENTUM, MSE, SGD, fourier_features, loss_output_grad, optimizer_step,
                    predict_small, softplus, train_epoch_small)

__all__ = ["IDENTITY", "RELU", "LEAKY_RELU", "SIGMOID", "TANH", "SINE", "PARALLEL_MIN", "act_row", "slope_row",
           "fast_sin", "fast_cos", "activation_forward", "activation_backward", "bias_activation",
           "bias_activation_inference", "MSE", "BCE", "SGD", "MOMENTUM", "ADAM", "softplus", "loss_output_grad",
           "optimizer_step", "train_epoch_small", "predict_small", "fourier_features"]
