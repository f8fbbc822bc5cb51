"""One image in, one upscale out: patch mode trained on the image itself,
then applied to it in tiles, so memory stays bounded for any size.

Reports through ``on_step(phase, done, total, info)``: phase "train" once
per epoch (info: loss), "upscale" once per tile, and the mode's own slow
phases before training (e.g. "calibrating detail gain") by their names. Knows nothing of
files or terminals (``batch.py`` and the CLI do).
"""

import math
from dataclasses import replace
from fractions import Fraction

import numpy as np

from .compresser import Compresser, output_size  # noqa: F401 (batch asks upscaler for it)
from .imaging import fill_transparent, to_uint
from .resize import imresize
from . import internal, patch
from .spec import make_settings

# Training sees at most this square of the image. Patch mode's steps learn
# from random crops (their cost is fixed by the preset), but what comes before
# them scales with the image's area: the training pairs (a back-projected base
# upscale of the image and 3 shrunk copies: 0.2 s at 512x512, 1.0 s at 1024,
# ~0.7 GB for a 12-megapixel photo) and the detail-gain calibration (13 passes
# of the network over the whole image). The window with the most gradient
# energy is used: texture teaches more than flat sky.
TRAIN_SIDE = 512
# Outputs above this many pixels are made tile by tile.
TILE_ABOVE = 4_000_000
TILE = 512      # input pixels per tile side: the padding costs (560/512)^2 = 1.2x the work (256: 1.4x)
# Input pixels of context around each tile, cut off after. An output pixel
# depends on the network's receptive field in each x2 stage (6 conv3 layers:
# 3 input pixels, then 1.5) and on back-projection, which spreads further but
# fades. Measured at x4 (test_tiles_meet_without_seams, untrained weights):
# 6 layers match the whole image exactly from 12, 8 layers (best) from 16,
# and 8 layers with 4 show seams of up to 22 levels.
TILE_PAD = 24


MODE = "patch"  # the mode that upscales images (its settings are what a config may give)


def patch_settings(scale, preset=None, overrides=None):
    """Settings for learning an x``scale`` upscale of one image: patch
    mode's defaults, its ``preset`` (None: the overrides', else the
    default), then ``overrides`` (a config: e.g. epochs)."""
    return make_settings(overrides or {}, mode=MODE, scale=float(scale), preset=preset, frames=0)


def training_crop(img, side=TRAIN_SIDE):
    """The side x side window of ``img`` with the most detail."""
    return internal.detailed_window(img, side)


def train(img, bits, settings, on_step=None, name="image"):
    """A patch-mode Compresser trained on ``img`` (or its training crop)."""
    crop = training_crop(img)
    comp, _ = Compresser.for_image(crop, bits, settings, name=name)

    def on_epoch(done, total, loss, dt, rows):
        if on_step:
            on_step("train", done, total, {"loss": float(loss)})

    def on_progress(what, done, total):  # self-validation and table building, before the first epoch
        if on_step:
            on_step(what, done, total, {})

    comp.train(crop, settings, on_epoch=on_epoch, on_progress=on_progress, score=False)
    comp.source = img  # a saved model upscales the whole image, not the crop
    h, w, _ = img.shape
    comp.meta["source"].update(height=h, width=w)
    return comp


# A fractional scale p/q tiles on input rows and columns that are multiples
# of q (there every stage's grid starts on a whole pixel); beyond this q,
# e.g. --width 1921 of a 1500-pixel photo, the image is upscaled whole.
MAX_GRID = 64


