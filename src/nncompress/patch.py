"""Patch mode: a convolutional network learns to upscale from many images
(a prior, ``prior.py``) and then from the image itself (internal learning,
after ZSSR, Shocher et al. 2018, and MZSR, Soh et al. 2020); the learning
is in ``internal.py``, this module is the mode.

    image -> Y of YCbCr (Cb, Cr back-projected bicubic, alpha bicubic)
          -> the network: the built-in prior's (or a fresh one, --prior none)
          -> how far to fine-tune, on the most detailed window:
             a prior that ends in shuffle:2 is fine-tuned on the image less
             a held-out strip, and the epoch that rebuilds the strip best
             from its own 1/2 shrink is kept (or none), for scales the
             strip checks (one pass, or whole x2 steps; not x2.5 or x3,
             which end in a part step); a network on the
             bicubic upscale (--prior none) is checked one scale down (the
             image shrunk by S rebuilt with the network as it is and with a
             probe fine-tuned on that copy, for each detail gain alpha);
             the x4 prior is used as trained
          -> fine-tuning on random crops of pairs from the image and its
             shrunk copies: the network sees the 1/S shrink itself (a prior
             in low-resolution space) or its bicubic upscale, and learns the
             residual the real pixels add to that upscale
          -> upscale: bicubic + alpha x learned residual, in one step of up
             to 1.07 S for a prior ending in shuffle:S (larger scales in
             whole steps of S, then the rest in one; a network on the
             bicubic upscale in equal steps of at most 2), each averaged
             over the 8 rotations/flips and back-projected onto the input

Textures that do not repeat across scales get a small alpha instead of
being over-sharpened, and fine-tuning never replaces a prior that rebuilt
the shrunk copy better. A prior used alone (fast, x4, x2.5 or x3, or
kept by the held-out strip) takes its alpha the same way, one network
pass for all of them (``prior_gain``).

Implements the mode interface in ``modes.py``.
"""

import math
from dataclasses import dataclass

import numpy as np

from . import internal
from .errors import ImageError
from .conv import upsampling
from .layers import Conv2D
from .modes import State as _State
from .resize import imresize

NAME = "patch"
TAKES_IMAGE = True
OUTPUT_BYTES_PER_VALUE = 32  # float64 resize passes over the output
OWN_SETTINGS = ("color", "preset", "steps", "crop", "prior", "ensemble")
SAMPLES = "crops"  # what its epochs' samples are, in progress lines

DEFAULTS = {
    "mode": "patch",
    "preset": "balanced",
    "prior": "builtin",
    "layers": "conv3:32:relu," * 5 + "conv3:out",  # --prior none's (balanced); a prior brings its own network
    "color": "luma",
    "lr": 0.001,
    "optimizer": "adam",
    "schedule": "cosine",
    "frames": 10,
    "scale": 2.0,
}

# Budgets (train + upscale of a 128x128 input at x4 on a 2-core CPU):
# fast <= 15 s, balanced <= 60 s, best <= 5 min. One step is one minibatch
# of ``batch_size`` random ``crop`` x ``crop`` crops. With a prior: fast
# takes it as it is, in one pass; balanced and best fine-tune it on the
# image (an x2 prior in low-resolution space: early-stopped on a held-out
# strip; the x4 prior is used as trained, see ``train``) and average the
# 8 rotations/flips. SCRATCH are the budgets for --prior none, where the
# network learns from nothing.
PRESETS = {
    "fast": {"epochs": 1, "steps": 0, "batch_size": 16, "crop": 48, "ensemble": 1},
    "balanced": {"epochs": 10, "steps": 20, "batch_size": 16, "crop": 48, "ensemble": 8},
    "best": {"epochs": 20, "steps": 20, "batch_size": 16, "crop": 48, "ensemble": 8},
}
_CONV32 = "conv3:32:relu,"
SCRATCH = {
    "fast": {"layers": _CONV32 * 3 + "conv3:out", "epochs": 6, "steps": 25, "batch_size": 8, "crop": 32},
    "balanced": {"layers": _CONV32 * 5 + "conv3:out", "epochs": 10, "steps": 40, "batch_size": 16, "crop": 40},
    "best": {"layers": _CONV32 * 7 + "conv3:out", "epochs": 20, "steps": 75, "batch_size": 16, "crop": 48},
}

