"""Internal learning with a convolutional network (after ZSSR, Shocher et
al. 2018): the image teaches itself how to go up one scale.

    pairs     for the image and shrunk copies of it (HR), the bicubic upscale
              of shrink(HR, 1/S) is the input and HR - base the target residual
    training  random crops of the pairs, each in one of the 8 rotations and
              flips, Adam with cosine decay of the rate
    inference the base upscale of the image plus alpha x the predicted
              residual, averaged over the 8 rotations and flips (geometric
              self-ensemble), in tiles (bounded memory), then back-projected
              onto the image

Arrays are one channel (H, W) float64 in [0, 1]; the network sees them as
(B, h, w, 1) float32, normalised by ``Norm`` (the image's mean and spread).
"""

import math
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from threadpoolctl import threadpool_limits

from .conv import predict_image, upsampling
from .layers import Conv2D
from .losses import get_residual_loss
from .optimizers import get_optimizer
from .resize import imresize

PAIR_SCALES = (1.0, 0.85, 0.7, 0.55)  # HR copies to learn from: the image and shrunk versions
IBP_ITERATIONS = 10                    # back-projection steps after each stage


@dataclass
class Norm:
    """Network input = (base - mean) / spread; target = residual / spread."""
    mean: float
    spread: float


# ------------------------------------------------------------------ geometry

def dihedral(a, t):
    """The t-th of the 8 rotations/flips of the first two axes of ``a``."""
    if t >= 4:
        a = a.swapaxes(0, 1)
    return np.rot90(a, t % 4)


def undihedral(a, t):
    """Inverse of ``dihedral(a, t)``."""
    a = np.rot90(a, -(t % 4))
    return a.swapaxes(0, 1) if t >= 4 else a


# ------------------------------------------------------------- base upscale

def base_upscale(lr, size):
    """What the network refines: MATLAB-style bicubic. (Bicubic plus
    back-projection as the base measured no better: camera x2, 400 steps,
    +1.15 dB over bicubic against +1.22 with plain bicubic; the back-projection
    comes once, at the end.)"""
    return imresize(lr, size=size)


def shrink_pair(hr, scale):
    """(hr, lr): ``hr`` and its 1/``scale`` shrink, on grids that line up,
    so that ``base_upscale(lr, hr.shape)`` puts each pixel back where it
    came from. A whole scale crops ``hr`` to a whole number of
    low-resolution pixels (as ``evaluate.degrade`` does); another shrinks
    to the nearest whole size, both ways then taking the same ratio. (A
    1/S shrink of a side that S does not divide has ceil(h/S) pixels, which
    reach past ``hr``'s edge: upscaled back to ``hr``'s size, its grid
    drifts by up to a low-resolution pixel across the image.)"""
    if float(scale).is_integer():
        S = int(scale)
        h, w = (n - n % S if n >= S else n for n in hr.shape[:2])  # (a side under S is too small to line up)
        hr = hr[:h, :w]
        return hr, imresize(hr, 1.0 / S)
    size = (max(1, round(hr.shape[0] / scale)), max(1, round(hr.shape[1] / scale)))
    return hr, imresize(hr, size=size)


def back_project(up, lr, iterations=IBP_ITERATIONS):
    """Iterative back-projection (Irani & Peleg 1991): repeat
    up += bicubic(lr - shrink(up)), after which shrinking ``up`` gives
    (nearly) ``lr`` again."""
    for _ in range(iterations):
        up = up + imresize(lr - imresize(up, size=lr.shape), size=up.shape)
    return up


# -------------------------------------------------------------------- pairs

