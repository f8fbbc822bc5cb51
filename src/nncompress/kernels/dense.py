"""Dense-network kernels: the loss at the output, the optimizer step, and the
fused small-network epoch and forward pass. Pure functions over arrays;
callers validate. Oracles in ``tests/test_kernels.py``.

A dense stack of L layers is described by arrays: ``sizes`` (L+1,) widths,
``w_off``/``b_off`` (L,) offsets into one flat parameter vector, where the
weight of layer l is ``params[w_off[l]:].reshape(sizes[l], sizes[l+1])``
(row-major, (in, out)), and ``codes``/``alphas`` (L,) its activation (see
``activations``).
"""

import numpy as np
from numba import njit, prange

from .activations import FM, FM_EXACT, _0, _2, _TWO_PI, act_row, fast_cos, fast_sin, slope_row

MSE, BCE = 0, 1
ROWS = 8  # rows the small kernels take at a time (written out below): each weight row loaded serves all eight
SGD, MOMENTUM, ADAM = 0, 1, 2


# ---------------------------------------------------------------------- losses

@njit(cache=True, fastmath=FM, inline="always")
def softplus(x):
    """log(1 + exp(x)) without overflow."""
    return max(x, x * _0) + np.log1p(np.exp(-abs(x)))


@njit(cache=True, fastmath=FM, parallel=True)
def loss_output_grad(loss_code, Zout, P, T, scale, dZ):
    """Loss summed over the rows given, and dL/dZ of the output layer, times
    ``scale`` (1 / elements in the whole batch).

    MSE:  sum (p - t)^2,                       dZ = 2 (p - t) * scale
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
    Row views (1-D slices) let LLVM vectorise the inner loops over outputs;
    rows go ROWS (8) at a time, so each weight row loaded serves eight
    rows (W1's 2-20-20-1 forward for 16 rows: 2.2 us one row at a time, 1.2
    four at a time, 1.05 eight)."""
    L = sizes.shape[0] - 1
    for l in range(L):
        nin, nout = sizes[l], sizes[l + 1]
        W = params[w_off[l]:w_off[l] + nin * nout].reshape(nin, nout)  # (in, out)
        b = params[b_off[l]:b_off[l] + nout]
        r = 0
        while r + ROWS <= nrows:
            x0, x1, x2, x3, x4, x5, x6, x7 = (A[l, r], A[l, r + 1], A[l, r + 2], A[l, r + 3],
                                              A[l, r + 4], A[l, r + 5], A[l, r + 6], A[l, r + 7])
            z0, z1, z2, z3, z4, z5, z6, z7 = (Z[l, r], Z[l, r + 1], Z[l, r + 2], Z[l, r + 3],
                                              Z[l, r + 4], Z[l, r + 5], Z[l, r + 6], Z[l, r + 7])
            for j in range(nout):
                z0[j] = b[j]
                z1[j] = b[j]
                z2[j] = b[j]
                z3[j] = b[j]
                z4[j] = b[j]
                z5[j] = b[j]
                z6[j] = b[j]
                z7[j] = b[j]
            for i in range(nin):
                a0, a1, a2, a3, a4, a5, a6, a7, w = (x0[i], x1[i], x2[i], x3[i],
                                                     x4[i], x5[i], x6[i], x7[i], W[i])
                for j in range(nout):
                    wj = w[j]
                    z0[j] += a0 * wj
                    z1[j] += a1 * wj
                    z2[j] += a2 * wj
                    z3[j] += a3 * wj
                    z4[j] += a4 * wj
                    z5[j] += a5 * wj
                    z6[j] += a6 * wj
                    z7[j] += a7 * wj
            for k in range(r, r + ROWS):
                act_row(codes[l], alphas[l], Z[l, k], A[l + 1, k], nout)
            r += ROWS
        for r in range(r, nrows):
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
    D and E (R, maxw) are two delta buffers; both are overwritten. Rows go
    ROWS at a time, as in the forward pass."""
    L = sizes.shape[0] - 1
    for l in range(L - 1, -1, -1):
        nin, nout = sizes[l], sizes[l + 1]
        W = params[w_off[l]:w_off[l] + nin * nout].reshape(nin, nout)
        gW = grad[w_off[l]:w_off[l] + nin * nout].reshape(nin, nout)
        gb = grad[b_off[l]:b_off[l] + nout]
        r = 0
        while r + ROWS <= nrows:
            x0, x1, x2, x3, x4, x5, x6, x7 = (A[l, r], A[l, r + 1], A[l, r + 2], A[l, r + 3],
                                              A[l, r + 4], A[l, r + 5], A[l, r + 6], A[l, r + 7])
            d0, d1, d2, d3, d4, d5, d6, d7 = (D[r], D[r + 1], D[r + 2], D[r + 3],
                                              D[r + 4], D[r + 5], D[r + 6], D[r + 7])
            for j in range(nout):
                gb[j] += d0[j] + d1[j] + d2[j] + d3[j] + d4[j] + d5[j] + d6[j] + d7[j]
            for i in range(nin):
                a0, a1, a2, a3, a4, a5, a6, a7, g = (x0[i], x1[i], x2[i], x3[i],
                                                     x4[i], x5[i], x6[i], x7[i], gW[i])
                for j in range(nout):
                    g[j] += (a0 * d0[j] + a1 * d1[j] + a2 * d2[j] + a3 * d3[j]
                             + a4 * d4[j] + a5 * d5[j] + a6 * d6[j] + a7 * d7[j])
            r += ROWS
        for r in range(r, nrows):
            x, d = A[l, r], D[r]
            for j in range(nout):
                gb[j] += d[j]
            for i in range(nin):
                xi, g = x[i], gW[i]
                for j in range(nout):
                    g[j] += xi * d[j]
        if l == 0:
            break
        r = 0
        while r + ROWS <= nrows:
            d0, d1, d2, d3, d4, d5, d6, d7 = (D[r], D[r + 1], D[r + 2], D[r + 3],
                                              D[r + 4], D[r + 5], D[r + 6], D[r + 7])
            e0, e1, e2, e3, e4, e5, e6, e7 = (E[r], E[r + 1], E[r + 2], E[r + 3],
                                              E[r + 4], E[r + 5], E[r + 6], E[r + 7])
            for i in range(nin):
                w = W[i]
                s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = d0[0] * _0
                for j in range(nout):
                    wj = w[j]
                    s0 += d0[j] * wj
                    s1 += d1[j] * wj
                    s2 += d2[j] * wj
                    s3 += d3[j] * wj
                    s4 += d4[j] * wj
                    s5 += d5[j] * wj
                    s6 += d6[j] * wj
                    s7 += d7[j] * wj
                e0[i] = s0
                e1[i] = s1
                e2[i] = s2
                e3[i] = s3
                e4[i] = s4
                e5[i] = s5
                e6[i] = s6
                e7[i] = s7
            for k in range(r, r + ROWS):
                slope_row(codes[l - 1], alphas[l - 1], Z[l - 1, k], A[l, k], E[k], nin)
            r += ROWS
        for r in range(r, nrows):
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
            if loss_code == BCE:  # the branch outside the row loops: 10% of W1's step when inside
                for r in range(nrows):
                    idx = perm[c0 + r]
                    for j in range(nout):
                        z = Z[L - 1, r, j]
                        y = T[idx, j]
                        total += softplus(z) - y * z
                        D[r, j] = (A[L, r, j] - y) * scale
            else:
                for r in range(nrows):
                    idx = perm[c0 + r]
                    for j in range(nout):
                        e = A[L, r, j] - T[idx, j]
                        total += e * e
                        D[r, j] = _2 * e * scale
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


@njit(cache=True, fastmath=FM_EXACT, parallel=True)  # (fast_sin's range reduction needs the order kept)
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
