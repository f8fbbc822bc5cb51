"""Training: ``fit(net, X, Y, ...)`` with full-batch gradient descent
(``batch_size=0``) or minibatch SGD, momentum or Adam, on MSE or BCE.

Three engines, one result (tests check they agree):

* ``small``: small steps (batch x widest layer < ``SMALL_WORK``) run a
  whole epoch of minibatch steps in one compiled call
  (``kernels.dense.train_epoch_small``), so Python is paid once per epoch, not
  once per step.
* ``blas``: wider networks take float32 BLAS matmuls per chunk of rows, with
  bias + activation (+ derivative) fused in parallel numba kernels.
* ``layers``: any other layer stack, through each layer's forward/backward.

Gradients of a step accumulate over chunks of at most ``CHUNK`` rows, so a
full-batch step on a large image never holds all its activations at once.
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from . import kernels as K
from .layers import Activation
from .checkpoint import Checkpoint
from .losses import get_loss
from .network import Network
from .optimizers import Optimizer, get_optimizer, schedule as lr_at
from .registry import lookup

CHUNK = 65536      # rows per chunk in the blas engine: large GEMMs run near peak (8192 rows: 1.5x slower)
SMALL_WORK = 8192  # batch x widest layer below which the fused kernel beats BLAS (measured)
BLAS_THREADED_ROWS = 4096  # below this many rows a matmul runs faster on one BLAS thread
SMALL_CHUNK = 256  # rows per chunk in the small engine


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the network holds the last good weights."""


@dataclass
class History:
    loss: list = field(default_factory=list)  # mean loss of each epoch


ENGINES = ("small", "blas", "layers")


