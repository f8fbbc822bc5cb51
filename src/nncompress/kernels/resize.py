"""Resizing one axis as sums of a few taps (``resize.contributions``):
out[i] = sum_t w[i, t] in[idx[i, t]]. Oracle: the (out, in) weight matrix
of ``resize.weights`` (tests/test_metrics.py)."""

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def taps_rows(X, idx, w, out):
    """X (n_in, m) -> out (n_out, m), along the rows: each output row is a
    weighted sum of whole input rows (contiguous, vectorised)."""
    n_out, taps = idx.shape
    m = X.shape[1]
    for i in prange(n_out):
        for j in range(m):
            out[i, j] = 0.0
        for t in range(taps):
            wt = w[i, t]
            src = idx[i, t]
            for j in range(m):
                out[i, j] += wt * X[src, j]


@njit(cache=True, parallel=True)
def taps_cols(X, idx, w, out):
    """X (h, n_in, c) -> out (h, n_out, c), along the middle axis, one image
    row per task."""
    h, _, c = X.shape
    n_out, taps = idx.shape
    for r in prange(h):
        for i in range(n_out):
            for k in range(c):
                s = 0.0
                for t in range(taps):
                    s += w[i, t] * X[r, idx[i, t], k]
                out[r, i, k] = s
