"""Patch mode: internal learning for upscaling (after ZSSR, Shocher et al. 2018).

The image teaches itself: shrink it by S, bicubic it back up, and learn to
map each k x k neighbourhood of that blurry copy to the detail the real
pixel has (the residual over bicubic). Applied one scale up, the same
mapping sharpens a bicubic upscale of the image itself.

Table rows: X = patch - patch mean, divided by ``sigma`` (the typical patch
deviation, fixed at training), (N, k*k); Y = residual / sigma, (N, 1).
Augmented with the 8 rotations/flips of each patch; at inference the 8
predictions are averaged (geometric self-ensemble). How much of the learned
detail to add (alpha) is measured by self-validation one scale down
(``calibrate``).

Colour: ``luma`` learns on Y of YCbCr (JPEG, full range) and upscales Cb,
Cr with bicubic; ``rgb`` shares one network across R, G and B. Alpha is
always upscaled with bicubic.

Implements the mode interface in ``modes.py``; what training learns (sigma,
alpha, the scale of one step) is the ``State``.
"""

import math
from dataclasses import dataclass

import numpy as np

from .errors import ImageError
from .modes import State as _State
from .resize import imresize

NAME = "patch"
TAKES_IMAGE = True
OUTPUT_BYTES_PER_VALUE = 32  # float64 resize passes over the output

# Defaults chosen by measurement on ../shared/images (README, "Upscaling
# results"); configs/patch.yaml documents the same values.
DEFAULTS = {
    "mode": "patch",
    "layers": "64:relu,64:relu,64:relu,out",
    "patch_size": 7,
    "color": "luma",
    "epochs": 10,
    "batch_size": 64,
    "lr": 0.001,
    "optimizer": "adam",
    "schedule": "cosine",
    "steps": 200000,
    "frames": 10,
    "scale": 2.0,
}

BAND_ROWS = 64  # output rows per inference band: bounds memory for any size
EXTRA_SCALES = (1.0, 0.8)  # also learn from the image shrunk by these
ALPHA_GRID = np.arange(0, 1.26, 0.125)  # detail gains tried by self-validation
IBP_ITERATIONS = 10  # back-projection steps in the base upscale
MAX_STEP = 2.0  # largest scale learned in one step: x4 as two x2 steps measured +0.3 dB better


@dataclass
class State(_State):
    sigma: float | None = None        # typical patch deviation: the table's unit
    alpha: float | None = None        # detail gain from self-validation (None: 1)
    train_scale: float | None = None  # the scale of one learned step (None: settings.scale)


def input_size(settings):
    return settings.patch_size ** 2


def dihedral_perms(k):
    """The 8 rotations/flips of a k x k patch as index permutations of its
    flattened (row-major) form: (8, k*k)."""
    idx = np.arange(k * k).reshape(k, k)
    out = []
    for flip in (False, True):
        a = idx.T if flip else idx
        for r in range(4):
            out.append(np.rot90(a, r).ravel())
    return np.array(out)


# ------------------------------------------------------------ colour

_RGB_TO_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def split_channels(img, color):
    """(H, W, C) -> (list of (H, W) channels to learn, list of (H, W)
    channels for bicubic, how to recombine)."""
    c = img.shape[2]
    colour, alpha = (img[..., :3], img[..., 3:]) if c >= 3 else (img[..., :1], img[..., 1:])
    if colour.shape[2] == 3 and color == "luma":
        ycc = colour.astype(np.float64) @ _RGB_TO_YCC.T
        return [ycc[..., 0]], [ycc[..., 1], ycc[..., 2]] + _list(alpha), "ycc"
    return _list(colour), _list(alpha), "direct"


def merge_channels(learned, rest, how):
    if how == "ycc":
        ycc = np.stack([learned[0], rest[0], rest[1]], axis=-1)
        rgb = ycc @ np.linalg.inv(_RGB_TO_YCC).T
        chans = [rgb[..., i] for i in range(3)] + rest[2:]
    else:
        chans = learned + rest
    return np.clip(np.stack(chans, axis=-1), 0, 1).astype(np.float32)


