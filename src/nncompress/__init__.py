"""nncompress: fit a neural network to one image, in numpy + numba.

image -> table (a mode: ``coords``, ``patch``; see ``modes``) -> network
(``layers``, ``network``, ``training``) -> image (``compresser``).

The public API is listed once here and imported on first use, so
``nncompress --help`` starts without loading numba.
"""

import importlib

__version__ = "0.1.0"

_API = {
    "ACTIVATIONS": "activations", "get_activation": "activations",
    "LAYERS": "layers", "Activation": "layers", "Connected": "layers", "FourierFeatures": "layers",
    "Input": "layers", "Conv2D": "layers", "PixelShuffle": "layers",
    "LOSSES": "losses", "get_loss": "losses",
    "UserError": "errors", "SpecError": "errors", "ImageError": "errors", "ModelFileError": "errors",
    "Network": "network",
    "OPTIMIZERS": "optimizers", "SGD": "optimizers", "Adam": "optimizers", "Momentum": "optimizers",
    "get_optimizer": "optimizers",
    "TrainingDiverged": "training", "fit": "training",
    "Compresser": "compresser", "MODES": "modes", "get_mode": "modes",
    "Settings": "spec", "make_settings": "spec",
}
__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nncompress' has no attribute {name!r}")
