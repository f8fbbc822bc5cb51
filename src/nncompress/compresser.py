"""The Compresser: image -> table -> network -> image, in any mode.

The mode (``modes.py``: ``coords.py``, ``patch.py``) says how an image
becomes training data and how the network makes an image again; the
Compresser owns what every mode shares: the network, the settings the user
chose, the state training learned, the training record, frames on a
schedule, the memory check, and the model file. It never branches on the
mode's name.

Progress, frames and Ctrl-C are the caller's: ``train`` reports through
callbacks and never touches the terminal.
"""

import os
import warnings

import numpy as np

from . import checkpoint as checkpoints, imaging
from .checkpoint import Checkpoint
from .errors import ModelFileError, SpecError
from .modes import MODES, get_mode
from .network import Network
from .spec import Settings, make_settings


def frame_epochs(epochs, frames):
    """Epochs after which to grab a frame: quadratic spacing, dense at the
    start where the picture changes most; 0 is the untrained network."""
    if frames <= 0:
        return []
    if frames == 1:
        return [epochs]
    ks = np.arange(frames) / (frames - 1)
    return sorted(set(int(round(epochs * k * k)) for k in ks))


MEMORY_SHARE = 0.8  # an output may take up to this share of the memory free when it starts


def check_memory(need, h, w, force, error):
    """Raise ``error`` (before any work) when an h x w output that needs
    ``need`` bytes would take more than MEMORY_SHARE of the free memory."""
    avail = available_memory()
    if not force and avail and need > MEMORY_SHARE * avail:
        raise error(f"a {w}x{h} output needs about {need / 2**30:.1f} GiB, more than the "
                    f"{MEMORY_SHARE * avail / 2**30:.1f} GiB it may use ({MEMORY_SHARE:.0%} of the "
                    f"{avail / 2**30:.1f} GiB free); choose a smaller size or pass --force")