def fit(net: Network, X, Y, *, epochs: int, batch_size: int = 0, loss: str = "mse",
        optimizer: str | Optimizer = "sgd", lr: float | None = None, schedule: str = "constant",
        rng: np.random.Generator | None = None, callback=None, checkpoint: Checkpoint | None = None,
        engine: str | None = None) -> History:
    """Train ``net`` on X (N, in) -> Y (N, out) up to ``epochs`` epochs in all.

    batch_size 0 (or >= N) is full-batch gradient descent. ``optimizer`` is a
    name (with ``lr``, 0.01 if not given) or an Optimizer, whose own rate is
    used unless ``lr`` is given. ``callback(epoch, loss, seconds)`` runs
    after each epoch and stops training by returning True. ``checkpoint``
    (see ``run_epochs``) continues a stopped run exactly and is kept up to
    date. ``engine`` picks the training loop ("small", "blas", "layers";
    chosen by size if None). Raises TrainingDiverged on a NaN/inf loss, with
    the last good weights restored.
    """
    X = np.ascontiguousarray(X, dtype=net.dtype)
    Y = np.ascontiguousarray(Y, dtype=net.dtype)
    if X.ndim != 2 or X.shape[1] != net.in_size or X.shape[0] == 0:
        raise ValueError(f"X must have shape (N, {net.in_size}) with N >= 1, got {X.shape}")
    if Y.shape != (X.shape[0], net.out_size):
        raise ValueError(f"Y must have shape ({X.shape[0]}, {net.out_size}), got {Y.shape}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a whole number >= 1 (the total, with a checkpoint), got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 0:
        raise ValueError(f"batch_size must be a whole number >= 0 (0: the whole set), got {batch_size!r}")
    if engine is not None:
        lookup(ENGINES, engine, "engine")
    loss_code, _ = get_loss(loss)
    if loss == "bce" and not (isinstance(net.layers[-1], Activation) and net.layers[-1].name == "sigmoid"):
        raise ValueError("bce loss needs a network that ends in a sigmoid activation")
    if loss == "bce" and (Y.min() < 0 or Y.max() > 1):
        raise ValueError(f"bce targets must lie in [0, 1], got {Y.min():g} to {Y.max():g}")
    if isinstance(optimizer, str):
        lr = 0.01 if lr is None else lr
        opt = get_optimizer(optimizer, lr)
    else:
        opt = optimizer
        lr = opt.lr if lr is None else lr
    if not (isinstance(lr, (int, float, np.floating)) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if getattr(opt, "m", None) is None or opt.m.shape != net.params.shape:
        opt.init_state(net.n_params, net.dtype)
    rng = rng if rng is not None else np.random.default_rng(0)
    N = X.shape[0]
    batch = N if batch_size <= 0 else min(int(batch_size), N)

    stack = net.dense_stack()
    if engine is None:
        engine = "layers" if stack is None else ("small" if batch * stack.max_width < SMALL_WORK else "blas")
    elif stack is None and engine != "layers":
        raise ValueError(f"engine '{engine}' trains Connected and Activation layers only; this network needs 'layers'")
    engine_epoch = {"small": _SmallEngine, "blas": _BlasEngine, "layers": _LayerEngine}[engine](
        net, stack, X, Y, loss_code, opt, batch)

    def step_epoch(e):
        perm = rng.permutation(N) if batch < N else np.arange(N)
        return engine_epoch(perm, lr_at(schedule, lr, e, epochs))

    # Small matmuls run 3x slower with threads here (and fight numba's)
    threads = 1 if min(batch, CHUNK) < BLAS_THREADED_ROWS else None
    with threadpool_limits(limits=threads, user_api="blas"):
        return run_epochs(net, opt, rng, step_epoch, epochs=epochs, checkpoint=checkpoint, callback=callback,
                          lr=lr)


def fit_settings(net, X, Y, settings, **kw) -> History:
    """``fit`` with a run's training settings (epochs, batch size, loss,
    optimizer, learning rate and schedule)."""
    return fit(net, X, Y, epochs=settings.epochs, batch_size=settings.batch_size, loss=settings.loss,
               optimizer=settings.optimizer, lr=settings.lr, schedule=settings.schedule, **kw)


def run_epochs(net, opt, rng, step_epoch, *, epochs, checkpoint=None, callback=None, lr=None) -> History:
    """The epoch loop every mode shares: epochs [checkpoint.epoch, epochs)
    of ``step_epoch(e) -> mean loss``, which draws its randomness from
    ``rng`` and its rate from the schedule at ``e`` of ``epochs``.

    A checkpoint that holds optimizer state puts the optimizer and ``rng``
    back first, so a resumed run continues the same curve, bit for bit.
    After each epoch the checkpoint records the weights, optimizer and RNG;
    on a NaN/inf loss (TrainingDiverged) or Ctrl-C (KeyboardInterrupt,
    re-raised) they go back to it, so what the caller saves is always a
    whole epoch that the checkpoint continues exactly.
    ``callback(epoch, loss, seconds)`` stops training by returning True."""
    ck = checkpoint if checkpoint is not None else Checkpoint()
    if ck.resumable:
        ck.restore(net.params, opt, rng)
    ck.take(ck.epoch, net.params, opt, rng)
    history = History()
    for e in range(ck.epoch, epochs):
        try:
            t0 = time.perf_counter()
            value = step_epoch(e)
            dt = time.perf_counter() - t0
        except KeyboardInterrupt:
            ck.restore(net.params, opt, rng)
            raise
        if not math.isfinite(value):
            ck.restore(net.params, opt, rng)
            rate = "" if lr is None else f" (now {lr:g})"
            raise TrainingDiverged(
                f"the loss became {value} at epoch {e + 1}; try a smaller learning rate, --lr{rate}. "
                f"The last good weights were kept.")
        ck.take(e + 1, net.params, opt, rng)
        history.loss.append(value)
        if callback is not None and callback(e, value, dt):
            break
    return history


class _SmallEngine:
    def __init__(self, net, stack, X, Y, loss_code, opt, batch):
        for layer in stack.prefix:  # parameter-free: encode once
            X = layer.forward(X)
        self.X, self.Y = np.ascontiguousarray(X, net.dtype), Y
        self.net, self.s, self.loss_code, self.opt, self.batch = net, stack, loss_code, opt, batch
        L, R, W = len(stack.connected), min(batch, SMALL_CHUNK), stack.max_width
        self.A = np.zeros((L + 1, R, W), net.dtype)
        self.Z = np.zeros((L, R, W), net.dtype)
        self.D = np.zeros((R, W), net.dtype)
        self.E = np.zeros((R, W), net.dtype)

    def __call__(self, perm, lr):
        s, o, n = self.s, self.opt, self.net
        value, o.t = K.train_epoch_small(
            self.X, self.Y, perm, self.batch, n.params, n.grads, o.m, o.v, o.t,
            s.sizes, s.w_off, s.b_off, s.codes, s.alphas, self.loss_code, o.code,
            lr, o.beta1, o.beta2, o.eps, self.A, self.Z, self.D, self.E)
        return value


class _BlasEngine:
    def __init__(self, net, stack, X, Y, loss_code, opt, batch):
        self.net, self.s, self.X, self.Y = net, stack, X, Y
        self.loss_code, self.opt, self.batch = loss_code, opt, batch
        R = min(batch, CHUNK)
        w = [int(v) for v in stack.sizes]
        self.A = [np.empty((R, w[l]), net.dtype) for l in range(len(w))]
        self.Z = [np.empty((R, w[l + 1]), net.dtype) for l in range(len(w) - 1)]
        self.D = [np.empty((R, w[l + 1]), net.dtype) for l in range(len(w) - 1)]
        self.dA = np.empty((R, max(w)), net.dtype)
        self.gW = [np.empty((w[l], w[l + 1]), net.dtype) for l in range(len(w) - 1)]

    def __call__(self, perm, lr):
        net, s = self.net, self.s
        N, total, L = self.X.shape[0], 0.0, len(s.connected)
        full = self.batch >= N
        for start in range(0, N, self.batch):
            stop = min(start + self.batch, N)
            scale = 1.0 / ((stop - start) * net.out_size)
            net.grads[...] = 0
            for c0 in range(start, stop, CHUNK):
                c1 = min(c0 + CHUNK, stop)
                n = c1 - c0
                if full:
                    Xc, Tc = self.X[c0:c1], self.Y[c0:c1]
                else:
                    idx = perm[c0:c1]
                    Xc, Tc = self.X[idx], self.Y[idx]
                for layer in s.prefix:
                    Xc = layer.forward(Xc)
                A, Z, D = [a[:n] for a in self.A], [z[:n] for z in self.Z], [d[:n] for d in self.D]
                A[0][...] = Xc
                for l, layer in enumerate(s.connected):  # Z = A W; A' = act(Z + b)
                    np.matmul(A[l], layer.params["W"], out=Z[l])
                    K.bias_activation(Z[l], layer.params["b"], s.codes[l], s.alphas[l], A[l + 1])
                total += K.loss_output_grad(self.loss_code, Z[-1], A[-1], Tc, net.dtype.type(scale), D[-1])
                if self.loss_code == K.MSE:
                    K.activation_backward(s.codes[-1], s.alphas[-1], Z[-1], A[-1], D[-1], D[-1])
                for l in range(L - 1, -1, -1):  # dW = A^T D; db = sum D; dA = D W^T; D' = dA * act'(Z)
                    layer = s.connected[l]
                    layer.grads["W"] += np.matmul(A[l].T, D[l], out=self.gW[l])
                    layer.grads["b"] += D[l].sum(axis=0)
                    if l > 0:
                        dA = np.matmul(D[l], layer.params["W"].T, out=self.dA[:n, :A[l].shape[1]])
                        K.activation_backward(s.codes[l - 1], s.alphas[l - 1], Z[l - 1], A[l], dA, D[l - 1])
            self.opt.t += 1
            K.optimizer_step(self.opt.code, net.params, net.grads, self.opt.m, self.opt.v, lr,
                             self.opt.beta1, self.opt.beta2, self.opt.eps, self.opt.t)
        return total / (N * net.out_size)


class _LayerEngine:
    """Any layer stack, through Layer.forward/backward (slow but general)."""

    def __init__(self, net, stack, X, Y, loss_code, opt, batch):
        self.net, self.X, self.Y, self.loss_code, self.opt, self.batch = net, X, Y, loss_code, opt, batch

    def __call__(self, perm, lr):
        net, N, total = self.net, self.X.shape[0], 0.0
        _, loss_fn = get_loss("bce" if self.loss_code == K.BCE else "mse")
        for start in range(0, N, self.batch):
            idx = perm[start:start + self.batch]
            P = net.forward(self.X[idx])
            T = self.Y[idx]
            if self.loss_code == K.BCE:  # through the logits, as the kernels do
                Zl = net.layers[-1]._X
                value = float(np.mean(np.logaddexp(0, Zl) - T * Zl))
                dY = (P - T) / P.size  # dL/dZ: skip the sigmoid's backward
                for layer in reversed(net.layers[:-1]):
                    dY = layer.backward(dY)
            else:
                value, dP = loss_fn(P, T)
                net.backward(dP.astype(net.dtype))
            total += value * len(idx)
            self.opt.step(net.params, net.grads, lr)
        return total / N
