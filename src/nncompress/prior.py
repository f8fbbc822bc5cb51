"""Priors: patch mode's network trained on many images (``nncompress
pretrain``), the start that patch mode fine-tunes on each image (after
MZSR, Soh et al. 2020).

    folders -> images (luma), a pool of POOL at a time (bounded memory)
            -> random crops, each in one of the 8 rotations/flips; the crop
               is shrunk by S with MATLAB-style bicubic and bicubic'd back,
               and the network learns the residual, as in patch mode
            -> Adam with cosine decay; every epoch: PSNR gain over bicubic
               on held-back images, a checkpoint that resumes exactly

A prior is a model file whose meta says ``{"kind": "prior", "scale", "norm",
...}``; its network is the one patch mode then uses.
"""

import os
import warnings

import numpy as np

from . import internal
from .errors import ImageError, UserError
from .imaging import read_image
from .layers import Activation, Conv2D, PixelShuffle
from .resize import imresize

NORM = internal.Norm(0.45, 0.25)  # fixed: the prior sees many images, not one
POOL = 24         # images decoded at a time; the pool is redrawn every epoch
VAL_EVERY = 25    # every 25th image (in sorted order) is held back for validation, at most VAL_MAX
VAL_MAX = 8
VAL_SIDE = 192    # validation uses the centre of each held-back image
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")
BUILTIN = os.path.join(os.path.dirname(__file__), "priors")


def find_images(folders):
    """Image files under ``folders`` (subfolders too), sorted."""
    out = []
    for folder in folders:
        if not os.path.isdir(folder):
            raise UserError(f"'{folder}' is not a folder; give folders of training images")
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # hidden folders (a run's .replaced-run/) are not data
            out += [os.path.join(root, f) for f in files if f.lower().endswith(EXTENSIONS)]
    if not out:
        raise UserError(f"no images found under {', '.join(folders)}")
    from .imagefile import once_each
    return once_each(sorted(out))  # a folder given twice, or inside another given: each image once


def held_name(path, folders):
    """How a held-back image is recorded: its path below the outermost of
    ``folders`` that holds it, led by that folder's name
    (``BSD200/100075.png``; ``x/imgs/...`` and ``y/imgs/...`` for two
    folders named imgs), so that images of one name in two folders stay
    apart."""
    best = None
    for folder in folders:
        rel = os.path.relpath(path, folder)
        if rel != os.pardir and not rel.startswith(os.pardir + os.sep) and (best is None or len(rel) > len(best[1])):
            best = (folder, rel)
    if best is None:
        return os.path.basename(path)
    from .imagefile import short_names  # the folder: its own name, or as many parts as tell it from another given
    return "/".join([short_names(folders)[best[0]]] + best[1].split(os.sep))


def split(paths, held=None, warn=None, folders=(), own=True):
    """(training paths, held-back validation paths).

    A new run (``held`` None) holds back every VAL_EVERY-th image (at most
    VAL_MAX). A run that goes on from a prior holds back the images the
    prior recorded (``held``, see ``held_name``), wherever they now fall in
    the list, so that an image added or removed since cannot move one it
    trained on into validation. A name matches as the end of an image's
    path, so a folder recorded as ``imgs`` (given alone) or ``x/imgs``
    (given beside ``y/imgs``) is found either way, and names recorded
    without a folder, before, match by file name; one name may then hold
    back more than one image, never fewer. ``own``: the prior was trained
    on these folders (a resume): a recorded image that is not found
    (deleted, or in a renamed folder) is not replaced by another, even when
    none is found (said). Otherwise (--init, --average) a prior none of
    whose names is found was trained on other images, and every
    VAL_EVERY-th image is held back (said)."""
    if held is None:
        return _without(paths, paths[::VAL_EVERY][:VAL_MAX])
    names = set(held)
    found, val = set(), []
    for p in paths:
        full = "/" + os.path.abspath(p).replace(os.sep, "/").lstrip("/")
        # a name's folder part may be shorter or longer than this run's label for the folder (given alone, or beside
        # another of its name): it matches as the end of the image's path; an old name without one, by file name
        hit = {n for n in names if full.endswith("/" + n)}
        if hit:
            val.append(p)
            found |= hit
    if not val and not own:
        if warn and names:
            warn(f"none of the {len(names)} images the prior held back is in these folders (it was trained on "
                 f"others), so every {VAL_EVERY}th image here is held back")
        val = paths[::VAL_EVERY][:VAL_MAX]
    elif not names and warn:
        warn("the prior records no held-back image (its own were gone), so none is held back: no validation")
    elif len(found) < len(names) and warn:
        warn(f"{len(names) - len(found)} of the {len(names)} images the prior held back are not in the folders "
             f"(deleted, or in a renamed folder); validation uses the other {len(found)}"
             + ("" if val else ", so there is none"))
    return _without(paths, val)


