"""Numba kernels: pure functions over arrays, no classes, no user-facing errors.

Callers validate shapes and dtypes; kernels assume clean, C-contiguous input.
Every kernel here has a plain-numpy oracle in ``tests/test_kernels.py``.

Conventions
-----------
* Activations are identified by an integer code (see ``ACT_CODES``) plus one
  float argument ``a`` (the leaky slope, or w0 for sine).
* A dense stack of L layers is described by arrays: ``sizes`` (L+1,) widths,
  ``w_off``/``b_off`` (L,) offsets into one flat parameter vector, where the
  weight of layer l is ``params[w_off[l]:].reshape(sizes[l], sizes[l+1])``
  (row-major, (in, out)), and ``codes``/``alphas`` (L,) its activation.
"""

import math

import numpy as np
from numba import njit, prange

# No 'nnan'/'ninf': sigmoid relies on exp(-z) overflowing to inf correctly.
FM = {"nsz", "arcp", "contract", "afn", "reassoc"}

IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH, SINE = 0, 1, 2, 3, 4, 5
ACT_CODES = {
    "identity": IDENTITY,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "sine": SINE,
}
MSE, BCE = 0, 1
SGD, MOMENTUM, ADAM = 0, 1, 2

# Typed constants: numba promotes float32 (op) int-literal to float64, which
# halves SIMD width. float32 constants keep float32 math in float32 and
# still promote to float64 for the float64 gradient checks.
_0, _1, _2, _HALF = np.float32(0), np.float32(1), np.float32(2), np.float32(0.5)

# Cody-Waite split of pi: PI_HI has few mantissa bits, so q * PI_HI is exact.
_PI_HI = np.float32(3.140625)
_PI_LO = np.float32(9.6765358979323846e-04)
_INV_PI = np.float32(0.31830988618379067)
_HALF_PI = np.float32(1.5707963267948966)
_TWO_PI = np.float32(2 * math.pi)
# 1/15!, 1/13!, ..., 1/3!
_C = tuple(np.float32(1.0 / math.factorial(k)) for k in (15, 13, 11, 9, 7, 5, 3))
_C15, _C13, _C11, _C9, _C7, _C5, _C3 = _C


@njit(cache=True, fastmath=FM, inline="always")
def fast_sin(x):
    """sin(x) by Cody-Waite range reduction to [-pi/2, pi/2] and an odd
    degree-15 Taylor polynomial, with float32 constants: error below float32
    rounding (< 3e-8) for |x| <= 2000. Branch-free, so loops over it
    vectorise; np.sin in numba calls libm once per element."""
    q = np.floor(x * _INV_PI + _HALF)
    r = (x - q * _PI_HI) - q * _PI_LO
    r2 = r * r
    p = _C15
    p = p * r2 - _C13
    p = p * r2 + _C11
    p = p * r2 - _C9
    p = p * r2 + _C7
    p = p * r2 - _C5
    p = p * r2 + _C3
    s = r - r * r2 * p
    # (-1)^q without a branch
    half = q * _HALF
    odd = half - np.floor(half)  # 0 or 0.5
    return s * (_1 - _2 * _2 * odd)


@njit(cache=True, fastmath=FM, inline="always")
def fast_cos(x):
    return fast_sin(x + _HALF_PI)


@njit(cache=True, fastmath=FM, inline="always")
def act_value(code, a, z):
    """Activation of one pre-activation value."""
    if code == RELU:
        return z if z > _0 else z * _0
    if code == LEAKY_RELU:
        return z if z > _0 else a * z
    if code == SIGMOID:
        return _1 / (_1 + np.exp(-z))
    if code == TANH:
        return np.tanh(z)
    if code == SINE:
        return fast_sin(a * z)
    return z


@njit(cache=True, fastmath=FM, inline="always")
def act_slope(code, a, z, y):
    """d act / d z, given the pre-activation z and the output y = act(z)."""
    one = z * _0 + _1
    if code == RELU:
        return one if z > _0 else z * _0
    if code == LEAKY_RELU:
        return one if z > _0 else a * one
    if code == SIGMOID:
        return y * (_1 - y)
    if code == TANH:
        return _1 - y * y
    if code == SINE:
        return a * fast_cos(a * z)
    return one


# ---------------------------------------------------------------- element-wise

@njit(cache=True, fastmath=FM, parallel=True)
def activation_forward(code, a, Z, out):
    """out = act(Z); Z, out (N, D)."""
    for r in prange(Z.shape[0]):
        for j in range(Z.shape[1]):
            out[r, j] = act_value(code, a, Z[r, j])


