"""Network: a validated stack of layers whose trainable arrays are views into
one flat parameter vector (so optimizers and fused kernels see one array).
Model files: ``modelfile.py``."""

from dataclasses import dataclass

import numpy as np

from . import kernels as K
from .activations import get_activation
from .layers import Activation, Connected, Conv2D, Init, Input, Layer, layer_config, layer_from_config

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


def choose_init(layers, i) -> Init | None:
    """How layer i's weights start, from the layer list alone (None for a
    layer without weights): its own ``init`` if set, else the rule of the
    activation after it (xavier if none), with SIREN's first-layer rule for
    the first weight layer before a sine. w0 is that sine's argument. A
    linear layer that reads a sine's output (SIREN's last layer) takes the
    SIREN rule with that sine's w0, as the paper's code does: xavier there
    starts the output 30x too wide (measured on the digit: loss 4.5e-7
    after 150 epochs, 2.1e-9 with SIREN's rule)."""
    layer = layers[i]
    if not layer.has_weights:
        return None
    nxt = layers[i + 1] if i + 1 < len(layers) else None
    act = nxt if isinstance(nxt, Activation) else None
    before = layers[i - 1] if i > 0 and isinstance(layers[i - 1], Activation) else None
    reads_sine = act is None and before is not None and before.name == "sine"
    w0 = act.arg if act is not None and act.name == "sine" else before.arg if reads_sine else Init.w0
    if layer.init is not None:
        return Init(layer.init, w0)
    rule = get_activation(act.name).init if act is not None else "siren" if reads_sine else "xavier"
    if rule == "siren" and not any(l.has_weights for l in layers[:i]):
        rule = "siren_first"
    return Init(rule, w0)


class Network:
    def __init__(self, layers, seed: int = 0, dtype=np.float32):
        self.layers: list[Layer] = [l if isinstance(l, Layer) else layer_from_config(l) for l in layers]
        self.seed = int(seed)
        self.dtype = np.dtype(dtype)
        self._build(np.random.default_rng(self.seed))

    # ----------------------------------------------------------------- build
    def _build(self, rng):
        """Each layer builds its arrays from the width before it; the output
        width of every layer is recorded once, in ``widths``."""
        if not self.layers or not isinstance(self.layers[0], Input):
            raise ValueError("a network must start with an Input layer")
        if not any(l.has_weights for l in self.layers):
            raise ValueError("a network needs at least one layer with weights (Connected or Conv2D)")
        size, self.widths = None, []
        for i, layer in enumerate(self.layers):
            if i > 0 and isinstance(layer, Input):
                raise ValueError(f"layer {i} ({layer!r}): Input may only be the first layer")
            size = layer.build(size, rng, self.dtype, init=choose_init(self.layers, i))
            self.widths.append(size)
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
        """(layer, output width, parameters) per layer; a layer whose init
        the network chose says which (``init=auto: he``)."""
        rows = []
        for i, (layer, w) in enumerate(zip(self.layers, self.widths)):
            text = repr(layer)
            if layer.has_weights and getattr(layer, "init", "") is None:
                chosen = choose_init(self.layers, i)
                rule = f"{chosen.rule}, w0 {chosen.w0:g}" if chosen.rule.startswith("siren") else chosen.rule
                text = text.replace("init=None", f"init=auto: {rule}")
            rows.append((text, str(w), sum(p.size for p in layer.params.values())))
        return rows

    # ------------------------------------------------------- generic passes
    def forward(self, X):
        """Layer-by-layer forward, caching for ``backward``. X (N, in) -> (N,
        out) for dense layers; (B, H, W, C) images for convolutions. A ReLU
        after a convolution is applied by the convolution, block by block
        while in cache (one pass over memory less); the ReLU layer keeps
        that output for its backward pass."""
        if np.ndim(X) < 2 or np.shape(X)[-1] != self.in_size:
            raise ValueError(f"X must have {self.in_size} values on its last axis (N, {self.in_size}) or "
                             f"(B, H, W, {self.in_size}); got shape {np.shape(X)}")
        layers, i = self.layers, 0
        while i < len(layers):
            layer = layers[i]
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(layer, Conv2D) and isinstance(nxt, Activation) and nxt.name == "relu":
                X = layer.forward(X, relu=True)
                nxt._X = nxt._Y = X  # relu' is X > 0, the same mask on its output
                i += 2
                continue
            X = layer.forward(X)
            i += 1
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
        if any(l.has_weights for l in prefix):  # e.g. convolutions: no fused form
            return None
        sizes = [self.widths[i - 1]]
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
    def save(self, path, meta: dict | None = None, extras: dict | None = None, half: bool = False):
        """Write a model file (see ``modelfile.save``)."""
        from . import modelfile
        modelfile.save(path, self, meta, extras, half)

    @classmethod
    def load(cls, path):
        """Returns (network, meta dict, extras dict); see ``modelfile.load``."""
        from . import modelfile
        return modelfile.load(path)


SMALL_WIDTH = 32  # networks no wider than this predict in the fused per-row kernel (measured)
