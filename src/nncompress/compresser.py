"""The Compresser: image -> table -> network -> image.

* coords mode: each row maps a pixel centre (y, x) in [-1, 1] to its colour,
  so the trained network *is* the image, renderable at any size.
* patch mode (``patch.py``): each row maps a neighbourhood of a bicubic
  upscale to the detail it lacks, learned from the image itself.

Progress, frames and Ctrl-C are the caller's: ``train`` reports through
callbacks and never touches the terminal.
"""

import math
import os

import numpy as np

from . import imaging, patch
from .errors import ModelFileError, SpecError
from .metrics import psnr_rgb
from .network import Network
from .spec import Settings, format_items, network_config, parse_layers
from .training import fit


def frame_epochs(epochs, frames):
    """Epochs after which to grab a frame: quadratic spacing, dense at the
    start where the picture changes most; 0 is the untrained network."""
    if frames <= 0:
        return []
    if frames == 1:
        return [epochs]
    ks = np.arange(frames) / (frames - 1)
    return sorted(set(int(round(epochs * k * k)) for k in ks))


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


def _fit(net, X, Y, settings, **kw):
    """``fit`` with a run's training settings."""
    return fit(net, X, Y, epochs=settings.epochs, batch_size=settings.batch_size, loss=settings.loss,
               optimizer=settings.optimizer, lr=settings.lr, schedule=settings.schedule, **kw)


