"""Network: a validated stack of layers whose trainable arrays are views into
one flat parameter vector (so optimizers and fused kernels see one array),
plus save/load as a pickle-free ``.npz``."""

import json
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from . import kernels as K
from .atomic import atomic_write
from .layers import Activation, Connected, FourierFeatures, Input, Layer, layer_config, layer_from_config
from .activations import get_activation
from .errors import ModelFileError

FORMAT = "nncompress-model"
FORMAT_VERSION = 1
PREDICT_CHUNK = 65536  # rows per inference chunk: bounds memory for any output size


@dataclass
class DenseStack:
    """The network after its parameter-free prefix, as arrays for the kernels:
    blocks of Connected followed by one activation (identity if none)."""
    prefix: list        # parameter-free layers applied first (Fourier, Activation)
    sizes: np.ndarray   # (L+1,) int64 widths
    w_off: np.ndarray   # (L,) offsets of W in the flat vector
    b_off: np.ndarray   # (L,) offsets of b
    codes: np.ndarray   # (L,) activation codes
    alphas: np.ndarray  # (L,) activation arguments, network dtype
    connected: list     # the Connected layers, in order

    @property
    def max_width(self):
        return int(self.sizes.max())


class Network:
    def __init__(self, layers, seed: int = 0, dtype=np.float32):
        self.layers: list[Layer] = [l if isinstance(l, Layer) else layer_from_config(l) for l in layers]
        self.seed = int(seed)
        self.dtype = np.dtype(dtype)
        self._build(np.random.default_rng(self.seed))

    # ----------------------------------------------------------------- build
    def _build(self, rng):
        if not self.layers or not isinstance(self.layers[0], Input):
            raise ValueError("a network must start with an Input layer")
        if not any(isinstance(l, Connected) for l in self.layers):
            raise ValueError("a network needs at least one Connected layer")
        size = None
        first_connected = True
        for i, layer in enumerate(self.layers):
            if i > 0 and isinstance(layer, Input):
                raise ValueError(f"layer {i} ({layer!r}): Input may only be the first layer")
            if isinstance(layer, Connected) and layer.init is None:
                nxt = self.layers[i + 1] if i + 1 < len(self.layers) else None
                init = get_activation(nxt.name).init if isinstance(nxt, Activation) else "xavier"
                if init == "siren":
                    layer.w0 = nxt.arg
                    init = "siren_first" if first_connected else "siren"
                layer._auto_init = init
            if isinstance(layer, Connected):
                saved, layer.init = layer.init, layer.init or layer._auto_init
                size = layer.build(size, rng, self.dtype)
                layer.init = saved
                first_connected = False
            else:
                size = layer.build(size, rng, self.dtype)
        self.in_size = self.layers[0].size
        self.out_size = size
        self._pack()

    def _pack(self):
        """Move every trainable array into one flat vector; layers keep views."""
        n = sum(p.size for l in self.layers for p in l.params.values())
        self.params = np.empty(n, self.dtype)
        self.grads = np.zeros(n, self.dtype)
        self._offsets = {}
        off = 0
        for i, layer in enumerate(self.layers):
            for k, p in layer.params.items():
                self.params[off:off + p.size] = p.ravel()
                layer.params[k] = self.params[off:off + p.size].reshape(p.shape)
                layer.grads[k] = self.grads[off:off + p.size].reshape(p.shape)
                self._offsets[(i, k)] = off
                off += p.size

    @classmethod
    def from_config(cls, cfg: dict, dtype=np.float32):
        if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
            raise ValueError("a network config is a mapping with a 'layers' list")
        return cls(cfg["layers"], seed=cfg.get("seed", 0), dtype=dtype)

    def get_config(self) -> dict:
        return {"layers": [layer_config(l) for l in self.layers], "seed": self.seed}

    @property
    def n_params(self) -> int:
        return int(self.params.size)

    def summary(self) -> list[tuple[str, str, int]]:
        """(layer, output width, parameters) per layer."""
        rows, size = [], None
        for layer in self.layers:
            if isinstance(layer, Input):
                size = layer.size
            elif isinstance(layer, Connected):
                size = layer.units
            elif isinstance(layer, FourierFeatures):
                size = 2 * layer.features
            rows.append((repr(layer), str(size), sum(p.size for p in layer.params.values())))
        return rows

    # ------------------------------------------------------- generic passes
    def forward(self, X):
        """Layer-by-layer forward, caching for ``backward``. X (N, in) -> (N, out)."""
        for layer in self.layers:
            X = layer.forward(X)
        return X

    def backward(self, dY):
        """Fill ``self.grads`` from dL/dY (N, out); returns dL/dX."""
        for layer in reversed(self.layers):
            dY = layer.backward(dY)
        return dY

    # ------------------------------------------------------------ fast path
    def dense_stack(self) -> DenseStack | None:
        """The kernel view of this network, or None if its shape has no
        fused form (e.g. two activations in a row after a Connected)."""
        prefix, i = [], 1
        while i < len(self.layers) and not isinstance(self.layers[i], Connected):
            prefix.append(self.layers[i])
            i += 1
        sizes = [self.in_size]
        for layer in prefix:
            sizes[0] = layer.features * 2 if isinstance(layer, FourierFeatures) else sizes[0]
        w_off, b_off, codes, alphas, connected = [], [], [], [], []
        while i < len(self.layers):
            layer = self.layers[i]
            if not isinstance(layer, Connected):
                return None
            connected.append(layer)
            sizes.append(layer.units)
            w_off.append(self._offsets[(i, "W")])
            b_off.append(self._offsets[(i, "b")])
            nxt = self.layers[i + 1] if i + 1 < len(self.layers) else None
            if isinstance(nxt, Activation):
                codes.append(nxt.code)
                alphas.append(nxt.arg or 0.0)
                i += 2
            else:
                codes.append(K.IDENTITY)
                alphas.append(0.0)
                i += 1
        return DenseStack(prefix, np.array(sizes, np.int64), np.array(w_off, np.int64),
                          np.array(b_off, np.int64), np.array(codes, np.int64),
                          np.array(alphas, self.dtype), connected)

    def predict(self, X, chunk: int = PREDICT_CHUNK, out=None):
        """Inference in chunks of rows: memory is bounded by ``chunk`` whatever
        N is. X (N, in) -> (N, out), network dtype."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.in_size:
            raise ValueError(f"expected input of shape (N, {self.in_size}), got {X.shape}")
        N = X.shape[0]
        out = np.empty((N, self.out_size), self.dtype) if out is None else out
        stack = self.dense_stack()
        small = stack is not None and stack.max_width <= SMALL_WIDTH
        if stack is not None and not small:  # two ping-pong buffers reused by every chunk and layer
            bufs = np.empty((2, min(chunk, N) * stack.max_width), self.dtype)
        for s in range(0, N, chunk):
            Xc = np.ascontiguousarray(X[s:s + chunk], dtype=self.dtype)
            if stack is None:
                out[s:s + chunk] = self.forward(Xc)
                continue
            for layer in stack.prefix:
                Xc = layer.forward(Xc)
            if small:
                K.predict_small(Xc, self.params, stack.sizes, stack.w_off, stack.b_off,
                                stack.codes, stack.alphas, out[s:s + chunk])
                continue
            n = Xc.shape[0]
            for l, layer in enumerate(stack.connected):
                Z = np.matmul(Xc, layer.params["W"], out=bufs[l % 2, :n * layer.units].reshape(n, layer.units))
                K.bias_activation_inference(Z, layer.params["b"], stack.codes[l], stack.alphas[l])
                Xc = Z
            out[s:s + chunk] = Xc
        return out

    # ------------------------------------------------------------- save/load
    def save(self, path, meta: dict | None = None, extras: dict | None = None):
        """Write weights, config (JSON text) and metadata as one ``.npz``,
        atomically: a crash never leaves a partial file at ``path``."""
        arrays = {
            "format": np.array(FORMAT),
            "format_version": np.array(FORMAT_VERSION),
            "config": np.array(json.dumps(self.get_config())),
            "meta": np.array(json.dumps(meta or {})),
            "params": self.params,
        }
        for i, layer in enumerate(self.layers):
            for k, b in layer.buffers.items():
                arrays[f"buffer.{i}.{k}"] = b
        for k, v in (extras or {}).items():
            arrays[f"extra.{k}"] = np.asarray(v)
        atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path):
        """Returns (network, meta dict, extras dict). Never unpickles;
        raises ModelFileError naming what is wrong."""
        path = os.fspath(path)
        name = os.path.basename(path)
        if not os.path.exists(path):
            raise ModelFileError(f"model file '{path}' does not exist")
        if os.path.isdir(path):
            raise ModelFileError(f"'{path}' is a folder, not a model file (did you mean {os.path.join(path, 'model.npz')}?)")
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
        for key in ("format", "format_version", "config", "meta", "params"):
            if key not in data:
                raise ModelFileError(f"'{name}' is not an nncompress model: the '{key}' array is missing")
        if str(data["format"]) != FORMAT:
            raise ModelFileError(f"'{name}' is not an nncompress model (format {str(data['format'])!r})")
        version = data["format_version"]
        if version.shape != () or version.dtype.kind not in "iu" or int(version) != FORMAT_VERSION:
            raise ModelFileError(f"'{name}' has format version {version!r}; this nncompress reads version {FORMAT_VERSION}")
        try:
            cfg = json.loads(str(data["config"]))
            meta = json.loads(str(data["meta"]))
            net = cls.from_config(cfg)
        except (json.JSONDecodeError, ValueError, TypeError) as e:
            raise ModelFileError(f"'{name}' has an invalid config: {e}") from None
        params = data["params"]
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
        return net, meta, extras


SMALL_WIDTH = 32  # networks no wider than this predict in the fused per-row kernel (measured)
