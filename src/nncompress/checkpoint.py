"""Checkpoints: everything a stopped training run needs to go on exactly as
if it had never stopped, besides the weights (which are in the model file).

    epoch   epochs finished: where the learning-rate schedule stands
    t       optimizer steps taken (Adam's bias correction)
    m, v    (P,) optimizer moments (momentum's velocity is m)
    rng     ``rng.bit_generator.state`` at the start of epoch ``epoch``

A training loop takes one with ``take`` after every epoch and, on a NaN
loss or Ctrl-C, goes back to it with ``restore``, so what is saved is always
a whole epoch. On disk it is a sidecar next to the model
(``model.npz`` -> ``model.checkpoint.npz``), so the model file stays the
size of the weights; written atomically, read without pickle. It records a
checksum of the weights it belongs to: a checkpoint from another run (or a
kill between the two writes) is noticed and not used.
"""

import json
import os
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from .atomic import atomic_write
from .errors import ModelFileError

FORMAT = "nncompress-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    epoch: int = 0
    t: int = 0
    m: np.ndarray | None = None       # (P,) first moment
    v: np.ndarray | None = None       # (P,) second moment
    rng: dict | None = None           # bit_generator.state
    params: np.ndarray | None = None  # (P,) weights at ``epoch`` (in memory; the model file holds them)

    def take(self, epoch, params, opt, rng=None):
        """Record the state after ``epoch`` epochs (copies, buffers reused)."""
        self.epoch, self.t = int(epoch), int(opt.t)
        self.params = _copy_into(self.params, params)
        self.m = _copy_into(self.m, opt.m)
        self.v = _copy_into(self.v, opt.v)
        self.rng = None if rng is None else rng.bit_generator.state

    def restore(self, params, opt, rng=None):
        """Put ``params`` (if recorded), the optimizer and the RNG back to
        this checkpoint. An optimizer whose moments have another shape (a
        different network) is left as it is; returns whether it was restored."""
        if self.params is not None and self.params.shape == params.shape:
            params[...] = self.params
        ok = self.m is not None and getattr(opt, "m", None) is not None and self.m.shape == opt.m.shape
        if ok:
            opt.m[...], opt.v[...], opt.t = self.m, self.v, self.t
        if rng is not None and self.rng is not None:
            rng.bit_generator.state = self.rng
        return ok

    @property
    def resumable(self) -> bool:
        return self.m is not None


def path_for(model_path):
    """The sidecar of ``model_path``: ``run/model.npz`` -> ``run/model.checkpoint.npz``."""
    root, _ = os.path.splitext(os.fspath(model_path))
    return root + ".checkpoint.npz"


def digest(params) -> int:
    return zlib.crc32(np.ascontiguousarray(params).tobytes())


def save(path, ck: Checkpoint, params, half=False):
    """Write ``ck`` for the weights ``params`` atomically. ``half``: the
    model file holds them rounded to float16, so the checkpoint keeps them
    exactly too (a resumed run goes on from the unrounded weights)."""
    from .modelfile import half_of
    stored = half_of(params).astype(params.dtype) if half else params
    meta = {"epoch": ck.epoch, "t": ck.t, "rng": ck.rng, "params_crc32": digest(stored)}
    arrays = {"format": np.array(FORMAT), "format_version": np.array(FORMAT_VERSION),
              "meta": np.array(json.dumps(meta)), "m": ck.m, "v": ck.v}
    if half:
        arrays["params"] = params
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load(path, params) -> Checkpoint | None:
    """The checkpoint at ``path`` for the weights ``params``, or None when
    there is none. Raises ModelFileError when it exists but belongs to other
    weights or is damaged (the message says what)."""
    if not os.path.exists(path):
        return None
    name = os.path.basename(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["format"]) != FORMAT or int(z["format_version"]) != FORMAT_VERSION:
                raise ModelFileError(f"'{name}' is not an nncompress checkpoint of version {FORMAT_VERSION}")
            meta, m, v = json.loads(str(z["meta"])), z["m"], z["v"]
            exact = z["params"] if "params" in z.files else np.array(params)
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, ValueError) as e:
        raise ModelFileError(f"checkpoint '{name}' is damaged ({e})") from None
    if meta.get("params_crc32") != digest(params):
        raise ModelFileError(f"checkpoint '{name}' belongs to other weights than its model")
    if m.shape != params.shape or v.shape != params.shape or m.dtype != params.dtype or exact.shape != params.shape:
        raise ModelFileError(f"checkpoint '{name}' has moments of shape {m.shape}; the model has {params.shape}")
    return Checkpoint(epoch=int(meta["epoch"]), t=int(meta["t"]), m=m, v=v, rng=meta.get("rng"),
                      params=np.array(exact, dtype=params.dtype))


def _copy_into(buf, src):
    if buf is None or buf.shape != src.shape or buf.dtype != src.dtype:
        return np.array(src)
    buf[...] = src
    return buf