@njit(cache=True, fastmath=FM, parallel=True)
def activation_backward(code, a, Z, Y, dY, dZ):
    """dZ = dY * act'(Z); Z, Y, dY, dZ (N, D)."""
    for r in prange(Z.shape[0]):
        for j in range(Z.shape[1]):
            dZ[r, j] = dY[r, j] * act_slope(code, a, Z[r, j], Y[r, j])


@njit(cache=True, fastmath=FM, parallel=True)
def bias_activation(Z, b, code, a, out):
    """Fused Z += b; out = act(Z). Z, out (N, D); b (D,). Z keeps the
    pre-activation for the backward pass."""
    for r in prange(Z.shape[0]):
        for j in range(Z.shape[1]):
            z = Z[r, j] + b[j]
            Z[r, j] = z
            out[r, j] = act_value(code, a, z)


@njit(cache=True, fastmath=FM, parallel=True)
def bias_activation_inference(Z, b, code, a):
    """In place Z = act(Z + b), when no backward pass will follow."""
    for r in prange(Z.shape[0]):
        for j in range(Z.shape[1]):
            Z[r, j] = act_value(code, a, Z[r, j] + b[j])


# ---------------------------------------------------------------------- losses

@njit(cache=True, fastmath=FM, inline="always")
def softplus(x):
    """log(1 + exp(x)) without overflow."""
    return max(x, x * _0) + np.log1p(np.exp(-abs(x)))


@njit(cache=True, fastmath=FM, parallel=True)
def loss_output_grad(loss_code, Zout, P, T, scale, dZ):
    """Loss summed over the rows given, and dL/dZ of the output layer, times
    ``scale`` (1 / elements in the whole batch).

    MSE:  sum (p - t)^2,                       dZ = 2 (p - t) act'(z) * scale
    BCE:  sum softplus(z) - t z (stable in z), dZ = (p - t) * scale
          (BCE always follows a sigmoid; the network checks that.)
    The MSE derivative through the output activation is the caller's job:
    here dZ is dL/dP for MSE and dL/dZ for BCE."""
    n, d = P.shape
    partial = np.zeros(n)
    for r in prange(n):
        acc = 0.0
        for j in range(d):
            if loss_code == BCE:
                z = Zout[r, j]
                acc += softplus(z) - T[r, j] * z
                dZ[r, j] = (P[r, j] - T[r, j]) * scale
            else:
                e = P[r, j] - T[r, j]
                acc += e * e
                dZ[r, j] = _2 * e * scale
        partial[r] = acc
    return partial.sum()


# ------------------------------------------------------------------ optimizers

@njit(cache=True, fastmath=FM)
def optimizer_step(opt_code, p, g, m, v, lr, beta1, beta2, eps, t):
    """One update of flat parameters p from gradient g, in place.

    sgd:      p -= lr g
    momentum: m = beta1 m + g;  p -= lr m
    adam:     m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
              p -= lr mhat / (sqrt(vhat) + eps),  t = step number from 1
    """
    if opt_code == SGD:
        for i in range(p.shape[0]):
            p[i] -= lr * g[i]
    elif opt_code == MOMENTUM:
        for i in range(p.shape[0]):
            m[i] = beta1 * m[i] + g[i]
            p[i] -= lr * m[i]
    else:
        c1 = 1.0 / (1.0 - beta1 ** t)
        c2 = 1.0 / (1.0 - beta2 ** t)
        for i in range(p.shape[0]):
            gi = g[i]
            m[i] = beta1 * m[i] + (1 - beta1) * gi
            v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
            p[i] -= lr * (m[i] * c1) / (np.sqrt(v[i] * c2) + eps)


# ------------------------------------------------- fused small-network epoch

@njit(cache=True, fastmath=FM)
def _dense_forward_rows(params, sizes, w_off, b_off, codes, alphas, A, Z, nrows):
    """Forward rows [0, nrows) of A[0] through every layer.
    A (L+1, R, maxw) activations, Z (L, R, maxw) pre-activations."""
    L = sizes.shape[0] - 1
    for l in range(L):
        nin = sizes[l]
        nout = sizes[l + 1]
        wo = w_off[l]
        bo = b_off[l]
        code = codes[l]
        a = alphas[l]
        for r in range(nrows):
            for j in range(nout):
                Z[l, r, j] = params[bo + j]
            for i in range(nin):
                x = A[l, r, i]
                base = wo + i * nout
                for j in range(nout):
                    Z[l, r, j] += x * params[base + j]
            for j in range(nout):
                A[l + 1, r, j] = act_value(code, a, Z[l, r, j])


