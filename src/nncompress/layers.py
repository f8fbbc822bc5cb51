"""Layers. Each is settings (``get_config()`` -> plain dict) plus arrays.

One interface: ``build(in_size, rng, dtype, init)`` makes the arrays and
returns the output size (``init``, chosen by the network, tells a layer with
weights how they start; others ignore it); ``forward(X)`` caches what ``backward`` needs; ``backward(dY)``
fills ``grads`` (same keys as ``params``) and returns dX. Shapes: X (N, in),
Y (N, out). Trainable arrays live in ``params``; fixed ones in ``buffers``.
"""

import math
from dataclasses import dataclass

import numpy as np

from . import kernels as K
from .kernels import conv as KC
from .activations import get_activation
from .registry import lookup

INITS = ("he", "xavier", "siren", "siren_first")


@dataclass(frozen=True)
class Init:
    """How a weight layer starts: ``rule`` (one of INITS) and SIREN's w0."""
    rule: str = "xavier"
    w0: float = 30.0


class Layer:
    has_weights = False  # layers with weights get an Init from the network

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}

    def build(self, in_size, rng, dtype=np.float32, init: Init | None = None):
        return in_size

    def get_config(self) -> dict:
        return {}

    def forget(self):
        """Drop what ``forward`` kept for ``backward`` (inference needs none of it)."""
        for name in ("_X", "_Y"):
            if hasattr(self, name):
                setattr(self, name, None)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Input(Layer):
    def __init__(self, size: int):
        super().__init__()
        self.size = _positive_int(size, "Input size")

    def build(self, in_size, rng, dtype=np.float32, init=None):
        return self.size

    def forward(self, X):
        return X

    def backward(self, dY):
        return dY

    def get_config(self):
        return {"size": self.size}


