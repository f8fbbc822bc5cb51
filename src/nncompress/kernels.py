"""Numba kernels: pure functions over arrays, no classes, no user-facing errors.

Callers validate shapes and dtypes; kernels assume clean, C-contiguous input.
Every kernel here has a plain-numpy oracle in ``tests/test_kernels.py``.

Conventions
-----------
* Activations are identified by an integer code (the constants below; names
  map to codes in ``activations.ACTIVATIONS``) plus one float argument ``a``
  (the leaky slope, or w0 for sine).
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


# Each activation as two inlined scalar functions: value f(z, a) and slope
# g(z, y, a) = d f / d z given y = f(z). ``act_row``/``slope_row`` branch on
# the code once per row, so each activation gets its own branch-free,
# vectorised inner loop (a branch per element blocks vectorisation: 10-50x).
# Passing the function itself as a kernel argument would be neater, but
# numba cannot cache such kernels across processes.

@njit(cache=True, fastmath=FM, inline="always")
def f_identity(z, a):
    return z


@njit(cache=True, fastmath=FM, inline="always")
def g_identity(z, y, a):
    return z * _0 + _1


@njit(cache=True, fastmath=FM, inline="always")
def f_relu(z, a):
    return z if z > _0 else z * _0


@njit(cache=True, fastmath=FM, inline="always")
def g_relu(z, y, a):
    return z * _0 + (_1 if z > _0 else _0)


@njit(cache=True, fastmath=FM, inline="always")
def f_leaky_relu(z, a):
    return z if z > _0 else a * z


@njit(cache=True, fastmath=FM, inline="always")
def g_leaky_relu(z, y, a):
    return z * _0 + (_1 if z > _0 else a)


@njit(cache=True, fastmath=FM, inline="always")
def f_sigmoid(z, a):
    return _1 / (_1 + np.exp(-z))


@njit(cache=True, fastmath=FM, inline="always")
def g_sigmoid(z, y, a):
    return y * (_1 - y)


@njit(cache=True, fastmath=FM, inline="always")
def f_tanh(z, a):
    return np.tanh(z)


@njit(cache=True, fastmath=FM, inline="always")
def g_tanh(z, y, a):
    return _1 - y * y


@njit(cache=True, fastmath=FM, inline="always")
def f_sine(z, a):
    return fast_sin(a * z)


@njit(cache=True, fastmath=FM, inline="always")
def g_sine(z, y, a):
    return a * fast_cos(a * z)



@njit(cache=True, fastmath=FM, inline="always")
def act_row(code, a, z, out, n):
    """out[:n] = act(z[:n]) for one row, the branch outside the loops."""
    if code == RELU:
        for j in range(n):
            out[j] = f_relu(z[j], a)
    elif code == LEAKY_RELU:
        for j in range(n):
            out[j] = f_leaky_relu(z[j], a)
    elif code == SIGMOID:
        for j in range(n):
            out[j] = f_sigmoid(z[j], a)
    elif code == TANH:
        for j in range(n):
            out[j] = f_tanh(z[j], a)
    elif code == SINE:
        for j in range(n):
            out[j] = f_sine(z[j], a)
    else:
        for j in range(n):
            out[j] = z[j]


@njit(cache=True, fastmath=FM, inline="always")
def slope_row(code, a, z, y, d, n):
    """d[:n] *= act'(z[:n]) for one row (y = act(z))."""
    if code == RELU:
        for j in range(n):
            d[j] *= g_relu(z[j], y[j], a)
    elif code == LEAKY_RELU:
        for j in range(n):
            d[j] *= g_leaky_relu(z[j], y[j], a)
    elif code == SIGMOID:
        for j in range(n):
            d[j] *= g_sigmoid(z[j], y[j], a)
    elif code == TANH:
        for j in range(n):
            d[j] *= g_tanh(z[j], y[j], a)
    elif code == SINE:
        for j in range(n):
            d[j] *= g_sine(z[j], y[j], a)


# ---------------------------------------------------------------- element-wise
# Serial loops over (N, D) arrays, each with a row-block parallel twin for
# large arrays; the Python wrappers below pick one by size (thread start-up
# costs more than it saves on small arrays).

PARALLEL_MIN = 1 << 19  # elements


@njit(cache=True, fastmath=FM)
def _act_forward(code, a, Z, out):
    for r in range(Z.shape[0]):
        act_row(code, a, Z[r], out[r], Z.shape[1])


@njit(cache=True, fastmath=FM)
def _act_backward(code, a, Z, Y, dY, dZ):
    for r in range(Z.shape[0]):
        dz, dy = dZ[r], dY[r]
        for j in range(Z.shape[1]):
            dz[j] = dy[j]
        slope_row(code, a, Z[r], Y[r], dz, Z.shape[1])


