"""MATLAB-compatible ``imresize`` (bicubic, a = -0.5, antialiased when
shrinking), the resize that the super-resolution literature's numbers use.
Pillow's bicubic is not the same: it uses a = -0.5 too, but different
support and edge handling.

Each axis is a weighted sum of a few input pixels: out[i] = sum_t w[i, t]
in[idx[i, t]] (``contributions``); ``weights`` is the same as an (out, in)
matrix, the definition the tests hold the sums to. The sums cost taps x the
output instead of in x out (a 1000 -> 4000 axis: 6 taps against 1000).
"""

import math

import numpy as np

from .kernels.resize import taps_cols, taps_rows


def cubic(x, a=-0.5):
    """Keys' cubic convolution kernel."""
    x = np.abs(x)
    x2, x3 = x * x, x * x * x
    return np.where(x <= 1, (a + 2) * x3 - (a + 3) * x2 + 1,
                    np.where(x < 2, a * x3 - 5 * a * x2 + 8 * a * x - 4 * a, 0.0))


def contributions(n_in, n_out, scale, antialias=True):
    """(idx, w), each (n_out, taps): output pixel i of one axis is sum_t
    w[i, t] in[idx[i, t]], as MATLAB's contributions(): pixel centres
    u = x / scale + 0.5 (1 - 1 / scale) (1-based), the kernel widened by
    1/scale when shrinking, edges mirrored (symmetric padding)."""
    kscale = scale if (scale < 1 and antialias) else 1.0
    width = 4.0 / kscale
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]          # (n_out, taps), 1-based
    w = kscale * cubic(kscale * (u[:, None] - idx))
    w /= w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in - 1, -1, -1)])
    return mirror[np.mod(idx.astype(np.int64) - 1, 2 * n_in)], w


def weights(n_in, n_out, scale, antialias=True):
    """``contributions`` as an (n_out, n_in) matrix (mirrored taps that
    land on the same pixel add up)."""
    idx, w = contributions(n_in, n_out, scale, antialias)
    M = np.zeros((n_out, n_in))
    np.add.at(M, (np.repeat(np.arange(n_out), idx.shape[1]), idx.ravel()), w.ravel())
    return M


def imresize(img, scale=None, size=None, antialias=True):
    """Resize (H, W) or (H, W, C) float image by ``scale`` or to ``size``
    (h, w). Output size is ceil(in * scale), as MATLAB. Returns float64,
    unclipped (bicubic overshoots)."""
    img = np.asarray(img, dtype=np.float64)
    h, w = img.shape[:2]
    if size is None:
        sh = sw = float(scale)
        size = (int(math.ceil(h * sh)), int(math.ceil(w * sw)))
    else:
        sh, sw = size[0] / h, size[1] / w
    # MATLAB resizes along the dimension with the smaller scale first
    order = (0, 1) if sh <= sw else (1, 0)
    out = img
    for axis in order:
        n_in = out.shape[axis]
        n_out, s = (size[0], sh) if axis == 0 else (size[1], sw)
        idx, wt = contributions(n_in, n_out, s, antialias)
        if axis == 0:
            flat = np.ascontiguousarray(out.reshape(n_in, -1))
            res = np.empty((n_out, flat.shape[1]))
            taps_rows(flat, idx, wt, res)
            out = res.reshape((n_out,) + out.shape[1:])
        else:
            x3 = np.ascontiguousarray(out.reshape(out.shape[0], n_in, -1))
            res = np.empty((x3.shape[0], n_out, x3.shape[2]))
            taps_cols(x3, idx, wt, res)
            out = res.reshape((out.shape[0], n_out) + out.shape[2:])
    return out
