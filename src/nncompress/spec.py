"""Layer specs and run settings: ``--layers`` text or YAML -> validated plain
data -> a network config ``{"layers": [...]}``.

Spec text: comma-separated items.
  ``N:act``         Connected(N) then that activation, e.g. ``20:leaky_relu``
  ``N:act(arg)``    with an argument, e.g. ``leaky_relu(0.2)``, ``sine(30)``
  ``N``             a linear Connected(N)
  ``fourier:F:S``   Fourier features: F frequencies drawn with sigma S
  ``convK:C[:act]`` a K x K convolution to C channels (patch mode, priors);
                    ``convK:C/G`` in G groups (each sees only its share of
                    the channels before it: a prior made by ``--average``)
  ``shuffle:S``     (last item only) pixel shuffle: the network works in
                    low-resolution space and upscales by S at the end; the
                    conv before it ``out`` gives the S*S channels per output
  ``out``           (last item only) the width the data needs: the image's
                    channel count
In YAML the same items may be strings, or mappings such as
``{units: 20, activation: leaky_relu}`` or ``{fourier: 64, sigma: 10}``.
"""

import math
import os
import re
from dataclasses import dataclass, fields

import yaml

from .activations import get_activation
from .errors import SpecError
from .layers import Activation
from .optimizers import OPTIMIZERS, SCHEDULES
from .losses import LOSSES
from .registry import lookup, unknown


_ACT = re.compile(r"^([a-z_]+)(?:\((.*)\))?$")


def parse_item(text, index):
    """One spec item -> {"units": int|"out", "activation": str|None, "arg": float|None},
    the same with "conv": k for a k x k convolution, or {"fourier": int, "sigma": float}."""
    where = f"layer item {index + 1} ('{text}')"
    s = text.strip().replace(" ", "")
    if not s:
        raise SpecError(f"layer item {index + 1} is empty; remove the extra comma")
    parts = s.split(":")
    if parts[0] == "fourier":
        if len(parts) not in (2, 3):
            raise SpecError(f"{where}: write fourier:FEATURES:SIGMA, e.g. fourier:64:10")
        feats = _positive_int(parts[1], where, "feature count")
        sigma = _positive_float(parts[2], where, "sigma") if len(parts) == 3 else 10.0
        return {"fourier": feats, "sigma": sigma}
    if parts[0] == "shuffle":
        if len(parts) != 2:
            raise SpecError(f"{where}: write shuffle:SCALE, e.g. shuffle:4")
        scale = _positive_int(parts[1], where, "scale")
        if scale < 2:
            raise SpecError(f"{where}: the shuffle scale must be at least 2")
        return {"shuffle": scale}
    conv = None
    if parts[0].startswith("conv"):
        conv = _positive_int(parts[0][4:], where, "kernel size")
        if conv % 2 != 1 or len(parts) not in (2, 3):
            raise SpecError(f"{where}: write convK:CHANNELS or convK:CHANNELS:ACTIVATION with K odd, "
                            f"e.g. conv3:32:relu")
        parts = parts[1:]
    if len(parts) > 2:
        raise SpecError(f"{where}: expected WIDTH or WIDTH:ACTIVATION")
    groups = 1
    if conv is not None and "/" in parts[0]:  # convK:C/G: G groups (a conv of averaged priors)
        parts[0], g = parts[0].split("/", 1)
        groups = _positive_int(g, where, "group count")
    units = "out" if parts[0] == "out" else _positive_int(parts[0], where, "width")
    if groups > 1 and (units == "out" or units % groups):
        raise SpecError(f"{where}: convK:CHANNELS/GROUPS needs CHANNELS a multiple of GROUPS")
    item = {"units": units, "activation": None, "arg": None}
    if conv is not None:
        item["conv"] = conv
    if groups > 1:
        item["groups"] = groups
    if len(parts) == 2:
        m = _ACT.match(parts[1])
        if not m:
            raise SpecError(f"{where}: cannot read activation '{parts[1]}'; e.g. leaky_relu or sine(30)")
        try:
            get_activation(m.group(1))
        except ValueError as e:
            raise SpecError(f"{where}: {e}") from None
        item["activation"] = m.group(1)
        if m.group(2) is not None:
            item["arg"] = _finite_float(m.group(2), where, "activation argument")
        try:
            Activation(item["activation"], item["arg"])
        except ValueError as e:
            raise SpecError(f"{where}: {e}") from None
    return item