def _list(a):
    return [a[..., i] for i in range(a.shape[2])]


# ------------------------------------------------------------ table

def patches(B, k, rows=None):
    """k x k neighbourhoods (reflect-padded) of the pixels in rows [r0, r1)
    of the 2-D array B, each with its mean removed: (rows * W, k*k) float32."""
    r = k // 2
    h = B.shape[0]
    r0, r1 = (0, h) if rows is None else rows
    lo, hi = max(0, r0 - r), min(h, r1 + r)
    band = B[lo:hi]
    pad_top, pad_bot = r - (r0 - lo), r - (hi - r1)
    band = np.pad(band, ((pad_top, pad_bot), (r, r)), mode="reflect" if min(B.shape) > r else "edge")
    win = np.lib.stride_tricks.sliding_window_view(band, (k, k))  # (rows, W, k, k)
    X = win.reshape(-1, k * k).astype(np.float32)
    X -= X.mean(axis=1, keepdims=True)
    return X


def base_upscale(lr, size, iterations=None, tick=None):
    """The upscale the network refines: bicubic, then iterative
    back-projection (Irani & Peleg 1991), which repeats
    up += bicubic(lr - shrink(up)) until shrinking ``up`` gives back
    ``lr``. It undoes much of the blur of an antialiased shrink: alone it
    beats bicubic by about 0.9 dB at x2 on the test photos."""
    up = imresize(lr, size=size)
    for _ in range(IBP_ITERATIONS if iterations is None else iterations):
        up += imresize(lr - imresize(up, size=lr.shape), size=size)
        if tick:
            tick()
    return up


def pairs(hr, scale, k):
    """Training pairs from one channel: (X patches of the base upscale of
    shrink(hr), target residual hr - base)."""
    lr = imresize(hr, 1.0 / scale)
    up = base_upscale(lr, hr.shape)
    return patches(up, k), (hr - up).reshape(-1, 1).astype(np.float32)


def train_scale(settings):
    """The scale the network learns: the target scale, or for large scales
    steps of MAX_STEP (x4 = two x2 steps, which measures better)."""
    S = settings.scale
    return S if S <= MAX_STEP else S ** (1 / math.ceil(math.log(S) / math.log(MAX_STEP) - 1e-6))


def training_table(img, settings, rng, sigma=None):
    """Returns X (N, k*k), Y (N, 1) and sigma, the normalising scale."""
    learned, _, _ = split_channels(img, settings.color)
    k, S = settings.patch_size, train_scale(settings)
    Xs, Ys = [], []
    for ch in learned:
        for f in EXTRA_SCALES:
            src = ch if f == 1.0 else imresize(ch, f)
            if min(src.shape) < 2 * S + k:
                continue
            X, Y = pairs(src, S, k)
            Xs.append(X)
            Ys.append(Y)
    if not Xs:
        raise ImageError(f"the image is too small for patch mode at x{S:g}; it needs at least "
                         f"{int(2 * S + k)} pixels on each side")
    X, Y = np.concatenate(Xs), np.concatenate(Ys)
    if sigma is None:
        sigma = float(np.sqrt(np.mean(X * X)) + 1e-6)
    X /= sigma
    Y /= sigma
    perms = dihedral_perms(k)
    X = np.concatenate([X[:, p] for p in perms])
    Y = np.tile(Y, (len(perms), 1))
    cap = getattr(settings, "steps", 0)
    if cap and X.shape[0] > cap:
        keep = np.sort(rng.choice(X.shape[0], cap, replace=False))
        X, Y = X[keep], Y[keep]
    return np.ascontiguousarray(X), np.ascontiguousarray(Y), sigma


# ------------------------------------------------------------ inference

def refine(net, up, k, sigma, alpha=1.0, ensemble=True, tick=None):
    """up (H, W) bicubic upscale -> up + alpha * learned residual, computed
    in bands of rows (bounded memory for any size)."""
    perms = dihedral_perms(k) if ensemble else dihedral_perms(k)[:1]
    out = np.empty_like(up)
    for r0 in range(0, up.shape[0], BAND_ROWS):
        r1 = min(up.shape[0], r0 + BAND_ROWS)
        X = patches(up, k, (r0, r1))
        X /= sigma
        res = np.zeros(X.shape[0], np.float64)
        for p in perms:
            res += net.predict(np.ascontiguousarray(X[:, p]))[:, 0]
        out[r0:r1] = up[r0:r1] + (res * (alpha * sigma / len(perms))).reshape(r1 - r0, -1)
        if tick:
            tick()
    return out