ALPHA_GRID = np.arange(0, 1.51, 0.125)  # detail gains tried by self-validation
PROBE_SHARE = 1 / 3                     # the probe trains for this share of the run's steps
FINETUNE_LR = 0.25                      # fine-tuning a prior: this share of the learning rate
CALIBRATION_SIDE = 256                  # self-validation looks at the most detailed window this big
FINETUNE_MARGIN = 0.9                   # fine-tune only if it cuts the self-validation error by 10% (0.46 dB)
GAIN_MARGIN = 0.9                       # a prior used alone takes a detail gain other than 1 only if that cuts
                                        # the self-validation error by 10% (at x2 brick's error fell to 0.48 of
                                        # alpha 1's at 0.625, +1.23 dB; on 13 other photos the best gain was
                                        # within 2.5% of alpha 1, and taking it anyway cost rocket 0.52 dB)
ENSEMBLE_MAX_FLOP = 2.5e12              # self-ensemble only while its 8 passes cost at most this (~12 s here at ~200 GFLOP/s;
                                        # it adds ~0.1-0.3 dB at 8x the network's time): at x2 with the x2
                                        # prior, outputs up to ~1.3 MP; at x4 with the two-part x4 prior, inputs up
                                        # to ~0.86 MP
HOLDOUT = 0.2          # a prior in low-resolution space is fine-tuned on the image less an edge strip this
                       # share of it (its most detailed); after each epoch the strip is rebuilt from its own
HOLDOUT_MARGIN = 0.99  # shrink, and the epoch that did best (by 1%, 0.04 dB; or none) is kept
HOLDOUT_PATIENCE = 3   # epochs without a better one before fine-tuning stops (the best is kept)
HOLDOUT_MIN = 8        # strips narrower than this many low-resolution pixels cannot tell: the prior alone
MAX_STEP = 2.0  # largest scale learned in one step: x4 as two x2 steps
MIN_SIDE = 8    # smallest low-resolution side a training pair may have


@dataclass
class State(_State):
    mean: float | None = None         # network input = (base - mean) / spread
    spread: float | None = None
    alpha: float | None = None        # detail gain from self-validation (None: 1)
    train_scale: float | None = None  # the scale of one learned step
    finetune: float | None = None     # 1: fine-tuned on the image; 0: the prior alone measured better
    lowres: float | None = None       # 1: a prior in low-resolution space (a last pixel shuffle)
    kept_epoch: float | None = None   # its fine-tune, checked on a held-out strip: the epoch kept (0: none)


# How ``info`` names the learned state, and shows a value: 0/1 flags as no/yes, None as "-".
STATE_LABELS = {"mean": "input mean", "spread": "input spread", "alpha": "detail gain",
                "train_scale": "scale of one step", "finetune": "fine-tuned on the image",
                "lowres": "works in low resolution", "kept_epoch": "fine-tune epoch kept"}
FLAGS = ("finetune", "lowres")


def training_rate(settings):
    """The rate training runs at (``info`` says it): a prior fine-tunes at a quarter of --lr."""
    return _lr(settings)


# ------------------------------------------------------------------- colour

_RGB_TO_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def split_channels(img, color):
    """(H, W, C) -> (list of (H, W) channels to learn, list of (H, W)
    channels for the base upscale / bicubic, how to recombine)."""
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
    return [a[..., i].astype(np.float64) for i in range(a.shape[2])]


# ----------------------------------------------------------------- pieces