def parse_layers(spec) -> list[dict]:
    """Spec text or a YAML list -> list of item dicts."""
    if isinstance(spec, str):
        raw = spec.split(",")
    elif isinstance(spec, list):
        raw = spec
    else:
        raise SpecError(f"layers must be spec text or a list, got {type(spec).__name__}")
    if not raw or raw == [""]:
        raise SpecError("no layers given; e.g. --layers 20:leaky_relu,20:leaky_relu,out:sigmoid")
    items = []
    for i, r in enumerate(raw):
        items.append(parse_item(str(r), i) if not isinstance(r, dict) else _item_from_mapping(r, i))
    for i, it in enumerate(items):
        if "shuffle" in it and (i != len(items) - 1 or i == 0 or "conv" not in items[i - 1]):
            raise SpecError(f"layer item {i + 1}: shuffle:S may only be the last item, after a conv item "
                            f"(e.g. conv3:out,shuffle:4)")
    last = _width_item(items)
    for i, it in enumerate(items):
        if it.get("units") == "out" and i != last:
            raise SpecError(f"layer item {i + 1}: 'out' may only be the width of the last item "
                            f"(or of the conv before a last shuffle)")
    if "fourier" in items[-1]:
        raise SpecError("the last layer item must be a width (e.g. out:sigmoid), not a fourier encoding")
    return items


def _width_item(items):
    """Index of the item that gives the output width: the last, or the conv
    before a last shuffle."""
    return len(items) - (2 if "shuffle" in items[-1] else 1)


def _item_from_mapping(m, index):
    where = f"layer item {index + 1} ({m})"
    if "fourier" in m:
        extra = set(m) - {"fourier", "sigma"}
        if extra:
            raise SpecError(f"{where}: unknown keys {sorted(extra)}; a fourier item has fourier, sigma")
        return parse_item(f"fourier:{m['fourier']}:{m.get('sigma', 10.0)}", index)
    extra = set(m) - {"units", "activation", "arg", "conv", "groups"}
    if extra or "units" not in m:
        raise SpecError(f"{where}: a layer item has keys units, activation, arg, conv, groups (or fourier, sigma; "
                        f"or shuffle)")
    text = (f"conv{m['conv']}:" if "conv" in m else "") + str(m["units"]) + (f"/{m['groups']}" if "groups" in m else "")
    if m.get("activation"):
        text += f":{m['activation']}" + (f"({m['arg']})" if m.get("arg") is not None else "")
    return parse_item(text, index)


def network_config(items, in_size, out_size, seed=0) -> dict:
    """Item dicts -> network config with Input(in_size); checks the last
    width matches ``out_size`` (the data's channel count)."""
    layers = [{"type": "input", "size": int(in_size)}]
    shuffle = items[-1].get("shuffle", 1)
    last = _width_item(items)
    for i, it in enumerate(items):
        if "fourier" in it:
            layers.append({"type": "fourier", "features": it["fourier"], "sigma": it["sigma"], "seed": seed})
            continue
        if "shuffle" in it:
            layers.append({"type": "pixel_shuffle", "scale": it["shuffle"]})
            continue
        units, need = it["units"], out_size * shuffle * shuffle
        if units == "out":
            units = need
        elif i == last and units != need:
            raise SpecError(f"the last layer has width {units}, but the data needs {need} channel(s)"
                            + (f" ({out_size} x {shuffle}x{shuffle} for shuffle:{shuffle})" if shuffle > 1 else "")
                            + f"; write {need} or 'out'")
        if "conv" in it:
            layers.append({"type": "conv2d", "channels": units, "kernel": it["conv"], "init": None,
                           **({"groups": it["groups"]} if it.get("groups", 1) > 1 else {})})
        else:
            layers.append({"type": "connected", "units": units, "init": None})
        if it["activation"]:
            layers.append({"type": "activation", "name": it["activation"], "arg": it["arg"]})
    return {"layers": layers, "seed": seed}


def build_network(layers, in_size, out_size, seed=0):
    """Spec text or YAML list -> Network with Input(in_size) and an output
    of ``out_size``."""
    from .network import Network
    config = network_config(parse_layers(layers), in_size, out_size, seed)
    try:
        return Network.from_config(config)
    except ValueError as e:  # widths that do not fit (e.g. conv3:8/4 after 6 channels): the layers' fault
        raise SpecError(f"the layers do not fit together: {e}") from None