@njit(cache=True, fastmath=FM)
def _bias_act(code, Z, b, a, out):
    """Z += b; out = act(Z), row by row (out may be Z)."""
    for r in range(Z.shape[0]):
        z = Z[r]
        for j in range(Z.shape[1]):
            z[j] += b[j]
        act_row(code, a, z, out[r], Z.shape[1])


_BLOCKS = 16


@njit(cache=True, fastmath=FM, parallel=True)
def _act_forward_par(code, a, Z, out):
    n = Z.shape[0]
    for k in prange(_BLOCKS):
        r0, r1 = k * n // _BLOCKS, (k + 1) * n // _BLOCKS
        _act_forward(code, a, Z[r0:r1], out[r0:r1])


@njit(cache=True, fastmath=FM, parallel=True)
def _act_backward_par(code, a, Z, Y, dY, dZ):
    n = Z.shape[0]
    for k in prange(_BLOCKS):
        r0, r1 = k * n // _BLOCKS, (k + 1) * n // _BLOCKS
        _act_backward(code, a, Z[r0:r1], Y[r0:r1], dY[r0:r1], dZ[r0:r1])


@njit(cache=True, fastmath=FM, parallel=True)
def _bias_act_par(code, Z, b, a, out):
    n = Z.shape[0]
    for k in prange(_BLOCKS):
        r0, r1 = k * n // _BLOCKS, (k + 1) * n // _BLOCKS
        _bias_act(code, Z[r0:r1], b, a, out[r0:r1])


def activation_forward(code, a, Z, out):
    """out = act(Z); Z, out (N, D)."""
    (_act_forward_par if Z.size >= PARALLEL_MIN else _act_forward)(code, a, Z, out)


def activation_backward(code, a, Z, Y, dY, dZ):
    """dZ = dY * act'(Z), given Y = act(Z); all (N, D). dZ may be dY."""
    (_act_backward_par if Z.size >= PARALLEL_MIN else _act_backward)(code, a, Z, Y, dY, dZ)


def bias_activation(Z, b, code, a, out):
    """Fused Z += b; out = act(Z). Z keeps the pre-activation for backward."""
    (_bias_act_par if Z.size >= PARALLEL_MIN else _bias_act)(code, Z, b, a, out)


def bias_activation_inference(Z, b, code, a):
    """In place Z = act(Z + b), when no backward pass follows."""
    (_bias_act_par if Z.size >= PARALLEL_MIN else _bias_act)(code, Z, b, a, Z)


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
    A (L+1, R, maxw) activations, Z (L, R, maxw) pre-activations.
    Row views (1-D slices) let LLVM vectorise the inner loops."""
    L = sizes.shape[0] - 1
    for l in range(L):
        nin, nout = sizes[l], sizes[l + 1]
        W = params[w_off[l]:w_off[l] + nin * nout].reshape(nin, nout)  # (in, out)
        b = params[b_off[l]:b_off[l] + nout]
        for r in range(nrows):
            x, z = A[l, r], Z[l, r]
            for j in range(nout):
                z[j] = b[j]
            for i in range(nin):
                xi, w = x[i], W[i]
                for j in range(nout):
                    z[j] += xi * w[j]
            act_row(codes[l], alphas[l], z, A[l + 1, r], nout)


@njit(cache=True, fastmath=FM)
def _dense_backward_rows(params, grad, sizes, w_off, b_off, codes, alphas, A, Z, D, E, nrows):
    """Accumulate parameter gradients given D = dL/dZ of the last layer.
    D and E (R, maxw) are two delta buffers; both are overwritten."""
    L = sizes.shape[0] - 1
    for l in range(L - 1, -1, -1):
        nin, nout = sizes[l], sizes[l + 1]
        W = params[w_off[l]:w_off[l] + nin * nout].reshape(nin, nout)
        gW = grad[w_off[l]:w_off[l] + nin * nout].reshape(nin, nout)
        gb = grad[b_off[l]:b_off[l] + nout]
        for r in range(nrows):
            x, d = A[l, r], D[r]
            for j in range(nout):
                gb[j] += d[j]
            for i in range(nin):
                xi, g = x[i], gW[i]
                for j in range(nout):
                    g[j] += xi * d[j]
        if l == 0:
            break
        for r in range(nrows):
            d, e = D[r], E[r]
            for i in range(nin):
                w = W[i]
                s = d[0] * _0
                for j in range(nout):
                    s += d[j] * w[j]
                e[i] = s
            slope_row(codes[l - 1], alphas[l - 1], Z[l - 1, r], A[l, r], e, nin)
        D, E = E, D


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
                        D[r, j] = _2 * e * scale
                if loss_code != BCE:
                    slope_row(out_code, out_a, Z[L - 1, r], A[L, r], D[r], nout)
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