def train_scale(settings):
    """The scale the network learns: the target scale, or for large scales
    equal steps of at most MAX_STEP (x4 = two x2 steps)."""
    S = settings.scale
    return S if S <= MAX_STEP else S ** (1 / math.ceil(math.log(S) / math.log(MAX_STEP) - 1e-6))


def _norm(state):
    return internal.Norm(state.mean, state.spread)


def _sampler(channels, settings, step, norm, rng, lowres=False):
    pairs = [p for ch in channels for p in internal.training_pairs(ch, step, MIN_SIDE, lowres)]
    if not pairs:
        need = math.ceil(MIN_SIDE * step)
        raise ImageError(f"the image is too small for patch mode at x{step:g}; it needs at least "
                         f"{need} pixels on each side")
    return internal.CropSampler(pairs, settings.crop, norm, rng)


def upscale_image(net, img, size, settings, state, ensemble=True, on_progress=None):
    """(H, W, C) image -> (size[0], size[1], C) float32: learned channels
    through ``internal.upscale``, chroma the base upscale, alpha bicubic."""
    learned, rest, how = split_channels(img, settings.color)
    if size[0] <= img.shape[0] and size[1] <= img.shape[1]:  # shrinking: nothing to learn
        return merge_channels([imresize(c, size=size) for c in learned], [imresize(c, size=size) for c in rest], how)
    alpha = 1.0 if state.alpha is None else state.alpha
    up_learned = [internal.upscale(net, ch, size, _norm(state), alpha, state.train_scale, ensemble, on_progress)
                  for ch in learned]
    n_chroma = 2 if how == "ycc" else 0
    tick = internal._ticker(on_progress, f"colour at {size[1]}x{size[0]}", len(rest)) if rest else None
    up_rest = []
    for i, c in enumerate(rest):
        up = imresize(c, size=size)
        up_rest.append(internal.back_project(up, c) if i < n_chroma else up)
        tick()
    return merge_channels(up_learned, up_rest, how)


def _one_step_down(img, settings, state):
    """(lo, hi): the learned channels of the image's most detailed window of
    CALIBRATION_SIDE (hi; its cost does not grow with the image) and of
    that window shrunk by one learned step (lo)."""
    win, small = internal.shrink_pair(internal.detailed_window(img, CALIBRATION_SIDE), state.train_scale)
    return split_channels(np.clip(small, 0, 1), settings.color)[0], split_channels(win, settings.color)[0]


def _gain_errors(net, lo, hi, state):
    """Squared error, summed over the channels, of rebuilding ``hi`` from
    ``lo`` (one pass, no self-ensemble) at each detail gain in ALPHA_GRID."""
    err = np.zeros(len(ALPHA_GRID))
    for a, b in zip(lo, hi):
        ups = internal.upscale_per_gain(net, a, b.shape, _norm(state), ALPHA_GRID, state.train_scale)
        err += [float(np.sum((up - b) ** 2)) for up in ups]
    return err


def calibrate(net, img, settings, state, steps, on_progress=None):
    """Self-validation one step down, on the image's most detailed window
    of CALIBRATION_SIDE (its cost does not grow with the image). The window
    is shrunk by one learned step (x2 for x4 too: a 1/16 shrink loses fine
    textures altogether, and then measured brick at x4 4.8 dB below the
    prior alone), and the pipeline rebuilds it from that copy with each
    detail gain alpha in ALPHA_GRID: once with ``net`` as it starts (a
    prior; skipped for a fresh network, which knows nothing yet) and once
    after ``steps`` steps of learning from the shrunk copy. Fine-tuning is
    kept only when it beats the prior by FINETUNE_MARGIN. Returns (alpha,
    finetune). (1.0, True) when the image is too small to test."""
    lo, hi = _one_step_down(img, settings, state)
    try:
        sampler = _sampler(lo, settings, state.train_scale, _norm(state), np.random.default_rng(settings.seed))
    except ImageError:
        return 1.0, True

    def errors(label):
        if on_progress:
            on_progress(label, 0, 1)
        out = _gain_errors(net, lo, hi, state)
        if on_progress:
            on_progress(label, 1, 1)
        return out

    start = errors("calibrating: the prior alone") if settings.prior != "none" else None
    report = (lambda i, loss, dt: on_progress("calibrating: learning", i + 1, steps)) if on_progress else None
    internal.train(net, sampler, steps, settings.batch_size, _lr(settings), on_step=report)
    tuned = errors("calibrating detail gain")
    if start is not None and start.min() * FINETUNE_MARGIN <= tuned.min():
        return 1.0, False  # the prior as trained: a gain tuned on one window measured worse on whole photos
    return float(ALPHA_GRID[int(np.argmin(tuned))]), True


