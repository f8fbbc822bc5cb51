"""The standard super-resolution protocol: shrink each image by S with
MATLAB-style bicubic (quantised to 8 bits, as a saved low-resolution file
would be), upscale it back with each method, score PSNR and SSIM on Y with
S pixels shaved from each border."""

import os
import warnings
import time
from dataclasses import replace

import numpy as np
from PIL import Image

from . import imaging, internal
from .compresser import Compresser
from .errors import ImageError
from .metrics import psnr, ssim
from .registry import lookup
from .resize import imresize
from .spec import Settings

METHODS = ("patch", "prior", "coords", "bicubic", "lanczos", "nearest")


def degrade(hr, scale):
    """HR (cropped to a multiple of scale) and its 8-bit LR."""
    hr, lr = internal.shrink_pair(hr, scale)
    return hr, (np.round(np.clip(lr, 0, 1) * 255) / 255).astype(np.float32)


def _pillow(lr, size, method):
    pil = imaging.array_to_pil(lr)
    up = pil.resize((size[1], size[0]), method)
    return imaging.pil_to_array(up)[0]


# The learned methods, each a mode: trained with the run's settings (None),
# the run's settings changed by a function (prior: the built-in prior, or the
# run's, with no fine-tuning), or these (coords: a small Fourier-feature
# network, 40 epochs of 256-row batches: ~10 s on a 128x128 input, under a
# second on a 32x32 one, where so few epochs leave it noise).
LEARNED = {"patch": None,
           "prior": lambda s: replace(s, steps=0, prior="builtin" if s.prior == "none" else s.prior).validate(),
           "coords": dict(mode="coords", epochs=40, frames=0, batch_size=256, lr=0.003,
                          layers="fourier:64:8,64:relu,64:relu,out:sigmoid")}


def upscale_with(method, lr, size, settings: Settings, on_progress=None):
    if method == "bicubic":
        return np.clip(imresize(lr, size=size), 0, 1)
    if method == "lanczos":
        return _pillow(lr, size, Image.LANCZOS)
    if method == "nearest":
        return _pillow(lr, size, Image.NEAREST)
    if method in LEARNED:
        how = LEARNED[method]
        s = (settings if how is None else how(settings) if callable(how)
             else Settings(seed=settings.seed, **how).validate())
        comp, _ = Compresser.for_image(lr, 8, s)
        report = on_progress or (lambda what, done, total: None)
        comp.train(lr, s, on_epoch=lambda done, total, *_: report(f"{method}: training", done, total),
                   on_progress=on_progress, score=False)
        return comp.upscale(*size, on_progress=on_progress)
    lookup(METHODS, method, "method")  # raises: every method is handled above


class EvaluationInterrupted(KeyboardInterrupt):
    """Ctrl-C part way: ``report`` holds the images scored so far (their
    means, and "interrupted": how far it got)."""

    def __init__(self, report):
        super().__init__("interrupted")
        self.report = report


def evaluate_images(paths, scale, methods, settings, on_image=None, save_dir=None, on_progress=None):
    """Returns {"scale", "images": {name: {method: {psnr, ssim}}, "seconds"}, "mean"}.
    ``on_image(name, row)`` after each image; ``on_progress(what, done,
    total)`` as the learned methods train and upscale. Ctrl-C raises
    EvaluationInterrupted with the images scored so far."""
    from . import __version__
    report = {"scale": scale, "protocol": "MATLAB bicubic x1/S, PSNR/SSIM on Y (BT.601), border S",
              "nncompress": __version__, "preset": settings.preset, "prior": settings.prior,
              "images": {}, "mean": {}}
    if save_dir:
        os.makedirs(save_dir, exist_ok=True)
    from .imagefile import once_each, short_names
    paths = once_each(paths, lambda p, first: warnings.warn(f"'{p}' is '{first}' again; evaluated once"))
    names = short_names(paths)  # two photos of one name, two rows (cc/rocket.jpg, mixed/rocket.jpg)
    try:
        _score(paths, names, scale, methods, settings, report, on_image, save_dir, on_progress)
    except KeyboardInterrupt:
        report["interrupted"] = f"after {len(report['images'])} of {len(paths)} images"
        _means(report, methods)
        raise EvaluationInterrupted(report) from None
    _means(report, methods)
    return report


def _means(report, methods):
    for m in methods:
        rows = [r[m] for r in report["images"].values()]
        if rows:
            report["mean"][m] = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr", "ssim")}


def _score(paths, names, scale, methods, settings, report, on_image, save_dir, on_progress):
    """Each image of ``paths`` into ``report["images"]``."""
    for path in paths:
        hr, _ = imaging.read_image(path)
        if hr.shape[2] in (2, 4):
            hr = hr[..., :-1]  # score colour, not alpha
        if min(hr.shape[:2]) < 8 * scale:
            raise ImageError(f"'{path}' is too small to evaluate at x{scale}; it needs {8 * scale}+ pixels a side")
        hr, lr = degrade(hr, scale)
        name = names[path]
        row, secs, made = {}, {}, {}
        for m in methods:
            t0 = time.perf_counter()
            named = None if on_progress is None else (
                lambda what, done, total, _n=name: on_progress(f"{_n}, {what}", done, total))
            sr = upscale_with(m, lr, hr.shape[:2], settings, named)
            secs[m] = time.perf_counter() - t0
            sr = np.round(np.clip(sr, 0, 1) * 255) / 255  # scored as the saved 8-bit PNG
            row[m] = {"psnr": psnr(sr, hr, scale), "ssim": ssim(sr, hr, scale)}
            made[m] = sr
        if save_dir:  # once the image is scored whole: an interrupted one leaves no files, as it has no row
            stem = os.path.splitext(name)[0].replace("/", "_")
            for m, sr in made.items():
                imaging.write_png(os.path.join(save_dir, f"{stem}_x{scale}_{m}.png"), sr)
        row["seconds"] = secs
        row["size"] = [hr.shape[1], hr.shape[0]]  # (width, height) scored, cut to a multiple of the scale
        report["images"][name] = row
        if on_image:
            on_image(name, row)