@njit(cache=True, fastmath=FM)
def _dense_backward_rows(params, grad, sizes, w_off, b_off, codes, alphas, A, Z, D, E, nrows):
    """Accumulate parameter gradients given D = dL/dZ of the last layer.
    D and E (R, maxw) are two delta buffers; D is overwritten."""
    L = sizes.shape[0] - 1
    for l in range(L - 1, -1, -1):
        nin = sizes[l]
        nout = sizes[l + 1]
        wo = w_off[l]
        bo = b_off[l]
        for r in range(nrows):
            for j in range(nout):
                grad[bo + j] += D[r, j]
            for i in range(nin):
                x = A[l, r, i]
                base = wo + i * nout
                for j in range(nout):
                    grad[base + j] += x * D[r, j]
        if l == 0:
            break
        code = codes[l - 1]
        a = alphas[l - 1]
        for r in range(nrows):
            for i in range(nin):
                base = wo + i * nout
                s = D[r, 0] * _0
                for j in range(nout):
                    s += D[r, j] * params[base + j]
                E[r, i] = s * act_slope(code, a, Z[l - 1, r, i], A[l, r, i])
        for r in range(nrows):
            for i in range(nin):
                D[r, i] = E[r, i]


@njit(cache=True, fastmath=FM)
def train_epoch_small(X, T, perm, batch, params, grad, m, v, t,
                      sizes, w_off, b_off, codes, alphas,
                      loss_code, opt_code, lr, beta1, beta2, eps,
                      A, Z, D, E):
    """One epoch of minibatch training in a single compiled call.

    X (N, in), T (N, out) targets, perm (N,) the row order for this epoch;
    each step takes ``batch`` rows (the last may be short), processed in
    chunks of A.shape[1] rows whose gradients accumulate before one update.
    Returns (mean loss over the epoch, optimizer step count t).
    """
    N = X.shape[0]
    L = sizes.shape[0] - 1
    nout = sizes[L]
    nin = sizes[0]
    R = A.shape[1]
    out_code = codes[L - 1]
    out_a = alphas[L - 1]
    total = 0.0
    for start in range(0, N, batch):
        stop = min(start + batch, N)
        scale = 1.0 / ((stop - start) * nout)
        grad[:] = 0
        for c0 in range(start, stop, R):
            nrows = min(R, stop - c0)
            for r in range(nrows):
                idx = perm[c0 + r]
                for i in range(nin):
                    A[0, r, i] = X[idx, i]
            _dense_forward_rows(params, sizes, w_off, b_off, codes, alphas, A, Z, nrows)
            for r in range(nrows):
                idx = perm[c0 + r]
                for j in range(nout):
                    p = A[L, r, j]
                    y = T[idx, j]
                    if loss_code == BCE:
                        z = Z[L - 1, r, j]
                        total += softplus(z) - y * z
                        D[r, j] = (p - y) * scale
                    else:
                        e = p - y
                        total += e * e
                        D[r, j] = _2 * e * scale * act_slope(out_code, out_a, Z[L - 1, r, j], p)
            _dense_backward_rows(params, grad, sizes, w_off, b_off, codes, alphas, A, Z, D, E, nrows)
        t += 1
        optimizer_step(opt_code, params, grad, m, v, lr, beta1, beta2, eps, t)
    return total / (N * nout), t


@njit(cache=True, fastmath=FM, parallel=True)
def predict_small(X, params, sizes, w_off, b_off, codes, alphas, out):
    """Forward pass of a small dense stack, parallel over blocks of rows.
    X (N, in) -> out (N, out)."""
    N = X.shape[0]
    L = sizes.shape[0] - 1
    maxw = 0
    for l in range(L + 1):
        maxw = max(maxw, sizes[l])
    R = 64
    nblocks = (N + R - 1) // R
    for blk in prange(nblocks):
        A = np.empty((L + 1, R, maxw), dtype=params.dtype)
        Z = np.empty((L, R, maxw), dtype=params.dtype)
        r0 = blk * R
        nrows = min(R, N - r0)
        for r in range(nrows):
            for i in range(sizes[0]):
                A[0, r, i] = X[r0 + r, i]
        _dense_forward_rows(params, sizes, w_off, b_off, codes, alphas, A, Z, nrows)
        for r in range(nrows):
            for j in range(sizes[L]):
                out[r0 + r, j] = A[L, r, j]


@njit(cache=True, fastmath=FM, parallel=True)
def fourier_features(X, B, out):
    """out = [sin(2 pi X B), cos(2 pi X B)]; X (N, in), B (in, F), out (N, 2F)."""
    F = B.shape[1]
    for r in prange(X.shape[0]):
        for f in range(F):
            s = X[r, 0] * _0
            for i in range(X.shape[1]):
                s += X[r, i] * B[i, f]
            out[r, f] = fast_sin(_TWO_PI * s)
            out[r, F + f] = fast_cos(_TWO_PI * s)
