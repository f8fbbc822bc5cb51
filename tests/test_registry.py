"""Every registry answers an unknown name with the same message."""

import re

import pytest

from nncompress.activations import get_activation
from nncompress.errors import SpecError
from nncompress.layers import Connected, layer_from_config
from nncompress.losses import get_loss
from nncompress.optimizers import get_optimizer, schedule
from nncompress.registry import lookup, unknown
from nncompress.spec import make_settings


def test_unknown_names_suggest_and_list_the_valid_ones():
    assert unknown("loss", "mes", ("mse", "bce")) == "unknown loss 'mes' (did you mean 'mse'?); valid: mse, bce"
    assert unknown("key", "zzz", ("a", "b"), "valid keys") == "unknown key 'zzz'; valid keys: a, b"
    assert lookup({"a": 1}, "a", "thing") == 1 and lookup(("a", "b"), "b", "thing") == "b"
    with pytest.raises(SpecError, match="unknown thing 'c'; valid: a, b"):
        lookup(("a", "b"), "c", "thing", SpecError)
    with pytest.raises(ValueError, match="unknown thing"):
        lookup({"a": 1}, ["unhashable"], "thing")


@pytest.mark.parametrize("call,error,match", [
    (lambda: get_activation("sigmod"), ValueError, "unknown activation 'sigmod' (did you mean 'sigmoid'?); valid: identity"),
    (lambda: get_loss("bec"), ValueError, "unknown loss 'bec' (did you mean 'bce'?); valid: mse, bce"),
    (lambda: get_optimizer("adma", 0.1), ValueError, "unknown optimizer 'adma' (did you mean 'adam'?); valid: sgd"),
    (lambda: schedule("cosin", 0.1, 0, 1), ValueError, "unknown schedule 'cosin' (did you mean 'cosine'?)"),
    (lambda: Connected(3, "hee"), ValueError, "unknown init 'hee' (did you mean 'he'?)"),
    (lambda: layer_from_config({"type": "conected"}), ValueError, "unknown layer type 'conected' (did you mean"),
    (lambda: make_settings(mode="cords"), SpecError, "unknown mode 'cords' (did you mean 'coords'?); valid: coords"),
    (lambda: make_settings(optimizer="adma"), SpecError, "unknown optimizer 'adma' (did you mean 'adam'?)"),
])
def test_every_registry_uses_the_one_lookup(call, error, match):
    with pytest.raises(error, match=re.escape(match)):
        call()