def tile_plan(h0, w0, size, tile=None, pad=None, grid=1):
    """Tiles [(in rows, in cols, out rows, out cols, core offset)], or None
    when the output is small, or its scale cannot be tiled (then the image
    is upscaled whole). Each tile is upscaled with ``pad`` pixels of
    context. A scale S = p/q (per axis; a whole number: q = 1) puts input
    pixel r at output S*r in every tile whose edges are multiples of q, so
    tiles meet without seams, given ``grid``: the multiple of input pixels
    on which every stage before the last lines up (``internal.stage_grid``:
    1 for whole steps, 4 for x3's stage at 7/4; None: no such multiple)."""
    tile, pad = tile or TILE, TILE_PAD if pad is None else pad
    H, W = size
    sh, sw = Fraction(H, h0), Fraction(W, w0)
    if grid is None or H * W <= TILE_ABOVE or sh < 1 or sw < 1:
        return None
    qh, qw = math.lcm(sh.denominator, grid), math.lcm(sw.denominator, grid)
    if max(qh, qw) > MAX_GRID:
        return None
    th, tw = max(qh, tile - tile % qh), max(qw, tile - tile % qw)
    ph, pw = -(-pad // qh) * qh, -(-pad // qw) * qw
    out = []
    for r0 in range(0, h0, th):
        for c0 in range(0, w0, tw):
            r1, c1 = min(h0, r0 + th), min(w0, c0 + tw)
            p0, q0 = max(0, r0 - ph), max(0, c0 - pw)
            p1, q1 = min(h0, r1 + ph), min(w0, c1 + pw)
            out.append(((p0, p1), (q0, q1), (int(sh * r0), int(sh * r1)), (int(sw * c0), int(sw * c1)),
                        (int(sh * (r0 - p0)), int(sw * (c0 - q0)))))
    return out


def apply(upscale, img, size, bits=8, on_step=None, grid=1):
    """``upscale(img, size) -> float (h, w, C)`` over ``img`` (H, W, C) to
    ``size``, tile by tile when ``tile_plan`` says so (``grid``: its).
    Returns uint8 or uint16 (H', W', C): a quarter (or half) of a float
    output's memory."""
    plan = tile_plan(img.shape[0], img.shape[1], size, grid=grid)
    if plan is None:
        if on_step:
            on_step("upscale", 0, 1, {})
        out = to_uint(upscale(img, tuple(size)), bits)
        if on_step:
            on_step("upscale", 1, 1, {})
        return out
    sh, sw = Fraction(size[0], img.shape[0]), Fraction(size[1], img.shape[1])
    out = np.empty((size[0], size[1], img.shape[2]), np.uint16 if bits == 16 else np.uint8)
    for i, ((p0, p1), (q0, q1), (o0, o1), (u0, u1), (dy, dx)) in enumerate(plan):
        part = upscale(np.ascontiguousarray(img[p0:p1, q0:q1]), (int(sh * (p1 - p0)), int(sw * (q1 - q0))))
        out[o0:o1, u0:u1] = to_uint(part[dy:dy + o1 - o0, dx:dx + u1 - u0], bits)
        if on_step:
            on_step("upscale", i + 1, len(plan), {})
    return out


def upscale_image(img, bits, size, settings, on_step=None, name="image"):
    """(H, W, C) float image -> (uint array at ``size``, the trained
    Compresser or None). Shrinking (or keeping the size) needs no learning:
    MATLAB-style bicubic."""
    h0, w0 = img.shape[:2]
    img = fill_transparent(img)  # no dark fringe from the colour under transparent pixels (once, not per tile)
    if size[0] <= h0 and size[1] <= w0:
        return to_uint(np.clip(imresize(img, size=tuple(size)), 0, 1), bits), None
    comp = train(img, bits, settings, on_step, name)
    return upscale_with(comp, img, size, bits, on_step, filled=True), comp


def tiled_before_training(h0, w0, size, settings):
    """Whether an (h0, w0) -> ``size`` upscale with ``settings`` will be made
    in tiles (``tile_plan``), known before training: a prior in
    low-resolution space goes in whole steps of its scale, so its stages are
    whole multiples of the input; a network learned from the image (--prior
    none) steps by ``patch.train_scale`` (x3: 1.73), its in-between stages at
    eighths of the input (7/4), which line up when the sides allow."""
    grid = 1 if settings.prior != "none" else internal.stage_grid((h0, w0), size, patch.train_scale(settings))
    return tile_plan(h0, w0, size, grid=grid) is not None


def upscale_with(comp, img, size, bits=8, on_step=None, filled=False):
    """A trained patch-mode Compresser's upscale of ``img`` to ``size``, in
    tiles when large (uint8 or uint16). The self-ensemble is decided for
    the whole output, not per tile; so is the colour under transparent
    pixels (``fill_transparent``: pull-push is not local, so per tile it
    would differ at the seams; ``filled``: done already)."""
    img = img if filled else fill_transparent(img)
    if not patch.ensemble_affordable(comp.net, img.shape[:2], size, comp.settings, comp.state):
        comp.settings = replace(comp.settings, ensemble=1)
    grid = internal.stages_grid(comp.net, img.shape[:2], size, comp.state.train_scale or comp.settings.scale)
    return apply(lambda part, sz: comp.upscale(*sz, image=part), img, size, bits, on_step, grid)


def scale_for(h0, w0, size):
    """The single scale a model must learn for an (h0, w0) -> size upscale."""
    return max(size[0] / h0, size[1] / w0)

