"""The mode registry. A mode is a module (``coords.py``, ``patch.py``) with
one small interface, the way every layer shares forward/backward; the
Compresser looks the mode up here and never branches on its name.

A mode module provides::

    NAME: str                       its registry name
    DEFAULTS: dict                  settings it starts from, under a config file and flags
    TAKES_IMAGE: bool               upscale() works on an image (the model keeps its source);
                                    False: the network is the image
    OUTPUT_BYTES_PER_VALUE: int     memory per output pixel and channel, for the size check
    OWN_SETTINGS: tuple             (optional) settings only this mode uses: other modes' model
                                    files leave them out
    SAMPLES: str                    (optional) what an epoch's samples are, for progress lines
                                    ("crops"; default "rows", of the image's table)
    State                           dataclass (a ``modes.State``) of what training learns
                                    besides the weights; saved under "state" in the model file

    network(settings, channels) -> Network
    train(net, img, settings, state, *, checkpoint, on_start, on_epoch, on_progress) -> History
        Fit ``net`` to img (H, W, C) float32 in [0, 1], filling ``state`` in place.
        Call ``on_start()`` once, when ``state`` is ready for previews, before the
        first epoch; then ``on_epoch(epoch, loss, seconds, samples)`` after each
        (0-based, counting from 0 for the run's first epoch), stopping when it
        returns True. ``settings.epochs`` is the total: train epochs
        [checkpoint.epoch, settings.epochs), through ``training.run_epochs``
        (or its contract: restore the optimizer and RNG from ``checkpoint``
        first, ``checkpoint.take`` after each epoch, ``checkpoint.restore``
        on Ctrl-C), so a stopped run continues bit for bit.
        ``on_progress(what, done, total)`` reports phases before the epochs
        (calibration) that can take seconds.
    score(net, img, settings, state, on_progress=None) -> float   PSNR (dB) of the mode's own test on img
    preview(net, img, settings, state) -> (h, w, C) float32 frame for the training GIF
    upscale(net, size, settings, state, image, bits=None, on_progress=None) -> (size[0], size[1], C) image:
        float32 in [0, 1], or uint8/uint16 when ``bits`` is given; ``image`` is the
        picture to upscale (None when TAKES_IMAGE is False); ``on_progress(what,
        done, total)`` as the work goes (tiles, stages, back-projection)
    describe(settings, state) -> dict   for ``info`` and the end of ``train``: "score"
        (what the PSNR measures, short), "score_detail" (in full), "learned" (state dict);
        optionally "start", "note", and "finished" (True: --resume would train no further)
    loss_psnr(loss, settings, state) -> float | None   PSNR a training loss implies
    settle(settings, chosen, flags) (optional) settle settings against each other in place, given
                                    what a config and flags chose (``chosen``) and the flags alone
    check_layers(items, settings)   (optional) refuse, with a SpecError, layer items
                                    (``spec.parse_layers``) the mode's network cannot take
"""

import importlib
import math
from dataclasses import asdict, dataclass, fields

from .errors import SpecError
from .registry import lookup

MODES = {"coords": "coords", "patch": "patch"}  # name -> module in this package, imported on first use


def get_mode(name, error=SpecError):
    """The mode module registered as ``name``."""
    return importlib.import_module(f".{lookup(MODES, name, 'mode', error)}", __package__)


@dataclass
class State:
    """What training learned besides the weights: numbers (or None, not yet
    learned). Subclasses declare the fields; saved as a plain dict."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        """Checked: only this state's keys, each a finite number or None."""
        if not isinstance(data, dict):
            raise ValueError(f"the learned state must be a mapping, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        bad = [k for k in data if k not in names]
        if bad:
            raise ValueError(f"unknown learned-state key '{bad[0]}'; valid: {', '.join(names) or 'none'}")
        for k, v in data.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise ValueError(f"learned {k} must be a finite number, got {v!r}")
        return cls(**{k: None if v is None else float(v) for k, v in data.items()})