def calibrate(net, img, settings, train, on_progress=None):
    """Self-validation of how far learned detail carries up the scales.

    ``net`` (fresh, same architecture) is trained with ``train(net, X, Y)``
    on the image shrunk by the full scale S, then the whole upscaling
    pipeline rebuilds the image itself from that copy for each detail gain
    alpha in ``ALPHA_GRID``; the gain that scores best is returned.
    Textures that are not self-similar across scales (brick, fur) get a
    small alpha instead of over-sharpening. Returns 1.0 when the image is
    too small to test."""
    small = np.clip(imresize(img, 1.0 / settings.scale), 0, 1)
    try:
        X, Y, sigma = training_table(small, settings, np.random.default_rng(settings.seed))
    except ImageError:
        return 1.0
    train(net, X, Y)
    S, k = train_scale(settings), settings.patch_size
    pairs_ = list(zip(split_channels(small, settings.color)[0], split_channels(img, settings.color)[0]))
    errors = []
    for i, alpha in enumerate(ALPHA_GRID):
        if on_progress:
            on_progress("calibrating detail gain", i, len(ALPHA_GRID))
        err = 0.0
        for lo, hi in pairs_:
            err += float(np.sum((learned_upscale(net, lo, hi.shape, k, sigma, alpha, S, ensemble=False) - hi) ** 2))
        errors.append(err)
    if on_progress:
        on_progress("calibrating detail gain", len(ALPHA_GRID), len(ALPHA_GRID))
    return float(ALPHA_GRID[int(np.argmin(errors))])


def back_project(up, lr, iterations=None, tick=None):
    """Iterative back-projection of ``up`` onto ``lr``: afterwards
    shrinking ``up`` gives (nearly) ``lr`` again."""
    for _ in range(IBP_ITERATIONS if iterations is None else iterations):
        up = up + imresize(lr - imresize(up, size=lr.shape), size=up.shape)
        if tick:
            tick()
    return up


def stage_sizes(shape, size, train_scale):
    """Sizes to pass through going from ``shape`` to ``size`` in steps of
    at most ``train_scale`` (the scale the network learned)."""
    ratio = max(size[0] / shape[0], size[1] / shape[1])
    n = max(1, math.ceil(math.log(ratio) / math.log(train_scale) - 1e-6)) if ratio > 1 else 1
    sizes = [(round(shape[0] * (size[0] / shape[0]) ** (i / n)), round(shape[1] * (size[1] / shape[1]) ** (i / n)))
             for i in range(1, n)]
    return sizes + [tuple(size)]