def network_text(net) -> str:
    """A built network's layers as spec text (a prior's network, say, which
    ``settings.layers`` does not describe)."""
    out = []
    for layer in net.layers[1:]:
        cfg = layer.get_config()
        kind = type(layer).__name__
        if kind == "Activation" and out:
            out[-1] += ":" + cfg["name"] + (f"({cfg['arg']:g})" if cfg["arg"] is not None and
                                            cfg["arg"] != get_activation(cfg["name"]).default_arg else "")
        elif kind == "Conv2D":
            out.append(f"conv{cfg['kernel']}:{cfg['channels']}" + (f"/{cfg['groups']}" if "groups" in cfg else ""))
        elif kind == "Connected":
            out.append(str(cfg["units"]))
        elif kind == "FourierFeatures":
            out.append(f"fourier:{cfg['features']}:{cfg['sigma']:g}")
        elif kind == "PixelShuffle":
            out.append(f"shuffle:{cfg['scale']}")
    return ",".join(out)


def format_items(items) -> str:
    """Item dicts -> spec text (for display and for saving); parsing the
    text gives the same items back."""
    out = []
    for it in items:
        if "fourier" in it:
            out.append(f"fourier:{it['fourier']}:{_num(it['sigma'])}")
        elif "shuffle" in it:
            out.append(f"shuffle:{it['shuffle']}")
        else:
            s = (f"conv{it['conv']}:" if "conv" in it else "") + str(it["units"])
            s += f"/{it['groups']}" if it.get("groups", 1) > 1 else ""
            if it["activation"]:
                s += ":" + it["activation"] + (f"({_num(it['arg'])})" if it["arg"] is not None else "")
            out.append(s)
    return ",".join(out)


def _num(v) -> str:
    """A float as short text that reads back exactly: 2.0 -> '2', 0.2 -> '0.2'."""
    s = repr(float(v))
    return s[:-2] if s.endswith(".0") else s


# ------------------------------------------------------------------ settings

