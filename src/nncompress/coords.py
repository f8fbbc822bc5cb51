"""Coords mode: the network *is* the image.

Each table row maps a pixel centre (y, x) in [-1, 1] to its colour, so the
trained network renders the image at any size, in tiles of whole rows
(bounded memory). Implements the mode interface in ``modes.py``.
"""

import math
from dataclasses import dataclass

import numpy as np

from .errors import SpecError
from .imaging import to_uint
from .metrics import psnr_rgb
from .modes import State as _State

NAME = "coords"
DEFAULTS = {"mode": "coords"}  # the Settings field defaults are coords mode's
TAKES_IMAGE = False
OUTPUT_BYTES_PER_VALUE = 3  # uint8/16 tiles + the PNG encoder's copy
PREVIEW_SIDE = 256  # tiny sources are previewed at least this large: that is the point


@dataclass
class State(_State):
    """Coords mode learns nothing besides the weights."""


# ------------------------------------------------------------ table

def pixel_grid(h, w, rows=None):
    """(y, x) of pixel centres scaled to [-1, 1], for rows ``rows`` (default
    all) of an h x w image: (len(rows) * w, 2) float32, row-major."""
    rows = np.arange(h) if rows is None else np.asarray(rows)
    y = ((rows + 0.5) / h * 2 - 1).astype(np.float32)
    x = ((np.arange(w) + 0.5) / w * 2 - 1).astype(np.float32)
    grid = np.empty((len(rows), w, 2), np.float32)
    grid[..., 0] = y[:, None]
    grid[..., 1] = x[None, :]
    return grid.reshape(-1, 2)


def image_to_table(img):
    """(H, W, C) image -> X (H*W, 2) pixel centres in [-1, 1], Y (H*W, C)."""
    h, w, c = img.shape
    return pixel_grid(h, w), np.ascontiguousarray(img.reshape(-1, c), dtype=np.float32)


def render(predict, h, w, channels, tile_pixels=1 << 18, bits=None, on_progress=None):
    """Evaluate ``predict`` (X (N, 2) -> (N, C)) over an h x w grid in tiles
    of whole rows, so memory is bounded for any size. Returns float32
    (H, W, C) in [0, 1], or uint8/uint16 when ``bits`` is given (a quarter
    or half the memory for very large outputs). ``on_progress(what, done,
    total)`` after each tile."""
    dtype = np.float32 if bits is None else (np.uint16 if bits == 16 else np.uint8)
    out = np.empty((h, w, channels), dtype)
    rows_per_tile = max(1, tile_pixels // max(w, 1))
    tiles = -(-h // rows_per_tile)
    for i, r0 in enumerate(range(0, h, rows_per_tile)):
        rows = np.arange(r0, min(h, r0 + rows_per_tile))
        tile = np.clip(predict(pixel_grid(h, w, rows)), 0, 1).reshape(len(rows), w, channels)
        out[rows[0]:rows[-1] + 1] = tile if bits is None else to_uint(tile, bits)
        if on_progress:
            on_progress(f"rendering {w}x{h}", i + 1, tiles)
    return out


# ------------------------------------------------------------ mode interface

def check_layers(items, settings):
    """Dense layers only: the network maps one (y, x) to one colour."""
    for i, it in enumerate(items):
        if "conv" in it or "shuffle" in it:
            raise SpecError(f"layer item {i + 1}: coords mode maps (y, x) to a colour with dense layers (e.g. "
                            f"64:relu); conv and shuffle items are for patch mode: add --mode patch")


def network(settings, channels):
    from .spec import build_network
    return build_network(settings.layers, 2, channels, settings.seed)


def train(net, img, settings, state, *, checkpoint, on_start, on_epoch, on_progress=None):
    from .training import fit_settings
    rng = np.random.default_rng(settings.seed)
    X, Y = image_to_table(img)
    on_start()
    return fit_settings(net, X, Y, settings, rng=rng, callback=lambda e, loss, dt: on_epoch(e, loss, dt, X.shape[0]),
                        checkpoint=checkpoint)


def score(net, img, settings, state, on_progress=None):
    """PSNR (dB, all channels) of the network's recreation of ``img``."""
    return psnr_rgb(upscale(net, img.shape[:2], settings, state, None, on_progress=on_progress), img)


def preview(net, img, settings, state):
    h, w = img.shape[:2]
    f = max(1, math.ceil(PREVIEW_SIDE / max(h, w)))
    return upscale(net, (h * f, w * f), settings, state, None)


def upscale(net, size, settings, state, image, bits=None, on_progress=None):
    """The network rendered at ``size``; ``image`` is unused."""
    return render(net.predict, size[0], size[1], net.out_size, bits=bits, on_progress=on_progress)


def describe(settings, state):
    return {"score": "recreation", "score_detail": "recreation", "learned": state.to_dict()}


def loss_psnr(loss, settings, state):
    return 10 * math.log10(1.0 / max(loss, 1e-20)) if settings.loss == "mse" else None