def learned_upscale(net, ch, size, k, sigma, alpha, train_scale, ensemble=True, on_progress=None):
    """One channel up to ``size`` in stages of at most ``train_scale``: each
    a back-projected base plus alpha x learned detail; the result is then
    back-projected onto the input (shrinking it gives the input back), which
    measured +0.3 dB at x2 over stopping after the learned detail."""
    stages = stage_sizes(ch.shape, size, train_scale)
    cur = ch
    for i, stage in enumerate(stages):
        tick = _ticker(on_progress, f"upscaling stage {i + 1}/{len(stages)} to {stage[1]}x{stage[0]}",
                       IBP_ITERATIONS + -(-stage[0] // BAND_ROWS))
        cur = refine(net, base_upscale(cur, stage, tick=tick), k, sigma, alpha, ensemble, tick=tick)
    return back_project(cur, ch, tick=_ticker(on_progress, f"back-projection at {size[1]}x{size[0]}",
                                              IBP_ITERATIONS))


def _ticker(on_progress, what, total):
    """A tick() that reports one more of ``total`` units of ``what``."""
    if on_progress is None:
        return None
    done = [0]
    on_progress(what, 0, total)

    def tick():
        done[0] += 1
        on_progress(what, done[0], total)
    return tick


def upscale_image(net, img, size, settings, state, ensemble=True, on_progress=None):
    """(H, W, C) image -> (size[0], size[1], C) float32: learned channels
    through ``learned_upscale``, chroma the base upscale, alpha bicubic."""
    learned, rest, how = split_channels(img, settings.color)
    if size[0] <= img.shape[0] and size[1] <= img.shape[1]:  # shrinking: nothing to learn
        return merge_channels([imresize(c, size=size) for c in learned], [imresize(c, size=size) for c in rest], how)
    alpha = 1.0 if state.alpha is None else state.alpha
    step = settings.scale if state.train_scale is None else state.train_scale
    up_learned = [learned_upscale(net, ch, size, settings.patch_size, state.sigma, alpha, step, ensemble, on_progress)
                  for ch in learned]
    n_chroma = 2 if how == "ycc" else 0
    tick = _ticker(on_progress, f"colour at {size[1]}x{size[0]}", n_chroma * IBP_ITERATIONS) \
        if n_chroma else None
    up_rest = [base_upscale(c, size, tick=tick) if i < n_chroma else imresize(c, size=size) for i, c in enumerate(rest)]
    return merge_channels(up_learned, up_rest, how)


# ------------------------------------------------------------ mode interface

def network(settings, channels):
    from .spec import build_network
    return build_network(settings.layers, input_size(settings), 1, settings.seed)


def train(net, img, settings, state, *, checkpoint, on_start, on_epoch, on_progress=None):
    """Self-validate alpha (once), build the table, fit it."""
    from .network import Network
    from .training import fit_settings
    rng = np.random.default_rng(settings.seed)
    if state.alpha is None:
        probe = Network.from_config(net.get_config())

        def report(e, loss, dt):
            if on_progress:
                on_progress("calibrating: training", e + 1, settings.epochs)
        state.alpha = calibrate(probe, img, settings, lambda n, X, Y: fit_settings(
            n, X, Y, settings, rng=np.random.default_rng(settings.seed), callback=report), on_progress)
    X, Y, state.sigma = training_table(img, settings, rng, state.sigma)
    state.train_scale = train_scale(settings)
    on_start()
    return fit_settings(net, X, Y, settings, rng=rng, callback=lambda e, loss, dt: on_epoch(e, loss, dt, X.shape[0]),
                        checkpoint=checkpoint)


def preview(net, img, settings, state, crop=96):
    """A quick frame: the centre crop upscaled by the training scale."""
    h, w = img.shape[:2]
    y0, x0 = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    part = img[y0:y0 + crop, x0:x0 + crop]
    S = settings.scale
    size = (round(part.shape[0] * S), round(part.shape[1] * S))
    return upscale_image(net, part, size, settings, state, ensemble=False)


def score(net, img, settings, state, on_progress=None):
    """PSNR (dB) of rebuilding the image from its own 1/S shrink."""
    from .metrics import psnr_rgb
    S = settings.scale
    small = np.clip(imresize(img, 1.0 / S), 0, 1)
    up = upscale_image(net, small, img.shape[:2], settings, state, ensemble=False,
                       on_progress=_labelled(on_progress, "self-test"))
    return psnr_rgb(up, img)


def _labelled(on_progress, label):
    return None if on_progress is None else lambda what, done, total: on_progress(f"{label}: {what}", done, total)


def upscale(net, size, settings, state, image, bits=None, on_progress=None):
    out = upscale_image(net, image, size, settings, state, on_progress=on_progress)
    if bits is None:
        return out
    from .imaging import to_uint
    return to_uint(out, bits)


def describe(settings, state):
    return {"score": f"x{settings.scale:g} self-test",
            "score_detail": f"self-test: the image rebuilt from its own 1/{settings.scale:g} shrink",
            "learned": state.to_dict()}


def loss_psnr(loss, settings, state):
    """The loss is in units of sigma."""
    return 10 * math.log10(1.0 / max(loss * state.sigma * state.sigma, 1e-20))