@dataclass
class Settings:
    """What the user chose: everything a training run needs besides the
    image. The field defaults are coords mode's (a clean recreation of a
    small image in seconds); other modes start from their ``DEFAULTS``
    (see ``make_settings``)."""
    mode: str = "coords"
    layers: str = "fourier:16:2,64:relu,64:relu,out:sigmoid"  # a YAML list is accepted; validate() makes it text
    epochs: int = 300
    batch_size: int = 32
    lr: float = 0.003
    optimizer: str = "adam"
    loss: str = "mse"
    schedule: str = "cosine"
    seed: int = 0
    scale: float = 4.0
    frames: int = 30
    color: str = "luma"
    preset: str = "balanced"  # patch mode: a training budget (its PRESETS), under a config file and flags
    steps: int = 0   # patch mode: training steps (minibatches of crops) per epoch
    crop: int = 40   # patch mode: side of the random training crops
    prior: str = "none"  # patch mode: the network's start: builtin, none, or a prior file
    ensemble: int = 8    # patch mode: passes of the geometric self-ensemble at upscale (1 or 8)

    def to_dict(self) -> dict:
        """The settings a model file records: those of this mode, without
        other modes' own (their ``OWN_SETTINGS``)."""
        others = _others_own(self.mode)
        return {k: getattr(self, k) for k in SETTING_KEYS if k not in others}

    def validate(self, check_files=True):
        """Checks every setting (``SpecError`` names the flag); a prior file
        must exist unless ``check_files`` is False (a model's record of the
        file it started from, which it no longer needs)."""
        from .modes import get_mode
        mode = get_mode(self.mode)
        items = parse_layers(self.layers)
        if hasattr(mode, "check_layers"):
            mode.check_layers(items, self)
        self.layers = format_items(items)  # one form, whether given as text or a YAML list
        for name in ("epochs", "batch_size", "frames", "seed", "steps", "crop"):
            v, least = getattr(self, name), 1 if name == "epochs" else 0
            if isinstance(v, bool) or not isinstance(v, int) or v < least:
                raise SpecError(f"{_flag(name)} must be a whole number >= {least}, got {v!r}")
        for name, v in (("lr", self.lr), ("scale", self.scale)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise SpecError(f"{_flag(name)} must be a positive number, got {v!r}")
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("loss", self.loss, LOSSES)
        if self.loss == "bce" and items[-1].get("activation") != "sigmoid":
            raise SpecError("bce loss needs a network that ends in a sigmoid activation")
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("color", self.color, ("luma", "rgb"))
        if isinstance(self.crop, bool) or not isinstance(self.crop, int) or self.crop < 8:
            raise SpecError(f"{_flag('crop')} must be a whole number >= 8, got {self.crop!r}")
        _choice("preset", self.preset, PRESET_NAMES)
        _choice("ensemble", self.ensemble, (1, 8))
        if not isinstance(self.prior, str) or not (self.prior in ("builtin", "none") or os.path.isfile(self.prior)
                                                   or not check_files):
            what = ("is a folder (a prior is one .npz file, made by nncompress pretrain)"
                    if isinstance(self.prior, str) and os.path.isdir(self.prior) else
                    "does not exist" if isinstance(self.prior, str) and (self.prior.endswith(".npz") or os.sep in self.prior)
                    else "is none of these")
            raise SpecError(f"--prior must be builtin, none or a prior file; '{self.prior}' {what}")
        return self


SETTING_KEYS = [f.name for f in fields(Settings)]
PRESET_NAMES = ("fast", "balanced", "best")


def load_config(path) -> dict:
    """YAML file -> dict of settings, with unknown keys refused."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise SpecError(f"config file '{path}' does not exist") from None
    except IsADirectoryError:
        raise SpecError(f"config '{path}' is a folder; give a .yaml file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(f"config '{path}' is not valid YAML{line}: {problem}") from None
    except UnicodeDecodeError:
        raise SpecError(f"config '{path}' is not a text file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"config '{path}' must be a mapping of settings (key: value)")
    bad = [k for k in data if k not in SETTING_KEYS]
    if bad:
        raise SpecError(f"config '{path}': {unknown('key', bad[0], SETTING_KEYS, 'valid keys')}")
    return data


def _others_own(mode):
    """{setting: the mode that owns it} for the settings other modes own
    (their ``OWN_SETTINGS``) and ``mode`` does not use."""
    from .modes import MODES, get_mode
    mine = set(getattr(get_mode(mode), "OWN_SETTINGS", ()))
    return {k: name for name in MODES if name != mode for k in getattr(get_mode(name), "OWN_SETTINGS", ())
            if k not in mine}


def make_settings(config: dict | None = None, *, check_files=True, **overrides) -> Settings:
    """The mode's defaults <- its preset <- YAML config <- flags (None means
    'not given'). ``check_files=False``: a model file's record (see
    ``Settings.validate``).
    The mode is the flag's, else the config's, else coords. The one place
    where a mode's defaults are applied."""
    from .modes import get_mode
    config = config or {}
    given = {k: v for k, v in overrides.items() if v is not None}
    mode = get_mode(given.get("mode", config.get("mode", "coords")))
    theirs = [k for k in _others_own(mode.NAME) if k in given]  # a flag only another mode uses would be dropped
    if theirs:                                                     # unsaid (--prior without --mode patch)
        owner = _others_own(mode.NAME)[theirs[0]]
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in theirs)
        raise SpecError(f"{flags} {'is a' if len(theirs) == 1 else 'are'} {owner}-mode option"
                        f"{'' if len(theirs) == 1 else 's'}; add --mode {owner} (this is {mode.NAME} mode)")
    preset = given.get("preset", config.get("preset", Settings.preset))
    presets = getattr(mode, "PRESETS", {})
    if presets:
        lookup(tuple(presets), preset, "preset", SpecError)
    s = Settings()
    for source in (mode.DEFAULTS, presets.get(preset, {}), config, given):
        for k, v in source.items():
            lookup(SETTING_KEYS, k, "setting", SpecError)
            if k in ("lr", "scale") and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            setattr(s, k, v)
    if hasattr(mode, "settle"):  # a mode's rule between settings, given what the user chose
        mode.settle(s, {**config, **given}, given)
    return s.validate(check_files)


def _flag(name):
    """How the user gives a setting: '--batch-size (batch_size: in a config)'."""
    return f"--{name.replace('_', '-')} ({name}: in a config)"


def _choice(name, value, valid):
    lookup(tuple(valid), value, name, SpecError)


def _positive_int(text, where, what):
    try:
        v = int(text)
    except (TypeError, ValueError):
        raise SpecError(f"{where}: {what} must be a whole number, got '{text}'") from None
    if v <= 0:
        raise SpecError(f"{where}: {what} must be positive, got {v}")
    return v


def _finite_float(text, where, what):
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise SpecError(f"{where}: {what} must be a number, got '{text}'") from None
    if not math.isfinite(v):
        raise SpecError(f"{where}: {what} must be finite, got '{text}'")
    return v


def _positive_float(text, where, what):
    v = _finite_float(text, where, what)
    if v <= 0:
        raise SpecError(f"{where}: {what} must be positive, got {v}")
    return v