def available_memory():
    """Bytes of memory free for new work, or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def output_size(h0, w0, scale=None, width=None, height=None):
    """(h, w) of the output: ``scale`` x the input, or ``width``/``height``
    (one alone keeps the aspect ratio)."""
    if width or height:
        if width and height:
            return int(height), int(width)
        if width:
            return max(1, round(h0 * width / w0)), int(width)
        return int(height), max(1, round(w0 * height / h0))
    return max(1, round(h0 * scale)), max(1, round(w0 * scale))


class Compresser:
    def __init__(self, net: Network, meta: dict, settings: Settings, state, source=None):
        self.net = net
        self.meta = meta          # mode, source size/bits, training record (epochs, train_seconds, loss, psnr)
        self.settings = settings  # what the user chose
        self.state = state        # what training learned besides the weights (the mode's State)
        self.source = source      # the training image (H, W, C) float32, kept when the mode upscales images
        self.checkpoint = Checkpoint(epoch=meta.get("epochs", 0))  # where training stands, to go on exactly

    @property
    def mode(self) -> str:
        return self.meta["mode"]

    @property
    def impl(self):
        """The mode's module."""
        return get_mode(self.mode)

    # ---------------------------------------------------------------- build
    @classmethod
    def for_image(cls, img, bits, settings: Settings, name="image"):
        h, w, c = img.shape
        impl = get_mode(settings.mode)
        if impl.TAKES_IMAGE:  # an upscaler: the colour under transparent pixels filled, so no dark fringe
            img = imaging.fill_transparent(img)
        net = impl.network(settings, c)
        meta = {"mode": settings.mode, "source": {"name": name, "height": h, "width": w, "channels": c, "bits": bits},
                "epochs": 0, "train_seconds": 0.0, "loss": None, "psnr": None}
        return cls(net, meta, settings, impl.State(), img if impl.TAKES_IMAGE else None), img

    # ---------------------------------------------------------------- train
    def train(self, img, settings: Settings, on_epoch=None, on_frame=None, on_progress=None, score=True):
        """Fit the network to ``img`` up to ``settings.epochs`` epochs in all,
        going on from ``self.checkpoint`` (exactly, when it holds optimizer
        state). ``on_epoch(done, total, loss, seconds, samples)`` may return
        True to stop; ``on_frame(epoch, render)`` on the frame schedule, where
        ``render()`` makes the preview (so the caller can time it apart);
        ``on_progress(what, done, total)`` reports slow phases; ``score``:
        also measure meta["psnr"]. Returns the training History."""
        frames = set(frame_epochs(settings.epochs, settings.frames))
        ck = self.checkpoint
        start = ck.epoch

        def on_start():
            if on_frame and 0 in frames and start == 0:
                on_frame(0, lambda: self.preview(img))

        def epoch_done(e, loss, dt, samples):
            self.meta["epochs"] = e + 1
            self.meta["loss"] = float(loss)
            self.meta["train_seconds"] += dt
            # the epoch's record first, then its frame: Ctrl-C while a frame renders (the slow part) then
            # leaves the saved epoch recorded, not a history one epoch short of the model
            stop = bool(on_epoch and on_epoch(e + 1, settings.epochs, loss, dt, samples))
            if on_frame and e + 1 in frames:
                on_frame(e + 1, lambda: self.preview(img))
            return stop

        if self.settings.lr != settings.lr and start:  # a resume at another rate: info says what ran before
            self.meta.setdefault("earlier_lr", []).append([start, self.settings.lr])
        self.settings = settings
        history = self.impl.train(self.net, img, settings, self.state, checkpoint=ck, on_start=on_start,
                                  on_epoch=epoch_done, on_progress=on_progress)
        if ck.epoch < self.meta["epochs"]:  # early stopping went back to an earlier epoch: its loss
            kept = ck.epoch - start - 1
            self.meta["loss"] = float(history.loss[kept]) if 0 <= kept < len(history.loss) else None
        self.meta["epochs"] = ck.epoch
        if score:
            self.meta["psnr"] = self.score(img)
        return history

    def score(self, img, on_progress=None):
        """PSNR (dB) of the mode's own test on ``img``: the recreation
        (coords), or rebuilding ``img`` from its own 1/S shrink (patch)."""
        return self.impl.score(self.net, img, self.settings, self.state, on_progress=on_progress)

    def preview(self, img):
        """What the network makes of ``img`` now, for frames."""
        return self.impl.preview(self.net, img, self.settings, self.state)

    def describe(self) -> dict:
        return self.impl.describe(self.settings, self.state)

    # --------------------------------------------------------------- output
    def output_size(self, scale=None, width=None, height=None, image=None):
        src = self.meta["source"]
        h0, w0 = (image.shape[:2] if image is not None else (src["height"], src["width"]))
        return output_size(h0, w0, scale, width, height)

    def check_output_size(self, h, w, force=False):
        """Refuse, before any work, an output that cannot fit in memory."""
        check_memory(h * w * self.meta["source"]["channels"] * self.impl.OUTPUT_BYTES_PER_VALUE, h, w, force, SpecError)

    def upscale(self, h, w, image=None, bits=None, on_progress=None):
        """The source (or ``image``, for modes that take one) at h x w;
        ``on_progress(what, done, total)`` as the work goes."""
        return self.impl.upscale(self.net, (h, w), self.settings, self.state,
                                 self.source if image is None else image, bits, on_progress=on_progress)

    # ------------------------------------------------------------ save/load
    def save(self, path, checkpoint=True):
        """The model file, and beside it the checkpoint that continues its
        training exactly (``checkpoint.path_for(path)``), both atomic. The
        weights saved are the checkpoint's: a whole number of epochs."""
        extras = {}
        if self.source is not None:
            extras["source"] = imaging.to_uint(self.source, self.meta["source"]["bits"])
        ck = self.checkpoint
        if ck.params is not None and ck.params.shape == self.net.params.shape:
            self.net.params[...] = ck.params
        self.meta["epochs"] = ck.epoch
        meta = {**self.meta, "settings": self.settings.to_dict(), "state": self.state.to_dict()}
        if checkpoint and ck.resumable:  # first: a kill between the writes leaves a checkpoint that no longer matches, and says so
            checkpoints.save(checkpoints.path_for(path), ck, self.net.params)
        self.net.save(path, meta=meta, extras=extras)

    @classmethod
    def load(cls, path, resume=False, loaded=None):
        """The model at ``path`` (``loaded``: what ``Network.load(path)``
        already returned); with ``resume``, also its checkpoint (a warning,
        and training goes on with fresh optimizer state, when it is missing
        or does not match)."""
        net, meta, extras = loaded or Network.load(path)
        name = os.path.basename(path)
        if meta.get("mode") not in MODES or "source" not in meta or not isinstance(meta.get("settings"), dict):
            if meta.get("kind") == "prior":  # made by nncompress pretrain: a start for images, not a model of one
                raise ModelFileError(f"'{name}' is a prior (nncompress pretrain), not a model of one image; upscale "
                                     f"images with it: nncompress upscale IMAGE --prior {path}")
            raise ModelFileError(f"'{name}' is a network file without nncompress image metadata")
        impl = get_mode(meta["mode"])
        if extras["format_version"] < 2 and impl.TAKES_IMAGE:
            raise ModelFileError(f"'{name}' is a patch model of format 1 (the 7x7 patch MLP), which this "
                                 f"nncompress no longer runs; train it again: nncompress train IMAGE --mode patch")
        settings = dict(meta.pop("settings"))
        settings.pop("patch_size", None)  # format 1: coords models saved patch mode's setting too
        state = meta.pop("state", None)
        if state is None:  # format 1 files before the state had its own key kept it in settings["extra"]
            state = settings.get("extra", {})
        settings.pop("extra", None)
        try:
            settings = make_settings(settings, check_files=False)  # the prior it started from may have moved
            state = impl.State.from_dict(state)
        except (SpecError, ValueError, TypeError) as e:
            raise ModelFileError(f"'{name}' has invalid settings: {e}") from None
        source = None
        if impl.TAKES_IMAGE:
            src = extras.get("source")
            if src is None or src.ndim != 3:
                raise ModelFileError(f"'{name}' is a {meta['mode']} model without its source image")
            # (a model saved before round 10 holds the colour under transparent pixels unfilled)
            source = imaging.fill_transparent(src.astype(np.float32) / (65535 if src.dtype == np.uint16 else 255))
        comp = cls(net, meta, settings, state, source)
        comp.checkpoint.epoch = int(meta.get("epochs", 0))
        if resume:
            side = checkpoints.path_for(path)
            try:
                ck = checkpoints.load(side, net.params)
                if ck is None and comp.checkpoint.epoch:
                    raise ModelFileError(f"no checkpoint '{os.path.basename(side)}' beside the model")
            except ModelFileError as e:
                warnings.warn(f"{e}: training goes on with fresh optimizer state, so its first epochs "
                              f"may lose ground", stacklevel=2)
                ck = None
            if ck is not None:
                ck.epoch = comp.checkpoint.epoch  # the model's record; the weights are the same (checksum)
                comp.checkpoint = ck
        return comp

    def bits_per_pixel(self, path=None):
        """Model size per source pixel: of the file, and of the weights alone."""
        src = self.meta["source"]
        pixels = src["height"] * src["width"]
        weights = self.net.n_params * 32 / pixels
        file = os.path.getsize(path) * 8 / pixels if path else None
        return file, weights
