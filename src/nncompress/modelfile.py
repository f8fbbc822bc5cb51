"""Model files: a network's weights as plain arrays, its config and metadata
as JSON text, in one ``.npz`` written atomically and read without pickle.
Every field is checked on load; a bad file raises ModelFileError naming
what is wrong.

Arrays: ``format``, ``format_version``, ``config`` (the network's
``{"layers": [...]}``), ``meta`` (the caller's JSON), ``params`` (the flat
weight vector), ``buffer.<layer>.<name>`` (fixed arrays such as Fourier
frequencies) and ``extra.<name>`` (the caller's arrays, such as a source
image).
"""

import json
import os
import zipfile

import numpy as np

from .atomic import atomic_write
from .errors import ModelFileError
from .network import Network

FORMAT = "nncompress-model"
FORMAT_VERSION = 2  # 2: Conv2D layers, convolutional patch mode
HALF_VERSION = 3    # 3: the weights may be stored as float16 (written only for such files)
GROUPS_VERSION = 4  # 4: convs in groups (``prior.average``), and 3's float16 (written only for such files)
READS = (1, 2, 3, 4)  # version 1 files: coords models load; patch models are refused (Compresser.load)


def save(path, net, meta: dict | None = None, extras: dict | None = None, half: bool = False):
    """Write weights, config (JSON text) and metadata as one ``.npz``,
    atomically: a crash never leaves a partial file at ``path``. ``half``
    stores the weights as float16 (half the file; they load as float32)."""
    arrays = {
        "format": np.array(FORMAT),
        "format_version": np.array(GROUPS_VERSION if any(getattr(l, "groups", 1) > 1 for l in net.layers)
                                   else HALF_VERSION if half else FORMAT_VERSION),
        "config": np.array(json.dumps(net.get_config())),
        "meta": np.array(json.dumps(meta or {})),
        "params": half_of(net.params) if half else net.params,
    }
    for i, layer in enumerate(net.layers):
        for k, b in layer.buffers.items():
            arrays[f"buffer.{i}.{k}"] = b
    for k, v in (extras or {}).items():
        arrays[f"extra.{k}"] = np.asarray(v)
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))  # deflate: ~7-17% smaller, read as fast


def fits_half(params):
    """Whether every weight is within float16's range."""
    return np.abs(params).max(initial=0) <= np.finfo(np.float16).max


def half_of(params):
    """Weights as a half file stores them (float16; out of its range is an error, not infinity)."""
    if not fits_half(params):
        raise ValueError("a weight is beyond float16's range; save in float32")
    return params.astype(np.float16)


def read_meta(path):
    """A model file's metadata dict alone (its weights not read), or None
    when ``path`` is not a model file that can be read that far (``load``
    says why)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        return None
    return meta if isinstance(meta, dict) else None


def load(path):
    """Returns (network, meta dict, extras dict); extras also holds the
    file's ``format_version`` (an int). Never unpickles; raises
    ModelFileError naming what is wrong."""
    path = os.fspath(path)
    name = os.path.basename(path)
    if not os.path.exists(path):
        raise ModelFileError(f"model file '{path}' does not exist")
    if os.path.isdir(path):
        raise ModelFileError(f"'{path}' is a folder with no model.npz in it; give a model file, or a run folder "
                             f"made by nncompress train")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"'{name}' is not a readable nncompress model (.npz): not a zip file, or truncated")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as e:
        raise ModelFileError(f"'{name}' is not a readable nncompress model (.npz): {e}") from None
    except ValueError as e:
        if "pickle" in str(e):
            raise ModelFileError(f"'{name}' holds a pickled object array, which is never loaded (it could run code)") from None
        raise ModelFileError(f"'{name}' is damaged: {e}") from None
    if "format" in data and str(data["format"]) == "nncompress-checkpoint":  # (checkpoint.FORMAT)
        model = path[:-len(".checkpoint.npz")] + ".npz" if path.endswith(".checkpoint.npz") else "its model file"
        raise ModelFileError(f"'{name}' is a training checkpoint (what --resume goes on from), not a model; "
                             f"give {model}")
    for key in ("format", "format_version", "config", "meta", "params"):
        if key not in data:
            raise ModelFileError(f"'{name}' is not an nncompress model: the '{key}' array is missing")
    if str(data["format"]) != FORMAT:
        raise ModelFileError(f"'{name}' is not an nncompress model (format {str(data['format'])!r})")
    version = data["format_version"]
    if version.shape != () or version.dtype.kind not in "iu" or int(version) not in READS:
        raise ModelFileError(f"'{name}' has format version {version!r}; this nncompress reads versions "
                             f"{', '.join(map(str, READS))}")
    try:
        cfg = json.loads(str(data["config"]))
        meta = json.loads(str(data["meta"]))
        net = Network.from_config(cfg)
    except (json.JSONDecodeError, ValueError, TypeError) as e:
        raise ModelFileError(f"'{name}' has an invalid config: {e}") from None
    params = data["params"]
    if params.dtype == np.float16 and int(version) >= HALF_VERSION and net.dtype == np.float32:
        params = params.astype(np.float32)
    if params.dtype != net.dtype or params.shape != net.params.shape:
        raise ModelFileError(f"'{name}': params has shape {params.shape} and dtype {params.dtype}; "
                             f"its config needs {net.params.shape} {net.dtype}")
    if not np.all(np.isfinite(params)):
        raise ModelFileError(f"'{name}': the weights contain NaN or infinity")
    net.params[...] = params
    for i, layer in enumerate(net.layers):
        for k, b in layer.buffers.items():
            got = data.get(f"buffer.{i}.{k}")
            if got is None or got.shape != b.shape or got.dtype != b.dtype:
                raise ModelFileError(f"'{name}': buffer {k} of layer {i} is missing or has the wrong shape")
            b[...] = got
    extras = {k[len("extra."):]: v for k, v in data.items() if k.startswith("extra.")}
    extras["format_version"] = int(version)
    extras["stored_dtype"] = str(data["params"].dtype)
    return net, meta, extras
