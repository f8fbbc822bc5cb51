"""Activation kernels: each activation's value and slope, applied row by row,
alone or fused with the bias add. Pure functions over arrays; callers
validate shapes and dtypes. Oracles in ``tests/test_kernels.py``.

Activations are identified by an integer code (the constants below; names
map to codes in ``nncompress.activations.ACTIVATIONS``) plus one float
argument ``a`` (the leaky slope, or w0 for sine).
"""

import math

import numpy as np
from numba import njit, prange

# No 'nnan'/'ninf': sigmoid relies on exp(-z) overflowing to inf correctly.
FM = {"nsz", "arcp", "contract", "afn", "reassoc"}
# These kernels sum nothing, so they lose nothing without 'reassoc', which
# would undo fast_sin's range reduction ((x - q a) - q b into x - q (a + b):
# float32 errors up to 1e-4 at |x| = 2000 instead of 2e-7).
FM_EXACT = FM - {"reassoc"}

IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH, SINE = 0, 1, 2, 3, 4, 5

# Typed constants: numba promotes float32 (op) int-literal to float64, which
# halves SIMD width. float32 constants keep float32 math in float32 and
# still promote to float64 for the float64 gradient checks.
_0, _1, _2, _HALF = np.float32(0), np.float32(1), np.float32(2), np.float32(0.5)

# Cody-Waite split of pi: PI_HI has few mantissa bits, so q * PI_HI is exact.
_PI_HI = np.float32(3.140625)
_PI_LO = np.float32(9.6765358979323846e-04)
_INV_PI = np.float32(0.31830988618379067)
_TWO_PI = np.float32(2 * math.pi)
# 1/15!, 1/13!, ..., 1/3!
_C = tuple(np.float32(1.0 / math.factorial(k)) for k in (15, 13, 11, 9, 7, 5, 3))
_C15, _C13, _C11, _C9, _C7, _C5, _C3 = _C


@njit(cache=True, fastmath=FM_EXACT, inline="always")
def _sin_reduced(x, q, m):
    """(-1)^q sin(x - m pi), for x - m pi in [-pi/2, pi/2]: Cody-Waite (m
    times PI_HI is exact for |m| < 2^15, so the first subtraction is too),
    then the odd polynomial."""
    r = (x - m * _PI_HI) - m * _PI_LO
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


@njit(cache=True, fastmath=FM_EXACT, inline="always")
def fast_sin(x):
    """sin(x) by Cody-Waite range reduction to [-pi/2, pi/2] and an odd
    degree-15 Taylor polynomial, with float32 constants: for |x| <= 2000,
    error < 3e-8 in float64 and < 2e-7 in float32 (float32's own rounding).
    Branch-free, so loops over it vectorise; np.sin in numba calls libm once
    per element. The reduction needs its two subtractions in order: inlined
    into a kernel compiled with 'reassoc' (dense.py's fused small-network
    kernels, which need it for their sums), float32 errors grow to 5e-6 at
    |x| <= 100 and 1e-4 at 2000; so this module's kernels, which sum
    nothing, are compiled without it (FM_EXACT)."""
    q = np.floor(x * _INV_PI + _HALF)
    return _sin_reduced(x, q, q)


@njit(cache=True, fastmath=FM_EXACT, inline="always")
def fast_cos(x):
    """cos(x) = sin(x + pi/2), reduced from x itself (adding pi/2 first
    would round the argument: 6e-5 at |x| = 2000 in float32)."""
    q = np.floor(x * _INV_PI + _1)
    return _sin_reduced(x, q, q - _HALF)


# Each activation as two inlined scalar functions: value f(z, a) and slope
# g(z, y, a) = d f / d z given y = f(z). ``act_row``/``slope_row`` branch on
# the code once per row, so each activation gets its own branch-free,
# vectorised inner loop (a branch per element blocks vectorisation: 10-50x).
# Passing the function itself as a kernel argument would be neater, but
# numba cannot cache such kernels across processes.

@njit(cache=True, fastmath=FM_EXACT, inline="always")
def f_relu(z, a):
    return z if z > _0 else z * _0


@njit(cache=True, fastmath=FM_EXACT, inline="always")
def g_relu(z, y, a):
    return z * _0 + (_1 if z > _0 else _0)


@njit(cache=True, fastmath=FM_EXACT, inline="always")
def f_leaky_relu(z, a):
    return z if z > _0 else a * z


@njit(cache=True, fastmath=FM_EXACT, inline="always")
def g_leaky_relu(z, y, a):
    return z * _0 + (_1 if z > _0 else a)