def prior_gain(net, img, settings, state):
    """The detail gain alpha for a prior used alone (not fine-tuned):
    self-validation one learned step down, as in ``calibrate``, on the
    image's most detailed window: its shrunk copy is rebuilt with each
    alpha in ALPHA_GRID (one pass of the network), and an alpha other than
    1 is taken only when it beats alpha 1 by GAIN_MARGIN. Fine textures
    the prior over-sharpens (a brick wall's mortar lines) get less of its
    detail; elsewhere the prior stays as trained. 1.0 when the window is
    too small to shrink."""
    lo, hi = _one_step_down(img, settings, state)
    if min(lo[0].shape) < MIN_SIDE:
        return 1.0
    err = _gain_errors(net, lo, hi, state)
    one, best = int(np.argmin(np.abs(ALPHA_GRID - 1))), int(np.argmin(err))
    return float(ALPHA_GRID[best]) if err[best] <= GAIN_MARGIN * err[one] else 1.0


FINETUNE_FRACTIONAL = False  # fine-tune a prior for a scale that is not whole steps of it (x3 with x2: no)


def _whole_steps(scale, step):
    """Whether the held-out strip's check (a fine-tune on whole steps of
    ``step``) covers ``scale``: one pass (up to x2.14 of an x2 network,
    shrunk below x2 too: at x1.5 the fine-tune measured +3.67 dB over
    bicubic against +3.56 for the prior alone, balanced, six photos), or
    whole steps (x4 of an x2 network); not x2.5 or x3, which end in a part step."""
    one = internal.LOWRES_SLACK * internal.ONE_PASS_EXTRA
    if scale <= step * one or step <= 1:  # (a network that does not upscale has no steps to count)
        return True
    k = round(math.log(scale) / math.log(step))
    return 1 / one <= scale / step ** k <= one


def not_fine_tuned(scale, step):
    """Why a prior in low-resolution space of scale ``step`` is used as
    trained at ``scale`` (None: it is fine-tuned, given an image large
    enough to hold out a strip), the rules ``train`` follows."""
    if step > MAX_STEP:
        return f"an x{step:g} prior is not fine-tuned: it would learn from the image shrunk {step * step:g} times"
    if not FINETUNE_FRACTIONAL and not _whole_steps(scale, step):
        return f"x{scale:g} ends in a part step of the x{step:g} prior, where a fine-tune is not checked"
    return None


def upscale_warning(settings, state, scale):
    """Why a trained model may do worse at ``scale`` than the image's own
    upscale would (None if nothing): fine-tuned for whole steps, used for a
    scale that ends in a part step."""
    if state.finetune and state.lowres and not _whole_steps(scale, state.train_scale):
        return (f"this model was fine-tuned for whole x{state.train_scale:g} steps; x{scale:g} ends in a part step, "
                f"where a fine-tune measured worse than the prior as trained (brick x3: 1.3 dB): for the image it "
                f"learned from, `nncompress upscale IMAGE -s {scale:g}` does better")
    return None


