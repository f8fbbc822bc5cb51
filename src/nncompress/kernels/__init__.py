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

# The parallel kernels' threads: OpenMP's (libgomp) with passive waits where
# it is installed, else numba's own workqueue. On 2 cores the workqueue ran a
# 0.5 ms parallel loop in 0.5 to 1.0 ms from call to call (its two workers
# often woke on one core while the caller slept), OpenMP in a steady 0.5 (the
# caller works too): a conv training step 7% faster over five alternating
# rounds. OpenMP's default spinning waits made one 3x slower when other
# processes shared the cores. A user's NUMBA_THREADING_LAYER or
# OMP_WAIT_POLICY still wins; OpenMP libraries loaded later in the same
# process (PyTorch) wait passively too, so the benchmarks time PyTorch in
# processes of its own. WAIT_POLICY_SET: whether this module set the policy.
WAIT_POLICY_SET = False
if "NUMBA_THREADING_LAYER" not in os.environ:
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # libgomp reads it when it loads, at the first parallel loop
        WAIT_POLICY_SET = True
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]  # numba wants all three
    numba.config.THREADING_LAYER = "default"  # the first of them that loads

from .activations import (IDENTITY, LEAKY_RELU, PARALLEL_MIN, RELU, SIGMOID, SINE, TANH, act_row,
                          activation_backward, activation_forward, bias_activation, bias_activation_inference,
                          fast_cos, fast_sin, slope_row)
from .dense import (ADAM, BCE, MOMENTUM, MSE, SGD, fourier_features, loss_output_grad, optimizer_step,
                    predict_small, softplus, train_epoch_small)

__all__ = ["IDENTITY", "RELU", "LEAKY_RELU", "SIGMOID", "TANH", "SINE", "PARALLEL_MIN", "act_row", "slope_row",
           "fast_sin", "fast_cos", "activation_forward", "activation_backward", "bias_activation",
           "bias_activation_inference", "MSE", "BCE", "SGD", "MOMENTUM", "ADAM", "softplus", "loss_output_grad",
           "optimizer_step", "train_epoch_small", "predict_small", "fourier_features"]