def detailed_window(img, side):
    """The side x side window of ``img`` (H, W, ...) with the most gradient
    energy, on a grid of half-window steps; the image itself if smaller."""
    h, w = img.shape[:2]
    if h <= side and w <= side:
        return img
    gray = img[..., :min(3, img.shape[2])].mean(axis=2) if img.ndim == 3 else img
    energy = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1]
    sat = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # summed-area table
    sh, sw = min(side, h - 1), min(side, w - 1)
    best, at = -1.0, (0, 0)
    for y in sorted(set(list(range(0, h - 1 - sh + 1, max(1, sh // 2))) + [h - 1 - sh])):
        for x in sorted(set(list(range(0, w - 1 - sw + 1, max(1, sw // 2))) + [w - 1 - sw])):
            e = sat[y + sh, x + sw] - sat[y, x + sw] - sat[y + sh, x] + sat[y, x]
            if e > best:
                best, at = e, (y, x)
    y, x = at
    return np.ascontiguousarray(img[y:y + min(side, h), x:x + min(side, w)])


def training_pairs(ch, scale, min_side, lowres=False):
    """[(input, residual)] from ``ch`` and its shrunk copies whose
    low-resolution side is still at least ``min_side``: the input is the
    base upscale of the copy's 1/scale shrink, (h, w) like the residual,
    or for a network in low-resolution space (``lowres``, a whole scale)
    the shrink itself, (h/scale, w/scale)."""
    out = []
    for f in PAIR_SCALES:
        hr = ch if f == 1.0 else imresize(ch, f)
        if min(hr.shape) < 4:
            continue
        hr, lr = shrink_pair(hr, scale)  # lowres: a whole scale, so a whole number of low-resolution pixels
        if min(hr.shape) / scale < min_side:
            continue
        base = base_upscale(lr, hr.shape)
        out.append((lr if lowres else base, hr - base))
    return out


class CropSampler:
    """Random crops of random pairs (chosen in proportion to their area),
    each in a random rotation/flip: batches X (n, c/f, c/f, 1) and T
    (n, c, c, 1) float32, where f is how much smaller the pairs' inputs
    are than their residuals (1, or the scale for a network in
    low-resolution space)."""

    def __init__(self, pairs, crop, norm: Norm, rng):
        self.f = pairs[0][1].shape[0] // pairs[0][0].shape[0]
        self.crop = min([crop] + [min(r.shape) for _, r in pairs]) // self.f * self.f
        self.pairs = [(((b - norm.mean) / norm.spread).astype(np.float32), (r / norm.spread).astype(np.float32))
                      for b, r in pairs]
        areas = np.array([r.size for _, r in pairs], np.float64)
        self.p = areas / areas.sum()
        self.rng = rng

    def batch(self, n):
        c, f, rng = self.crop, self.f, self.rng
        cx = c // f
        X = np.empty((n, cx, cx, 1), np.float32)
        T = np.empty((n, c, c, 1), np.float32)
        for i in range(n):
            b, r = self.pairs[rng.choice(len(self.pairs), p=self.p)]
            y, x = rng.integers(0, b.shape[0] - cx + 1), rng.integers(0, b.shape[1] - cx + 1)
            t = int(rng.integers(8))
            X[i, ..., 0] = dihedral(b[y:y + cx, x:x + cx], t)
            T[i, ..., 0] = dihedral(r[y * f:y * f + c, x * f:x * f + c], t)
        return X, T


def holdout(channels, share=0.2):
    """(rests, strips): each of ``channels`` (H, W) cut the same way, into
    the strip of ``share`` of its width or height along one edge, the edge
    strip with the most detail (gradient energy, summed over the channels),
    and the rest, which stays one rectangle."""
    h, w = channels[0].shape
    dh, dw = max(1, round(h * share)), max(1, round(w * share))
    energy = {k: 0.0 for k in ("top", "bottom", "left", "right")}
    for ch in channels:
        gy, gx = np.abs(np.diff(ch, axis=0)), np.abs(np.diff(ch, axis=1))
        energy["top"] += (gy[:dh - 1].sum() + gx[:dh].sum()) / (dh * w)
        energy["bottom"] += (gy[h - dh:].sum() + gx[h - dh:].sum()) / (dh * w)
        energy["left"] += (gx[:, :dw - 1].sum() + gy[:, :dw].sum()) / (h * dw)
        energy["right"] += (gx[:, w - dw:].sum() + gy[:, w - dw:].sum()) / (h * dw)
    cut = {"top": (np.s_[dh:], np.s_[:dh]), "bottom": (np.s_[:h - dh], np.s_[h - dh:]),
           "left": (np.s_[:, dw:], np.s_[:, :dw]), "right": (np.s_[:, :w - dw], np.s_[:, w - dw:])}
    rest, strip = cut[max(energy, key=energy.get)]
    return ([np.ascontiguousarray(c[rest]) for c in channels], [np.ascontiguousarray(c[strip]) for c in channels])


def holdout_pairs(strips, scale):
    """[(shrink, strip)]: each of ``strips`` cut to a whole number of
    low-resolution pixels, and its 1/scale shrink."""
    return [(lr, hr) for hr, lr in (shrink_pair(s, int(scale)) for s in strips)]


def holdout_error(net, pairs, norm):
    """Squared error of rebuilding each strip of ``pairs`` (``holdout_pairs``)
    from its shrink (one pass, no back-projection), a border of 2 x scale
    left out (where the strip's cut edge, not the network, decides)."""
    total = 0.0
    for lr, hr in pairs:
        up = refine(net, lr, hr.shape, norm, ensemble=False)
        b = 2 * (hr.shape[0] // lr.shape[0])
        total += float(np.sum((up - hr)[b:-b, b:-b] ** 2))
    return total


# ----------------------------------------------------------------- training

def train(net, sampler, stop, batch, lr, start=0, total=None, optimizer=None, on_step=None, loss="mse"):
    """Adam on the ``loss`` (mse or l1) of the predicted residual, the rate
    decaying as a cosine from ``lr`` to 0 over ``total`` steps (default
    ``stop``). Steps [start, stop) are taken, so a run can go on in pieces
    with the same ``optimizer``. ``on_step(i, loss, seconds)`` after each
    step may return True to stop. Returns the optimizer (its state is the
    run's)."""
    first = next(l for l in net.layers if isinstance(l, Conv2D))
    first.input_grad = False  # nothing upstream to feed
    opt = optimizer or get_optimizer("adam", lr)
    if getattr(opt, "m", None) is None:
        opt.init_state(net.n_params, net.dtype)
    total = total or stop
    # One BLAS thread: the weight gradient's small GEMM gains little from two, and
    # OpenBLAS's spinning worker then starves numba's second thread (2 cores:
    # 204 ms a step with both pools at 2 threads, 126 ms with BLAS at 1)
    with threadpool_limits(1, user_api="blas"):
        _steps(net, sampler, start, stop, batch, lr, total, opt, on_step, get_residual_loss(loss))
    return opt


def train_epoch(net, sampler, epoch, steps, batch, lr, total, opt, loss="mse", tick=None):
    """Steps [epoch*steps, (epoch+1)*steps) of a run of ``total``; the mean
    loss. ``tick(done, steps)`` after each step (a progress display)."""
    losses = []

    def step(i, value, dt):
        losses.append(value)
        if tick:
            tick(len(losses), steps)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run: its loss says so (run_epochs handles it)
        train(net, sampler, (epoch + 1) * steps, batch, lr, start=epoch * steps, total=total, optimizer=opt,
              on_step=step, loss=loss)
    return float(np.mean(losses))


def zero_last(net):
    """Start the last weight layer at zero: the network's first answer is
    no residual, the base upscale itself, instead of noise."""
    for p in [l for l in net.layers if l.has_weights][-1].params.values():
        p[...] = 0
    return net


def _steps(net, sampler, start, stop, batch, lr, total, opt, on_step, loss_fn):
    for i in range(start, stop):
        t0 = time.perf_counter()
        X, T = sampler.batch(batch)
        loss, dP = loss_fn(net.forward(X), T)
        net.backward(dP.astype(np.float32, copy=False))
        opt.step(net.params, net.grads, 0.5 * lr * (1 + math.cos(math.pi * i / total)))
        if on_step and on_step(i, loss, time.perf_counter() - t0):
            break


# ---------------------------------------------------------------- inference

def residual(net, src, norm: Norm, ensemble=True, tick=None):
    """The network's residual for ``src`` (H, W): the base upscale for a
    network in high-resolution space, the low-resolution image itself for
    one that ends in a pixel shuffle (then the residual is f times larger
    on each side); averaged over the 8 rotations/flips when ``ensemble``;
    ``tick()`` after each pass."""
    X = ((src - norm.mean) / norm.spread).astype(np.float32)
    ts = range(8) if ensemble else (0,)
    f = upsampling(net)
    out = np.zeros((src.shape[0] * f, src.shape[1] * f), np.float64)
    for t in ts:
        out += undihedral(predict_image(net, np.ascontiguousarray(dihedral(X, t))[..., None])[..., 0], t)
        if tick:
            tick()
    return out * (norm.spread / len(ts))


def refine(net, lr, size, norm, alpha=1.0, ensemble=True, tick=None):
    """``lr`` (h, w) up to ``size``: the base upscale plus alpha x the
    network's residual. A network that upscales by f (a last pixel shuffle)
    goes to f times ``lr`` and the result is resized to ``size`` when that
    differs (x3 or x2 from an x4 network, a stage of x2.8 on the way to x8,
    or a --width a few pixels past x4)."""
    if not alpha:
        return base_upscale(lr, size)
    return _with_residual(lr, *_base_and_residual(net, lr, size, norm, ensemble, tick), alpha, size)


def _base_and_residual(net, lr, size, norm, ensemble=True, tick=None):
    """The base upscale at the network's output size (``size``, or f times
    ``lr`` for a network that upscales by f) and its residual there."""
    f = upsampling(net)
    base = base_upscale(lr, tuple(size) if f == 1 else (lr.shape[0] * f, lr.shape[1] * f))
    return base, residual(net, base if f == 1 else lr, norm, ensemble, tick)


def _with_residual(lr, base, res, alpha, size):
    """base + alpha x res, resized to ``size`` when the network's output
    size differs (shrunk, or stretched by < LOWRES_SLACK); alpha 0: the
    base upscale of ``lr`` straight to ``size``."""
    if not alpha:
        return base_upscale(lr, size)
    up = base + alpha * res
    return up if up.shape == tuple(size) else imresize(up, size=size)


def stage_sizes(shape, size, step, slack=1.0):
    """Sizes passed through from ``shape`` to ``size``: whole steps of
    ``step`` (the scale the network learned) while more is left than one
    pass takes (``step`` x ``slack``), then the rest in one (x2.5 with an
    x2 network: x2, then x1.25). A whole step keeps every stage on a grid
    of whole multiples of the input, so a fractional scale can be made in
    tiles (``upscaler.tile_plan``); a step that is not whole (x3 learned as
    two of 1.73) goes to the nearest eighth of the input (7/4,
    ``stage_ratio``). Measured at x2.5 on the six photos with the x2 prior:
    +2.32 dB over bicubic against +2.33 for two equal steps of 1.58 (five
    photos up 0.01-0.16, brick down 0.40)."""
    ratio = max(size[0] / shape[0], size[1] / shape[1])
    out, k = [], 1
    # 2% past one pass is still one pass: a size rounded to whole pixels (67 -> 100 at x1.5) or a little over
    # the network's scale (x2.0156) is not a near-identity stage more, which would add the residual twice.
    # The test is on the ratio alone, the same for every tile of an image (the tile's own shape would not be)
    while ratio / step ** (k - 1) > step * slack * ONE_PASS_EXTRA:
        r = stage_ratio(step, k)
        out.append((round(shape[0] * r), round(shape[1] * r)))
        k += 1
    return [s for s in out if s[0] < size[0] or s[1] < size[1]] + [tuple(size)]


# In-between stages sit at multiples of 1/STAGE_EIGHTHS of the input: a network learned at x1.73 (x3 in two
# equal steps) goes to 7/4 of the input first, so a tile whose edges are multiples of 4 maps onto that stage
# exactly, and an image whose sides are can be made in tiles. A whole step (x2, x4) is unchanged.
STAGE_EIGHTHS = 8


def stage_ratio(step, k):
    """The ratio of the k-th in-between stage to the input: ``step`` ** k
    to the nearest 1/8 (x2.5 in steps of 1.58: 13/8; x3 in 1.73: 7/4)."""
    return Fraction(round(step ** k * STAGE_EIGHTHS), STAGE_EIGHTHS)


def stage_grid(shape, size, step, slack=1.0):
    """The multiple of input pixels on which tiles of an (h, w) = ``shape``
    upscale to ``size`` line up with every in-between stage (1 when they
    are whole multiples), or None when a stage is not an exact multiple of
    ``shape`` (a side that is not a multiple of the stage's denominator,
    e.g. 7/4 of 1001 rows); the final size's own grid is ``tile_plan``'s."""
    grid = 1
    for k, (h, w) in enumerate(stage_sizes(shape, size, step, slack)[:-1], 1):
        r = stage_ratio(step, k)
        if h != shape[0] * r or w != shape[1] * r:
            return None
        grid = math.lcm(grid, r.denominator)
    return grid


LOWRES_SLACK = 1.05  # a network that upscales by f takes up to 1.05 f in one pass (then a small resize)
ONE_PASS_EXTRA = 1.02  # and 2% past that is still one pass (a size rounded to whole pixels)


def stages(net, shape, size, step):
    """``stage_sizes`` for ``net``: one that ends in a pixel shuffle goes
    to a size a few percent past its scale in one pass, not two."""
    return stage_sizes(shape, size, step, LOWRES_SLACK if upsampling(net) > 1 else 1.0)


def stages_grid(net, shape, size, step):
    """``stage_grid`` for ``net``'s stages (``stages``)."""
    return stage_grid(shape, size, step, LOWRES_SLACK if upsampling(net) > 1 else 1.0)


def pass_flops(net, shape, size, step):
    """Multiply-adds x 2 of one pass of ``net`` through every stage of an
    upscale from ``shape`` to ``size`` (what one more self-ensemble pass
    costs): the network runs on each stage's input when it ends in a pixel
    shuffle, else on each stage's output."""
    per_px = sum(2 * l.kernel ** 2 * l.in_channels * l.channels // l.groups for l in net.layers if isinstance(l, Conv2D))
    sizes = [tuple(shape)] + stages(net, shape, size, step)
    ran = sizes[:-1] if upsampling(net) > 1 else sizes[1:]
    return per_px * sum(h * w for h, w in ran)


def upscale(net, ch, size, norm, alpha, step, ensemble=True, on_progress=None):
    """One channel up to ``size`` in stages of at most ``step``: each the
    base upscale plus alpha x the learned residual, back-projected onto
    ``ch`` (so every stage stays consistent with the input: round 1
    measured +0.3 dB for this over back-projecting only at the end).
    ``on_progress(what, done, total)`` hears of each stage's passes."""
    cur = ch
    plan = stages(net, ch.shape, size, step)
    for i, stage in enumerate(plan):
        passes = 1 + ((8 if ensemble else 1) if alpha else 0)
        tick = _ticker(on_progress, f"upscaling stage {i + 1}/{len(plan)} to {stage[1]}x{stage[0]}", passes)
        cur = back_project(refine(net, cur, stage, norm, alpha, ensemble, tick), ch)
        tick()
    return cur


def upscale_per_gain(net, ch, size, norm, alphas, step):
    """``upscale(net, ch, size, norm, alpha, step, ensemble=False)`` for
    each detail gain in ``alphas``; the network runs once when the upscale
    is one stage (base + alpha x residual is linear in alpha)."""
    if len(stages(net, ch.shape, size, step)) > 1:
        return [upscale(net, ch, size, norm, a, step, ensemble=False) for a in alphas]
    base, res = _base_and_residual(net, ch, size, norm, ensemble=False)
    return [back_project(_with_residual(ch, base, res, a, size), ch) for a in alphas]


def _ticker(on_progress, what, total):
    """A tick() that reports one more of ``total`` units of ``what``."""
    done = [0]
    if on_progress:
        on_progress(what, 0, total)

    def tick():
        done[0] += 1
        if on_progress:
            on_progress(what, done[0], total)
    return tick