def _lr(settings):
    """The learning rate: lower when fine-tuning a prior, so the first
    steps do not undo what it learned from many images."""
    return settings.lr * (FINETUNE_LR if settings.prior != "none" else 1.0)


# ------------------------------------------------------------ mode interface

def settle(settings, chosen, flags):
    """A network given by the user (``--layers``) starts fresh: the built-in
    prior has a network of its own (a --prior in a config still wins; both
    as flags contradict each other). Without a prior, the preset's budget is
    SCRATCH's, under what the user chose."""
    from .errors import SpecError
    if "layers" in flags and flags.get("prior", "none") != "none":
        raise SpecError(f"--layers is the network to learn from nothing, but --prior {flags['prior']} brings its own: "
                        f"drop --layers, or use --prior none")
    if "layers" in chosen and "prior" not in chosen:
        settings.prior = "none"
    if settings.prior == "none":
        for k, v in SCRATCH[settings.preset].items():
            if k not in chosen:
                setattr(settings, k, v)


def check_layers(items, settings):
    """Conv items only (a last shuffle is refused by ``network``, with the
    reason): the network runs over whole images. Only with --prior none:
    a prior brings its own network, and the layers are then unused (models
    saved before this check may hold any)."""
    from .errors import SpecError
    if settings.prior != "none":
        return
    for i, it in enumerate(items):
        if "conv" not in it and "shuffle" not in it:
            raise SpecError(f"layer item {i + 1}: patch mode's network is convolutional, every item a conv item "
                            f"(e.g. conv3:32:relu,conv3:32:relu,conv3:out); dense layers are for coords mode")


def network(settings, channels):
    """One channel in, its residual out: the prior's network (``--prior``),
    or with ``--prior none`` a fresh one of ``settings.layers`` whose last
    layer starts at zero, so training starts from the base upscale instead
    of from noise."""
    from .spec import build_network
    from .errors import SpecError
    if settings.prior != "none":
        from . import prior
        return prior.load(settings.prior, settings.scale)[0]
    net = build_network(settings.layers, 1, 1, settings.seed)
    if not any(isinstance(l, Conv2D) for l in net.layers):
        raise SpecError("patch mode needs a convolutional network, e.g. --layers conv3:32:relu,conv3:32:relu,conv3:out")
    if upsampling(net) > 1:
        raise SpecError("patch mode learns from the photo in high-resolution space: drop the shuffle item "
                        "(a network that ends in one is trained with nncompress pretrain, then used with --prior)")
    internal.zero_last(net)
    return net