class Compresser:
    def __init__(self, net: Network, meta: dict, source=None):
        self.net = net
        self.meta = meta          # mode, source size/bits, settings, training record
        self.source = source      # patch mode keeps its source image (H, W, C) float32

    @property
    def mode(self):
        return self.meta["mode"]

    # ---------------------------------------------------------------- build
    @classmethod
    def for_image(cls, img, bits, settings: Settings, name="image"):
        h, w, c = img.shape
        items = parse_layers(settings.layers)
        if settings.mode == "coords":
            in_size, out_size = 2, c
        else:
            in_size, out_size = patch.input_size(settings), 1
        net = Network.from_config(network_config(items, in_size, out_size, settings.seed))
        meta = {"mode": settings.mode, "source": {"name": name, "height": h, "width": w, "channels": c, "bits": bits},
                "settings": {**vars(settings), "layers": format_items(items), "extra": {}},
                "epochs": 0, "train_seconds": 0.0, "loss": None, "psnr": None}
        return cls(net, meta, img if settings.mode == "patch" else None), img

    # ---------------------------------------------------------------- train
    def train(self, img, settings: Settings, on_epoch=None, on_frame=None):
        """Fit the network to ``img``. ``on_epoch(epoch, epochs, loss, seconds,
        samples)`` may return True to stop; ``on_frame(epoch, image)`` gets
        previews on the frame schedule. Returns the training History."""
        rng = np.random.default_rng(settings.seed)
        if self.mode == "coords":
            X, Y = imaging.image_to_table(img)
        else:
            extra = self.meta["settings"]["extra"]
            if "alpha" not in extra:
                probe = Network.from_config(self.net.get_config())
                extra["alpha"] = patch.calibrate(probe, img, settings, lambda net, X, Y: _fit(
                    net, X, Y, settings, rng=np.random.default_rng(settings.seed)))
            X, Y, extra["sigma"] = patch.training_table(img, settings, rng, extra.get("sigma"))
            extra["train_scale"] = patch.train_scale(settings)
        frames = set(frame_epochs(settings.epochs, settings.frames))
        start = self.meta["epochs"]
        if on_frame and 0 in frames and start == 0:
            on_frame(0, self.preview(img))

        def callback(e, loss, dt):
            done = e + 1 - start
            self.meta["epochs"] = e + 1
            self.meta["loss"] = float(loss)
            self.meta["train_seconds"] += dt
            if on_frame and done in frames:
                on_frame(e + 1, self.preview(img))
            return bool(on_epoch and on_epoch(done, settings.epochs, loss, dt, X.shape[0]))

        history = _fit(self.net, X, Y, settings, rng=rng, callback=callback,
                       start_epoch=start, total_epochs=start + settings.epochs)
        self.meta["psnr"] = self.score(img)
        return history

    def score(self, img):
        """PSNR (dB, all channels) of the network's recreation of ``img``
        (coords), or of rebuilding ``img`` from its own 1/S shrink (patch)."""
        if self.mode == "coords":
            return psnr_rgb(self.render(*img.shape[:2]), img)
        return patch.self_score(self.net, img, self.settings)

    def preview(self, img):
        """What the network makes of ``img`` now, for frames."""
        if self.mode == "coords":
            h, w = img.shape[:2]
            f = max(1, math.ceil(256 / max(h, w)))  # render tiny sources larger: that is the point
            return self.render(h * f, w * f)
        return patch.preview(self.net, img, self.settings)

    @property
    def settings(self) -> Settings:
        s = Settings()
        for k, v in self.meta["settings"].items():
            setattr(s, k, v)
        return s

    # --------------------------------------------------------------- output
    def render(self, h, w, bits=None):
        """coords: the image at any size, in tiles (bounded memory)."""
        return imaging.render(self.net.predict, h, w, self.net.out_size, bits=bits)

    def output_size(self, scale=None, width=None, height=None, image=None):
        src = self.meta["source"]
        h0, w0 = (image.shape[:2] if image is not None else (src["height"], src["width"]))
        if width or height:
            if width and height:
                return int(height), int(width)
            if width:
                return max(1, round(h0 * width / w0)), int(width)
            return int(height), max(1, round(w0 * height / h0))
        return max(1, round(h0 * scale)), max(1, round(w0 * scale))

    def check_output_size(self, h, w, force=False):
        """Refuse, before any work, an output that cannot fit in memory."""
        c = self.meta["source"]["channels"]
        # coords: uint8/16 tiles + the PNG encoder's copy; patch: float64 resize passes
        per_pixel = c * 3 if self.mode == "coords" else c * 8 * 4
        need, avail = h * w * per_pixel, available_memory()
        if not force and avail and need > 0.8 * avail:
            raise SpecError(f"a {w}x{h} output needs about {need / 2**30:.1f} GiB but only "
                            f"{avail / 2**30:.1f} GiB is free; choose a smaller size or pass --force")

    def upscale(self, h, w, image=None, bits=None):
        """The source (or ``image``, patch mode) at h x w."""
        if self.mode == "coords":
            return self.render(h, w, bits=bits)
        out = patch.upscale(self.net, self.source if image is None else image, (h, w), self.settings)
        return out if bits is None else imaging.to_uint(out, bits)

    # ------------------------------------------------------------ save/load
    def save(self, path):
        extras = {}
        if self.source is not None:
            extras["source"] = imaging.to_uint(self.source, self.meta["source"]["bits"])
        self.net.save(path, meta=self.meta, extras=extras)

    @classmethod
    def load(cls, path):
        net, meta, extras = Network.load(path)
        if meta.get("mode") not in ("coords", "patch") or "source" not in meta or "settings" not in meta:
            raise ModelFileError(f"'{os.path.basename(path)}' is a network file without nncompress image metadata")
        source = None
        if meta["mode"] == "patch":
            src = extras.get("source")
            if src is None or src.ndim != 3:
                raise ModelFileError(f"'{os.path.basename(path)}' is a patch model without its source image")
            source = src.astype(np.float32) / (65535 if src.dtype == np.uint16 else 255)
        return cls(net, meta, source)

    def bits_per_pixel(self, path=None):
        """Model size per source pixel: of the file, and of the weights alone."""
        src = self.meta["source"]
        pixels = src["height"] * src["width"]
        weights = self.net.n_params * 32 / pixels
        file = os.path.getsize(path) * 8 / pixels if path else None
        return file, weights
