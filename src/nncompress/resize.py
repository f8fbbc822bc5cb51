"""MATLAB-compatible ``imresize`` (bicubic, a = -0.5, antialiased when
shrinking), the resize that the super-resolution literature's numbers use.
Pillow's bicubic is not the same: it uses a = -0.5 too, but different
support and edge handling.

Each axis is a matrix product with a (out, in) weight matrix, so the code is
the definition: out[i] = sum_j w(i, j) in[j].
"""

import math

import numpy as np


def cubic(x, a=-0.5):
    """Keys' cubic convolution kernel."""
    x = np.abs(x)
    x2, x3 = x * x, x * x * x
    return np.where(x <= 1, (a + 2) * x3 - (a + 3) * x2 + 1,
                    np.where(x < 2, a * x3 - 5 * a * x2 + 8 * a * x - 4 * a, 0.0))


def weights(n_in, n_out, scale, antialias=True):
    """(n_out, n_in) matrix resizing one axis, as MATLAB's contributions():
    pixel centres u = x / scale + 0.5 (1 - 1 / scale) (1-based), the kernel
    widened by 1/scale when shrinking, edges mirrored (symmetric padding)."""
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
    cols = mirror[np.mod(idx.astype(np.int64) - 1, 2 * n_in)]
    M = np.zeros((n_out, n_in))
    np.add.at(M, (np.repeat(np.arange(n_out), taps), cols.ravel()), w.ravel())
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
        M = weights(n_in, n_out, s, antialias)
        out = np.tensordot(M, out, axes=([1], [axis]))
        out = np.moveaxis(out, 0, axis)
    return out