def train(net, img, settings, state, *, checkpoint, on_start, on_epoch, on_progress=None):
    """Learn the normalisation and the detail gain (once), then train
    epochs [checkpoint.epoch, settings.epochs) of settings.steps steps, the
    rate a cosine over all of them."""
    from .network import Network
    from .optimizers import get_optimizer
    from .training import run_epochs
    learned = split_channels(img, settings.color)[0]
    if state.mean is None:
        if settings.prior != "none":
            from .prior import NORM
            state.mean, state.spread = NORM.mean, NORM.spread
        else:
            allpix = np.concatenate([c.ravel() for c in learned])
            state.mean, state.spread = float(allpix.mean()), float(allpix.std() + 1e-3)
        state.lowres = 1.0 if upsampling(net) > 1 else None
        state.train_scale = float(upsampling(net)) if state.lowres else train_scale(settings)
    K, total = settings.steps, settings.epochs * settings.steps
    if K == 0:  # the prior alone
        if settings.prior == "none":
            from .errors import SpecError
            raise SpecError("steps 0 (the prior alone) needs a prior: --prior builtin or --prior FILE")
        if state.finetune is None:  # (a resumed run keeps the gain it measured)
            state.alpha, state.finetune = prior_gain(net, img, settings, state), 0.0
    held = None
    # (an x2 prior in several stages is fine-tuned too: at x4 with --prior x2.npz, +0.41 dB on average over
    # its two stages alone, brick +2.31, none below -0.03; the held-out strip checks one x2 step)
    if state.lowres and state.finetune is None and not_fine_tuned(settings.scale, state.train_scale):
        # a x4 prior would learn from the image shrunk 16 times: measured brick 3.4 dB below the prior
        # alone (100 steps at 2.5e-5; 6.3 below at 2.5e-4), the other five photos within 0.1 dB.
        # The strip checks a fine-tune on whole steps: a scale such as x3 (x2, then x1.5) ends in a step it never
        # checked, and there the fine-tune cost brick 1.3 dB (x3 balanced, six photos: +2.07 dB over bicubic for
        # the prior alone against +1.85 fine-tuned)
        state.alpha, state.finetune = prior_gain(net, img, settings, state), 0.0
    elif state.lowres and state.finetune is None:
        # fine-tuned on the image less a held-out strip; the strip decides how far (see below)
        rest, strips = internal.holdout(learned, HOLDOUT)
        if min(strips[0].shape) < HOLDOUT_MIN * state.train_scale:  # too small to check a fine-tune on
            state.alpha, state.finetune = prior_gain(net, img, settings, state), 0.0
        else:
            state.alpha = 1.0
            learned, held = rest, strips
    if state.alpha is None and settings.prior != "none" and state.train_scale < settings.scale:
        # several stages (x4 as two x2): a fine-tune on the 1/S copy measured catastrophic on brick
        # (24.38 dB, 3.4 below bicubic and 8.2 below the prior alone) although self-validation chose it
        state.alpha, state.finetune = 1.0, 0.0
    if state.alpha is None:
        probe = Network.from_config(net.get_config())
        probe.params[...] = net.params
        state.alpha, tune = calibrate(probe, img, settings, state, max(1, round(total * PROBE_SHARE)), on_progress)
        state.finetune = float(tune)
    if state.finetune == 0 or state.kept_epoch is not None:
        # nothing to train: the prior alone measured best, or (resumed) a fine-tune checked on a held-out
        # strip is finished
        from .training import History
        on_start()
        return History()
    rng = np.random.default_rng(settings.seed)
    sampler = _sampler(learned, settings, state.train_scale, _norm(state), rng, lowres=bool(state.lowres))
    opt = get_optimizer(settings.optimizer, settings.lr)
    opt.init_state(net.n_params, net.dtype)
    on_start()

    def step_epoch(e):
        return internal.train_epoch(net, sampler, e, K, settings.batch_size, _lr(settings), total, opt)

    samples = K * settings.batch_size  # crops
    if held is None:
        return run_epochs(net, opt, rng, step_epoch, epochs=settings.epochs, checkpoint=checkpoint,
                          callback=lambda e, loss, dt: on_epoch(e, loss, dt, samples), lr=settings.lr)
    return _early_stopped(net, opt, rng, step_epoch, held, settings, state, checkpoint,
                          lambda e, loss, dt: on_epoch(e, loss, dt, samples),
                          gain=lambda: prior_gain(net, img, settings, state))