@njit(cache=True, fastmath=FM_EXACT, inline="always")
def f_sigmoid(z, a):
    return _1 / (_1 + np.exp(-z))


@njit(cache=True, fastmath=FM_EXACT, inline="always")
def g_sigmoid(z, y, a):
    return y * (_1 - y)


@njit(cache=True, fastmath=FM_EXACT, inline="always")
def f_tanh(z, a):
    return np.tanh(z)


@njit(cache=True, fastmath=FM_EXACT, inline="always")
def g_tanh(z, y, a):
    return _1 - y * y


@njit(cache=True, fastmath=FM_EXACT, inline="always")
def f_sine(z, a):
    return fast_sin(a * z)


@njit(cache=True, fastmath=FM_EXACT, inline="always")
def g_sine(z, y, a):
    return a * fast_cos(a * z)


@njit(cache=True, fastmath=FM_EXACT, inline="always")
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


@njit(cache=True, fastmath=FM_EXACT, inline="always")
def bias_act_row_inplace(code, a, z, b, n):
    """z[:n] = act(z[:n] + b[:n]) in place: one array read and written at the
    same index (act_row with out = z is two views of one array, which LLVM
    must assume overlap: its scalar loop, 3.9x slower for sine)."""
    if code == RELU:
        for j in range(n):
            z[j] = f_relu(z[j] + b[j], a)
    elif code == LEAKY_RELU:
        for j in range(n):
            z[j] = f_leaky_relu(z[j] + b[j], a)
    elif code == SIGMOID:
        for j in range(n):
            z[j] = f_sigmoid(z[j] + b[j], a)
    elif code == TANH:
        for j in range(n):
            z[j] = f_tanh(z[j] + b[j], a)
    elif code == SINE:
        for j in range(n):
            z[j] = f_sine(z[j] + b[j], a)
    else:
        for j in range(n):
            z[j] += b[j]


@njit(cache=True, fastmath=FM_EXACT, inline="always")
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


@njit(cache=True, fastmath=FM_EXACT)
def _act_forward(code, a, Z, out):
    for r in range(Z.shape[0]):
        act_row(code, a, Z[r], out[r], Z.shape[1])


@njit(cache=True, fastmath=FM_EXACT)
def _act_backward(code, a, Z, Y, dY, dZ):
    for r in range(Z.shape[0]):
        dz, dy = dZ[r], dY[r]
        for j in range(Z.shape[1]):
            dz[j] = dy[j]
        slope_row(code, a, Z[r], Y[r], dz, Z.shape[1])


@njit(cache=True, fastmath=FM_EXACT)
def _bias_act(code, Z, b, a, out):
    """Z += b; out = act(Z), row by row (out may be Z)."""
    for r in range(Z.shape[0]):
        z = Z[r]
        for j in range(Z.shape[1]):
            z[j] += b[j]
        act_row(code, a, z, out[r], Z.shape[1])


@njit(cache=True, fastmath=FM_EXACT)
def _bias_act_inplace(code, Z, b, a):
    for r in range(Z.shape[0]):
        bias_act_row_inplace(code, a, Z[r], b, Z.shape[1])


_BLOCKS = 16


@njit(cache=True, fastmath=FM_EXACT, parallel=True)
def _act_forward_par(code, a, Z, out):
    n = Z.shape[0]
    for k in prange(_BLOCKS):
        r0, r1 = k * n // _BLOCKS, (k + 1) * n // _BLOCKS
        _act_forward(code, a, Z[r0:r1], out[r0:r1])


@njit(cache=True, fastmath=FM_EXACT, parallel=True)
def _act_backward_par(code, a, Z, Y, dY, dZ):
    n = Z.shape[0]
    for k in prange(_BLOCKS):
        r0, r1 = k * n // _BLOCKS, (k + 1) * n // _BLOCKS
        _act_backward(code, a, Z[r0:r1], Y[r0:r1], dY[r0:r1], dZ[r0:r1])


@njit(cache=True, fastmath=FM_EXACT, parallel=True)
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


@njit(cache=True, fastmath=FM_EXACT, parallel=True)
def _bias_act_inplace_par(code, Z, b, a):
    n = Z.shape[0]
    for k in prange(_BLOCKS):
        r0, r1 = k * n // _BLOCKS, (k + 1) * n // _BLOCKS
        _bias_act_inplace(code, Z[r0:r1], b, a)


def bias_activation_inference(Z, b, code, a):
    """In place Z = act(Z + b), when no backward pass follows."""
    (_bias_act_inplace_par if Z.size >= PARALLEL_MIN else _bias_act_inplace)(code, Z, b, a)