class Connected(Layer):
    """Y = X W + b, W (in, units), b (units,).

    init: "he" (relu family), "xavier" (sigmoid, tanh, linear), "siren"
    (sine after a hidden layer, or a linear layer reading a sine:
    U(+-sqrt(6/in)/w0)), "siren_first" (sine after the first layer:
    U(+-1/in)). None lets the network choose from the activations around
    it (``network.choose_init``).
    """
    has_weights = True

    def __init__(self, units: int, init: str | None = None):
        super().__init__()
        self.units = _positive_int(units, "Connected units")
        self.init = init if init is None else lookup(INITS, init, "init")

    def build(self, in_size, rng, dtype=np.float32, init: Init | None = None):
        fan_in, fan_out = in_size, self.units
        W, b = init_weights(init or Init(self.init or "xavier"), fan_in, fan_out, rng)
        self.params = {"W": W.astype(dtype), "b": b.astype(dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        return fan_out

    def forward(self, X):
        self._X = X  # (N, in)
        return X @ self.params["W"] + self.params["b"]  # (N, units)

    def backward(self, dY):
        self.grads["W"][...] = self._X.T @ dY
        self.grads["b"][...] = _column_sums(dY)
        return dY @ self.params["W"].T

    def get_config(self):
        return {"units": self.units, "init": self.init}


def init_weights(init: Init, fan_in, fan_out, rng):
    """(W (fan_in, fan_out), b (fan_out,)) float64 for an init rule."""
    w0, init = init.w0, init.rule
    if init == "he":
        return rng.standard_normal((fan_in, fan_out)) * math.sqrt(2.0 / fan_in), np.zeros(fan_out)
    if init == "xavier":
        lim = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-lim, lim, (fan_in, fan_out)), np.zeros(fan_out)
    lim = 1.0 / fan_in if init == "siren_first" else math.sqrt(6.0 / fan_in) / w0
    W = rng.uniform(-lim, lim, (fan_in, fan_out))
    blim = 1.0 / math.sqrt(fan_in)  # as the SIREN reference keeps nn.Linear's bias
    return W, rng.uniform(-blim, blim, fan_out)


class Activation(Layer):
    """Y = act(X), element-wise; ``arg`` is leaky_relu's slope or sine's w0."""

    def __init__(self, name: str, arg: float | None = None):
        super().__init__()
        info = get_activation(name)
        self.name = name
        if arg is None:
            arg = info.default_arg
        elif info.arg_name is None:
            raise ValueError(f"activation '{name}' takes no argument (got {arg!r})")
        else:
            arg = float(arg)
            if not math.isfinite(arg) or (name == "sine" and arg <= 0):
                raise ValueError(f"bad {info.arg_name} for {name}: {arg!r}")
        self.arg = arg
        self.code = info.code

    def forward(self, X):
        """Per unit, or per channel of an (B, H, W, C) conv output."""
        X = np.ascontiguousarray(X)
        Y = np.empty_like(X)
        K.activation_forward(self.code, X.dtype.type(self.arg or 0.0), _rows(X), _rows(Y))
        self._X, self._Y = X, Y
        return Y

    def backward(self, dY):
        dY = np.ascontiguousarray(dY)
        dX = np.empty_like(dY)
        K.activation_backward(self.code, dY.dtype.type(self.arg or 0.0), _rows(self._X), _rows(self._Y),
                              _rows(dY), _rows(dX))
        return dX

    def get_config(self):
        return {"name": self.name, "arg": self.arg}


class FourierFeatures(Layer):
    """Y = [sin(2 pi X B), cos(2 pi X B)] with B (in, features) ~ N(0, sigma^2)
    drawn once from ``seed`` and kept fixed (Tancik et al. 2020).
    X (N, in) -> Y (N, 2 features). Coords mode's coordinates span [-1, 1],
    twice the paper's [0, 1], so a sigma here means twice the paper's
    frequencies (sigma 5 here is the paper's 10)."""

    def __init__(self, features: int, sigma: float = 10.0, seed: int = 0):
        super().__init__()
        self.features = _positive_int(features, "Fourier features")
        self.sigma = float(sigma)
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"Fourier sigma must be a positive number, got {sigma!r}")
        self.seed = int(seed)

    def build(self, in_size, rng, dtype=np.float32, init=None):
        B = np.random.default_rng(self.seed).standard_normal((in_size, self.features)) * self.sigma
        self.buffers = {"B": B.astype(dtype)}
        return 2 * self.features

    def forward(self, X):
        B = self.buffers["B"].astype(X.dtype, copy=False)
        Y = np.empty((X.shape[0], 2 * self.features), X.dtype)
        K.fourier_features(np.ascontiguousarray(X), B, Y)
        self._X, self._Y = X, Y
        return Y

    def backward(self, dY):
        F = self.features
        S, C = self._Y[:, :F], self._Y[:, F:]
        # d sin(u)/du = cos(u), d cos(u)/du = -sin(u), u = 2 pi X B
        dU = (dY[:, :F] * C - dY[:, F:] * S) * (2 * math.pi)
        return dU @ self.buffers["B"].astype(dY.dtype).T

    def get_config(self):
        return {"features": self.features, "sigma": self.sigma, "seed": self.seed}