def _without(paths, val):
    """(``paths`` less ``val``, ``val``)."""
    chosen = set(val)
    return [p for p in paths if p not in chosen], val


def usable(paths, side, warn=None):
    """(the paths that can be trained on, how many are under ``side``
    pixels on a side, how many cannot be opened as images), read from
    their headers (decoding every photo of a large folder first would take
    minutes). A file whose header reads but whose pixels do not (truncated)
    is found, warned of by name and skipped when first drawn
    (``DatasetSampler``), without changing the draws after it."""
    from PIL import Image
    kept, small, bad = [], 0, 0
    for p in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(p) as im:
                    if min(im.size) < side:
                        small += 1
                        continue
            kept.append(p)
        except Exception:  # (Pillow raises many kinds for a broken file): named in read_image's words
            bad += 1
            if warn and luma(p, warn) is not None:
                warn(f"'{p}' cannot be read; skipped")
    return kept, small, bad


def luma(path, warn=None):
    """Y of YCbCr in [0, 1], float64 (H, W); None (and a warning) for a
    file that cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img, _ = read_image(path)
    except ImageError as e:
        if warn:
            warn(f"{e}; skipped")
        return None
    img = img[..., :3] if img.shape[2] >= 3 else img[..., :1]
    return img.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) if img.shape[2] == 3 else img[..., 0] * 1.0


class DatasetSampler:
    """Batches X, T (n, c, c, 1) float32 like ``internal.CropSampler``, from
    a pool of images redrawn with ``refresh()``. Each crop is cut with a
    margin, shrunk and bicubic'd back, and the margin dropped, so the crop's
    edges see real neighbours. For a network in low-resolution space
    (``lowres``) X is the shrunk crop itself, (n, c/S, c/S, 1)."""

    def __init__(self, paths, scale, crop, rng, warn=None, lowres=False):
        self.paths, self.S, self.rng, self.warn, self.lowres = list(paths), int(scale), rng, warn, lowres
        self.crop = crop - crop % self.S
        self.margin = 2 * self.S * self.S  # bicubic reaches 2 low-resolution pixels
        self.bad = set()  # files found unreadable when drawn: skipped after, warned of once
        self.pool = []
        self.refresh()

    def refresh(self):
        # the list keeps its length whatever is found unreadable, so the draws do not depend on when that was
        # found: a resumed run (which finds it again) draws as a straight one (which knew it)
        side = self.crop + 2 * self.margin
        images = []
        while not images:  # (drawn again while none could be read: a file's readability does not change, so a
            if len(self.bad) == len(self.paths):  # resumed run draws as a straight one; the paths are distinct)
                raise UserError("none of the training images can be read")
            pick = self.rng.choice(len(self.paths), min(POOL, len(self.paths)), replace=False)
            for i in sorted(pick):
                p = self.paths[i]
                im = None if p in self.bad else luma(p, self.warn)
                if im is None:
                    self.bad.add(p)
                elif min(im.shape) >= side:
                    images.append(im)
                else:  # (its header said it was large enough: a file that changed since)
                    self.bad.add(p)
        self.pool = images

    def batch(self, n):
        c, m, S, rng = self.crop, self.margin, self.S, self.rng
        side = c + 2 * m
        cx, mx = (c // S, m // S) if self.lowres else (c, m)
        X = np.empty((n, cx, cx, 1), np.float32)
        T = np.empty((n, c, c, 1), np.float32)
        for i in range(n):
            im = self.pool[rng.integers(len(self.pool))]
            y, x = rng.integers(0, im.shape[0] - side + 1), rng.integers(0, im.shape[1] - side + 1)
            hr = internal.dihedral(im[y:y + side, x:x + side], int(rng.integers(8)))
            lr = imresize(hr, 1.0 / S)
            base = internal.base_upscale(lr, hr.shape)
            X[i, ..., 0] = ((lr if self.lowres else base)[mx:mx + cx, mx:mx + cx] - NORM.mean) / NORM.spread
            T[i, ..., 0] = (hr - base)[m:m + c, m:m + c] / NORM.spread
        return X, T


def validation_gain(net, images, scale):
    """Mean PSNR gain (dB) over bicubic of bicubic + the network's residual
    (no self-ensemble), on the centres of ``images``, 8-bit inputs."""
    gains = []
    for im in images:
        h, w = (min(VAL_SIDE, s) // scale * scale for s in im.shape)
        y0, x0 = (im.shape[0] - h) // 2, (im.shape[1] - w) // 2
        hr = im[y0:y0 + h, x0:x0 + w]
        lr = np.round(np.clip(imresize(hr, 1.0 / scale), 0, 1) * 255) / 255
        base = internal.base_upscale(lr, hr.shape)
        up = internal.refine(net, lr, hr.shape, NORM, ensemble=False)
        b = scale
        err = [np.mean((np.clip(a, 0, 1) - hr)[b:-b, b:-b] ** 2) for a in (base, up)]
        gains.append(10 * np.log10(err[0] / max(err[1], 1e-12)))
    return float(np.mean(gains)) if gains else float("nan")


def grow(net, start, new_head=False):
    """Start ``net`` from the prior network ``start``, deeper: the weight
    layers of ``start`` fill those of ``net`` of the same shapes, in order,
    and each extra C -> C conv between two ReLUs starts as the identity
    (its input is a ReLU's, so ReLU(x) = x): ``net`` then computes what
    ``start`` did, with room to learn more (Net2Net, Chen et al. 2016).

    ``new_head`` (a prior of another scale; both networks end in a pixel
    shuffle of their own scale): the prior gives its body only; the last
    conv, whose outputs are the S x S sub-pixels, starts at zero, so
    ``net`` starts at bicubic with the prior's features (as EDSR starts x4
    from x2)."""
    from .errors import SpecError
    old = [l for l in start.layers if l.has_weights]
    relu = lambda l: isinstance(l, Activation) and l.name == "relu"
    last = max(j for j, l in enumerate(net.layers) if l.has_weights)
    i = 0
    for j, layer in enumerate(net.layers):
        if not layer.has_weights:
            continue
        if new_head and j == last:
            if not (i == len(old) - 1 and isinstance(layer, Conv2D) and _same_inputs(layer, old[i])):
                raise SpecError(f"--init: the prior's layers before its last must fill --layers' before its last "
                                f"(layer {j}), and both last convs must take as many channels")
            for p in layer.params.values():
                p[...] = 0
            i += 1
            continue
        if i < len(old) and _same_kind(layer, old[i]) and all(layer.params[k].shape == old[i].params[k].shape
                                                             for k in layer.params):
            for k in layer.params:
                layer.params[k][...] = old[i].params[k]
            i += 1
            continue
        k, C, O = getattr(layer, "kernel", 0), getattr(layer, "in_channels", 0), getattr(layer, "channels", -1)
        if not (isinstance(layer, Conv2D) and layer.groups == 1 and C == O and relu(net.layers[j - 1])
                and j + 1 < len(net.layers) and relu(net.layers[j + 1])):
            from .spec import network_text
            n = sum(l.has_weights for l in net.layers[:j + 1])
            why = (f"does not match the prior's weight layer {i + 1} ({old[i]!r})" if i < len(old) else
                   "comes after all the prior's layers")
            raise SpecError(f"--init: weight layer {n} of --layers ({layer!r}) {why}, and cannot start as the "
                            f"identity (only a conv of as many channels out as in, not in groups, between two "
                            f"ReLUs, can). The prior's layers fill --layers' in order: begin with them, "
                            f"{network_text(start)}")
        layer.params["b"][...] = 0
        W = layer.params["W"].reshape(k, k, C, O)
        W[...] = 0
        W[k // 2, k // 2, np.arange(C), np.arange(C)] = 1
    if i < len(old):
        from .spec import network_text
        raise SpecError(f"--init: the prior has {len(old)} weight layers and --layers matches only {i} of them in "
                        f"order (a prior grows deeper, never shallower); begin --layers with {network_text(start)}")
    return net


def average(nets):
    """One network whose output is the mean of ``nets``' outputs (an
    ensemble of priors in a single file, e.g. one trained on the squared
    error and one on the absolute error). The nets must be stacks of the
    same kinds of layers with convs of the same kernel sizes. The first
    conv's outputs are stacked; each hidden conv sees only its own net's
    channels: a conv in len(nets) groups when the nets are equally wide
    (``Conv2D.groups``: 1/len(nets) of a dense conv's work), else a dense
    one with block-diagonal weights; the last conv takes all of them, each
    net's weights divided by len(nets), and averages the biases: the mean,
    in float64, rounded once to the network's dtype."""
    from .errors import SpecError
    from .layers import layer_config, layer_from_config
    from .network import Network
    kinds = [[(type(l).__name__, getattr(l, "kernel", None), getattr(l, "groups", 1),
               None if l.has_weights else layer_config(l)) for l in net.layers] for net in nets]
    if len(nets) < 2 or any(k != kinds[0] for k in kinds):
        raise SpecError("priors can be averaged only when they are two or more stacks of the same layers "
                        "(convs of the same kernel sizes; widths may differ)")
    last_conv = max(i for i, l in enumerate(nets[0].layers) if isinstance(l, Conv2D))
    if any(not isinstance(l, PixelShuffle) for l in nets[0].layers[last_conv + 1:]):  # mean of act(z) != act(mean z)
        raise SpecError("priors can be averaged only when their last conv is linear (nothing after it but a shuffle)")
    convs = [[l for l in net.layers if isinstance(l, Conv2D)] for net in nets]
    if len({c[-1].channels for c in convs}) > 1 or not all(isinstance(l, Conv2D) and l.groups == 1 for net in nets
                                                           for l in net.layers if l.has_weights):
        raise SpecError("priors can be averaged only when every weight layer is a conv (not in groups) "
                        "and the outputs match")
    n, last = len(nets), len(convs[0]) - 1
    same = all(len({c[j].channels for c in convs}) == 1 for j in range(last))
    layers, j = [], 0
    for l in nets[0].layers:
        if isinstance(l, Conv2D):
            groups = n if same and 0 < j < last else 1
            layers.append(Conv2D(l.channels if j == last else sum(c[j].channels for c in convs), l.kernel,
                                 groups=groups))
            j += 1
        else:
            layers.append(layer_from_config(layer_config(l)))
    out = Network(layers, dtype=nets[0].dtype)
    for j, conv in enumerate(l for l in out.layers if isinstance(l, Conv2D)):
        k = conv.kernel
        W, b = np.zeros((k, k, conv.in_channels // conv.groups, conv.channels)), np.zeros(conv.channels)
        i0 = o0 = 0
        for c in convs:
            src = c[j]
            share = 1 / n if j == last else 1.0
            rows = (slice(0, src.in_channels) if j == 0 or conv.groups > 1
                    else slice(i0, i0 + src.in_channels))  # a group's weights see its inputs as 0..c
            cols = slice(0, src.channels) if j == last else slice(o0, o0 + src.channels)
            W[:, :, rows, cols] += src.params["W"].astype(np.float64).reshape(k, k, src.in_channels, -1) * share
            b[cols] += src.params["b"].astype(np.float64) * share
            i0, o0 = i0 + src.in_channels, o0 + src.channels
        conv.params["W"][...] = W.reshape(-1, conv.channels)
        conv.params["b"][...] = b
    return out


def _same_kind(layer, old):
    """Layers of one type, kernel size and grouping (their weights' shapes
    alone can agree across kinds: conv3:18/9 after 18 channels has
    conv1:18's)."""
    return (type(layer) is type(old) and getattr(layer, "kernel", 0) == getattr(old, "kernel", 0)
            and getattr(layer, "groups", 1) == getattr(old, "groups", 1))


def _same_inputs(layer, old):
    """Two convs of one kernel size over as many channels (their outputs may differ)."""
    return isinstance(old, Conv2D) and old.kernel == layer.kernel and old.in_channels == layer.in_channels


def is_prior(meta):
    return isinstance(meta, dict) and meta.get("kind") == "prior"


# A prior of scale S serves the scales from S to REST_MAX x S (a whole step, then a rest of up to x1.5 in one
# pass of it); other scales take the prior nearest in log scale. Measured at x3 (rule set before, round 10):
# the x2 prior (x2, then x1.5) +1.92 dB fast and +1.85 balanced over bicubic on the six photos, against
# +1.79 and +1.82 for the x4 prior shrunk; at x3.5 the x4 prior wins (+1.93 against +1.58, fast: brick).
REST_MAX = 1.5


def builtin_path(scale):
    """The built-in prior for ``scale``: the largest whose scale S has
    S <= scale <= REST_MAX S, else the one whose scale is nearest."""
    files = sorted(f for f in os.listdir(BUILTIN) if f.endswith(".npz")) if os.path.isdir(BUILTIN) else []
    if not files:
        raise UserError("this nncompress has no built-in prior; use --prior none or --prior FILE")
    scales = [float(f[1:-4]) for f in files if f.startswith("x")]
    serving = [s for s in scales if s <= scale <= REST_MAX * s + 1e-9]
    best = max(serving) if serving else min(scales, key=lambda s: abs(np.log(s / scale)))
    return os.path.join(BUILTIN, f"x{best:g}.npz")


def builtin_scale(scale):
    """The scale of the built-in prior for ``scale`` (``builtin_path``)."""
    return float(os.path.basename(builtin_path(scale))[1:-4])


def load(spec, scale):
    """(network, meta) of the prior ``spec``: "builtin" or a file path."""
    from .errors import ModelFileError
    from .modelfile import load as load_model
    path = builtin_path(scale) if spec == "builtin" else spec
    net, meta, _ = load_model(path)
    if not is_prior(meta):
        raise ModelFileError(f"'{os.path.basename(path)}' is not a prior (make one with nncompress pretrain)")
    return net, meta
