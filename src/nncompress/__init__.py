"""nncompress: fit a neural network to one image, in numpy + numba.

image -> table (``imaging``) -> network (``layers``, ``network``,
``training``) -> image (``compresser``)."""

__version__ = "0.1.0"

from .activations import ACTIVATIONS, get_activation
from .layers import Activation, Connected, FourierFeatures, Input, LAYERS
from .losses import LOSSES, get_loss
from .network import ModelFileError, Network
from .optimizers import OPTIMIZERS, SGD, Adam, Momentum, get_optimizer
from .training import TrainingDiverged, fit

__all__ = [
    "ACTIVATIONS", "LAYERS", "LOSSES", "OPTIMIZERS",
    "Activation", "Adam", "Connected", "FourierFeatures", "Input", "Momentum",
    "ModelFileError", "Network", "SGD", "TrainingDiverged",
    "fit", "get_activation", "get_loss", "get_optimizer",
]