class Conv2D(Layer):
    """k x k convolution, stride 1, 'same' output size with reflect padding,
    C_in -> ``channels``, with bias. W (k*k*C_in, C_out), rows in (dy, dx,
    c_in) order; b (C_out,).

    ``pads`` (top, bottom, left, right) in ``forward`` overrides the padding
    on each side (0 or k // 2): tiled inference pads only at the image's
    real edges and lets halo pixels stand in elsewhere.

    ``groups`` g (AlexNet's, ResNeXt's): the channels in and out split into
    g equal runs, run j of the output seeing only run j of the input; W is
    then (k*k*C_in/g, C_out), group j's weights its columns. It is what
    a dense conv with block-diagonal weights computes, at 1/g of the work
    (``prior.average`` stores an ensemble of priors this way)."""

    def __init__(self, channels: int, kernel: int = 3, init: str | None = None, groups: int = 1):
        super().__init__()
        self.channels = _positive_int(channels, "Conv2D channels")
        self.kernel = _positive_int(kernel, "Conv2D kernel size")
        if self.kernel % 2 != 1:
            raise ValueError(f"Conv2D kernel size must be odd, got {kernel}")
        if init is not None and init not in INITS:
            raise ValueError(f"unknown init '{init}'; valid: {', '.join(INITS)}")
        self.groups = _positive_int(groups, "Conv2D groups")
        if self.channels % self.groups:
            raise ValueError(f"Conv2D channels ({channels}) must split into {groups} equal groups")
        self.init = init
        self.input_grad = True  # False skips dX (the first layer's input needs none)

    @property
    def radius(self):
        return self.kernel // 2

    has_weights = True

    def build(self, in_size, rng, dtype=np.float32, init: Init | None = None):
        k, cin, g = self.kernel, in_size, self.groups
        if cin % g:
            raise ValueError(f"Conv2D in {g} groups needs input channels that split into {g}, got {cin}")
        W, b = init_weights(init or Init(self.init or "xavier"), k * k * cin // g, self.channels, rng)
        self.params = {"W": W.astype(dtype), "b": b.astype(dtype)}
        self.grads = {key: np.zeros_like(v) for key, v in self.params.items()}
        self.in_channels = cin
        return self.channels

    def _runs(self):
        """(input channels, output channels) of each group, as slices."""
        ci, co = self.in_channels // self.groups, self.channels // self.groups
        return [(slice(j * ci, (j + 1) * ci), slice(j * co, (j + 1) * co)) for j in range(self.groups)]

    def forward(self, X, pads=None, x0=None, relu=False):
        """``x0``: the global column of the output's first column, in tiled
        inference (each pixel then comes out the same bits in any tile);
        ``relu``: the ReLU after this layer applied here, while each block
        is in cache (``Network.forward`` then gives the ReLU layer this
        output for its backward pass)."""
        r = self.radius
        top, bottom, left, right = (r, r, r, r) if pads is None else pads
        X = np.ascontiguousarray(X)
        B, H, W, _ = X.shape
        Z = np.empty((B, H + top + bottom - 2 * r, W + left + right - 2 * r, self.channels), X.dtype)
        if self.groups == 1:
            conv_same(X, self.params["W"], self.params["b"], self.kernel, top, left, KC.REFLECT, Z, x0, relu)
        elif self.channels // self.groups > NARROW:  # the GEMM kernel takes the groups itself (no copies)
            KC.conv_gemm(X, self.params["W"], self.params["b"], self.kernel, top, left, KC.REFLECT, Z, x0, relu,
                         self.groups)
        else:
            for ci, co in self._runs():
                Zj = np.empty(Z.shape[:3] + (co.stop - co.start,), X.dtype)
                conv_same(np.ascontiguousarray(X[..., ci]), np.ascontiguousarray(self.params["W"][:, co]),
                          self.params["b"][co], self.kernel, top, left, KC.REFLECT, Zj, x0, relu)
                Z[..., co] = Zj
        self._X, self._pads = X, (top, bottom, left, right)
        return Z

    def backward(self, dY):
        X, dY = self._X, np.ascontiguousarray(dY)
        self.grads["b"][...] = _column_sums(dY.reshape(-1, self.channels))
        if self.groups == 1:
            return self._backward(X, dY, self.params["W"], self.grads["W"])
        dX = np.empty_like(X) if self.input_grad else None
        for ci, co in self._runs():
            gW = np.empty((self.params["W"].shape[0], co.stop - co.start), self.grads["W"].dtype)
            d = self._backward(np.ascontiguousarray(X[..., ci]), np.ascontiguousarray(dY[..., co]),
                               np.ascontiguousarray(self.params["W"][:, co]), gW)
            self.grads["W"][:, co] = gW
            if dX is not None:
                dX[..., ci] = d
        return dX

    def _backward(self, X, dY, Wt, gW):
        """One group: gW <- its weight gradient; returns its dX (or None)."""
        k = self.kernel
        top, bottom, left, right = self._pads
        B, H, W, C = X.shape
        O = dY.shape[3]
        KC.weight_grad(X, dY, k, top, left, KC.REFLECT, gW, NARROW)
        if not self.input_grad:
            return None
        # dX on the padded grid: dY (zero-padded by k-1) correlated with the
        # flipped kernel, channels in and out swapped; then the pad folded back
        Wf = np.ascontiguousarray(Wt.reshape(k, k, C, O)[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(k * k * O, C)
        G = np.empty((B, H + top + bottom, W + left + right, C), dY.dtype)
        conv_same(dY, Wf, np.zeros(C, dY.dtype), k, k - 1, k - 1, KC.ZERO, G)
        dX = np.empty_like(X)
        KC.fold_reflect(G, top, bottom, left, right, dX)
        return dX

    def get_config(self):
        cfg = {"channels": self.channels, "kernel": self.kernel, "init": self.init}
        return cfg if self.groups == 1 else {**cfg, "groups": self.groups}  # (files from before groups load as before)


class PixelShuffle(Layer):
    """Sub-pixel upsampling (Shi et al. 2016, ESPCN): (B, H, W, C*s*s) ->
    (B, H*s, W*s, C). Input channel c*s*s + i*s + j becomes pixel
    (y*s + i, x*s + j) of output channel c (PyTorch's order). A network
    ending in one works in low-resolution space: at x4 it costs 1/16 per
    output pixel of one run on the bicubic upscale."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = _positive_int(scale, "PixelShuffle scale")
        if self.scale < 2:
            raise ValueError(f"PixelShuffle scale must be at least 2, got {scale}")

    def build(self, in_size, rng, dtype=np.float32, init=None):
        s2 = self.scale * self.scale
        if in_size % s2:
            raise ValueError(f"PixelShuffle({self.scale}) needs a multiple of {s2} channels before it, got {in_size}")
        return in_size // s2

    def forward(self, X):
        B, H, W, C = X.shape
        s = self.scale
        return X.reshape(B, H, W, C // (s * s), s, s).transpose(0, 1, 4, 2, 5, 3).reshape(B, H * s, W * s, -1)

    def backward(self, dY):
        B, Hs, Ws, C = dY.shape
        s = self.scale
        return np.ascontiguousarray(dY.reshape(B, Hs // s, s, Ws // s, s, C).transpose(0, 1, 3, 5, 2, 4)
                                    ).reshape(B, Hs // s, Ws // s, C * s * s)

    def get_config(self):
        return {"scale": self.scale}


NARROW = 4  # at most this many output channels: one dot product per output (a GEMM of 1 column is 4x slower)


def conv_same(X, Wm, bias, k, top, left, mode, Z, x0=None, relu=False):
    """Z = conv(X, Wm) + bias (then max(0, .) when ``relu``) by the kernel
    that suits the width: blocks of im2col + GEMM (aligned to global column
    x0 when given), or for a few outputs a direct dot product each."""
    if Wm.shape[1] <= NARROW:
        KC.conv_direct_narrow(X, np.ascontiguousarray(Wm.T), bias, k, top, left, mode, Z)
        if relu:
            np.maximum(Z, 0, out=Z)
    else:
        KC.conv_gemm(X, Wm, bias, k, top, left, mode, Z, x0, relu)


LAYERS = {
    "input": Input,
    "connected": Connected,
    "conv2d": Conv2D,
    "activation": Activation,
    "fourier": FourierFeatures,
    "pixel_shuffle": PixelShuffle,
}
LAYER_TYPES = {cls: name for name, cls in LAYERS.items()}


def layer_config(layer: Layer) -> dict:
    return {"type": LAYER_TYPES[type(layer)], **layer.get_config()}


def layer_from_config(cfg: dict) -> Layer:
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ValueError(f"a layer must be a mapping with a 'type', got {cfg!r}")
    cfg = dict(cfg)
    kind = cfg.pop("type")
    cls = lookup(LAYERS, kind, "layer type")
    try:
        return cls(**cfg)
    except TypeError as e:
        import inspect
        valid = [p for p in inspect.signature(cls).parameters]
        raise ValueError(f"bad settings for a '{kind}' layer {cfg}: valid keys are {', '.join(valid)}") from e


def _column_sums(A):
    """A (n, m) summed over its rows, as a GEMV with ones (BLAS): 8x
    numpy's strided sum(axis=0) on a conv layer's (36864, 32) gradient."""
    return np.ones(A.shape[0], A.dtype) @ A


def _rows(A):
    """A 2-D (rows, last axis) view of a contiguous array."""
    return A.reshape(-1, A.shape[-1])


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{what} must be a positive whole number, got {value!r}")
    return int(value)