def _early_stopped(net, opt, rng, step_epoch, held, settings, state, checkpoint, on_epoch, gain):
    """``run_epochs`` that keeps the epoch whose network rebuilds the
    held-out strips best from their shrinks (by HOLDOUT_MARGIN; epoch 0,
    the prior, if none does), and stops after HOLDOUT_PATIENCE epochs
    without a better one. The checkpoint goes back to that epoch, so the
    model saved is the one kept, and so it is on Ctrl-C and on a loss that
    diverges (which then ends the fine-tune, no error). The fine-tune is
    then finished: a resumed run trains no further. A prior kept alone
    takes its detail gain from ``gain()``, as it would with no fine-tune."""
    import copy
    from .training import History, TrainingDiverged, run_epochs
    pairs = internal.holdout_pairs(held, state.train_scale)
    error = lambda: internal.holdout_error(net, pairs, _norm(state))
    checkpoint.take(checkpoint.epoch, net.params, opt, rng)
    best = {"err": error(), "ck": copy.deepcopy(checkpoint)}
    seen = History()

    def after(e, loss, dt):
        seen.loss.append(loss)
        err = error()
        if err < best["err"] * HOLDOUT_MARGIN:
            best.update(err=err, ck=copy.deepcopy(checkpoint))  # run_epochs took epoch e + 1 just before
        return on_epoch(e, loss, dt) or e + 1 - best["ck"].epoch >= HOLDOUT_PATIENCE

    def keep_best():
        checkpoint.__dict__.update(copy.deepcopy(best["ck"].__dict__))
        net.params[...] = checkpoint.params
        state.kept_epoch = float(checkpoint.epoch)
        state.finetune = 1.0 if checkpoint.epoch else 0.0
        if not checkpoint.epoch:
            state.alpha = gain()

    try:
        run_epochs(net, opt, rng, step_epoch, epochs=settings.epochs, checkpoint=checkpoint, callback=after,
                   lr=settings.lr)
    except KeyboardInterrupt:
        keep_best()
        raise
    except TrainingDiverged:
        pass
    keep_best()
    return seen


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
    img, small = internal.shrink_pair(img, settings.scale)
    label = None if on_progress is None else (lambda what, done, n: on_progress(f"self-test: {what}", done, n))
    return psnr_rgb(upscale_image(net, np.clip(small, 0, 1), img.shape[:2], settings, state, ensemble=False,
                                  on_progress=label), img)


def ensemble_affordable(net, shape, size, settings, state):
    """Whether the 8-way self-ensemble of an upscale from ``shape`` to
    ``size`` stays within ENSEMBLE_MAX_FLOP (per learned channel)."""
    step = state.train_scale or train_scale(settings)
    return 8 * internal.pass_flops(net, shape, size, step) <= ENSEMBLE_MAX_FLOP


def upscale(net, size, settings, state, image, bits=None, on_progress=None):
    ensemble = settings.ensemble > 1 and ensemble_affordable(net, image.shape[:2], size, settings, state)
    out = upscale_image(net, image, size, settings, state, ensemble=ensemble, on_progress=on_progress)
    if bits is None:
        return out
    from .imaging import to_uint
    return to_uint(out, bits)


def describe(settings, state):
    out = {"score": f"x{settings.scale:g} self-test",
           "score_detail": f"self-test: the image rebuilt from its own 1/{settings.scale:g} shrink",
           "learned": state.to_dict(),
           "start": ("the built-in prior" if settings.prior == "builtin" else
                     "nothing (learned from the image alone)" if settings.prior == "none" else settings.prior)}
    step = state.train_scale or settings.scale
    if state.kept_epoch is not None or state.finetune == 0:
        out["finished"] = True  # a fine-tune checked on a held-out strip, or the prior alone: --resume trains no further
    if state.kept_epoch:
        out["note"] = (f"fine-tuned: kept epoch {state.kept_epoch:.0f}, the one that rebuilt a held-out strip of "
                       f"the image best")
    elif state.finetune == 0:
        why = state.lowres and not_fine_tuned(settings.scale, step)
        out["note"] = ("the prior alone" if settings.steps == 0 else
                       "the prior alone (upscales in several stages are not fine-tuned)" if
                       not state.lowres and step < settings.scale else
                       f"the prior alone ({why})" if why else
                       "the prior alone (fine-tuning rebuilt a held-out strip of the image no better)"
                       if state.kept_epoch == 0 else
                       "the prior alone (the image is too small to hold out a strip to check a fine-tune on)"
                       if state.lowres else
                       "the prior alone (fine-tuning measured no better one scale down)")
    return out


def loss_psnr(loss, settings, state):
    """The loss is in units of spread squared."""
    return 10 * math.log10(1.0 / max(loss * state.spread * state.spread, 1e-20))
