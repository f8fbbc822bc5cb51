import json

import numpy as np
import pytest

from nncompress import ACTIVATIONS, LAYERS, ModelFileError, Network
from nncompress.layers import Activation, Connected, FourierFeatures, Input, layer_config, layer_from_config


def small_net():
    return Network([Input(2), FourierFeatures(4, 3.0, seed=1), Connected(8), Activation("sine", 30.0),
                    Connected(8), Activation("leaky_relu", 0.2), Connected(3), Activation("sigmoid")], seed=7)


@pytest.mark.parametrize("layer", [Input(3), Connected(4, "he"), FourierFeatures(5, 2.0, 3)]
                         + [Activation(n) for n in ACTIVATIONS])
def test_every_layer_config_round_trips(layer):
    cfg = layer_config(layer)
    assert cfg["type"] in LAYERS
    again = layer_from_config(json.loads(json.dumps(cfg)))
    assert layer_config(again) == cfg


def test_sizes_must_chain_and_errors_name_the_layer():
    with pytest.raises(ValueError, match="Input"):
        Network([Connected(3)])
    with pytest.raises(ValueError, match="layer 2"):
        Network([Input(2), Connected(3), Input(3), Connected(1)])
    with pytest.raises(ValueError, match="did you mean 'sigmoid'"):
        Network([Input(2), Connected(3), {"type": "activation", "name": "sigmoud"}])
    with pytest.raises(ValueError, match="positive"):
        Network([Input(2), Connected(0)])


def test_summary_and_param_count():
    net = small_net()
    assert net.n_params == (8 * 8 + 8) + (8 * 8 + 8) + (8 * 3 + 3)
    assert sum(r[2] for r in net.summary()) == net.n_params
    assert net.forward(np.zeros((5, 2), np.float32)).shape == (5, 3)


def test_siren_init_follows_the_activation():
    net = Network([Input(2), Connected(64), Activation("sine", 30.0), Connected(64), Activation("sine", 30.0),
                   Connected(1)], seed=0)
    W1, W2 = net.layers[1].params["W"], net.layers[3].params["W"]
    assert np.abs(W1).max() <= 1 / 2 and np.abs(W1).max() > 0.4  # first layer U(-1/in, 1/in)
    lim = np.sqrt(6 / 64) / 30
    assert np.abs(W2).max() <= lim and np.abs(W2).max() > 0.9 * lim


def test_explicit_siren_init_takes_w0_from_its_sine():
    """init="siren" given by hand used to keep w0 = 30 whatever the sine's argument."""
    net = Network([Input(2), Connected(64), Activation("sine", 30.0), Connected(64, "siren"),
                   Activation("sine", 5.0), Connected(1)], seed=0)
    W2 = net.layers[3].params["W"]
    lim = np.sqrt(6 / 64) / 5
    assert np.abs(W2).max() <= lim and np.abs(W2).max() > 0.9 * lim


def test_choose_init_is_a_pure_function_of_the_layers():
    from nncompress.layers import Init
    from nncompress.network import choose_init
    layers = [Input(2), Connected(8), Activation("sine", 7.0), Connected(8), Activation("relu"), Connected(1)]
    assert [choose_init(layers, i) for i in range(len(layers))] == [
        None, Init("siren_first", 7.0), None, Init("he"), None, Init("xavier")]
    # SIREN's last layer: linear after a sine takes the SIREN rule with that sine's w0 (xavier: 30x too wide)
    siren = [Input(2), Connected(8), Activation("sine", 7.0), Connected(8), Activation("sine", 12.0), Connected(1)]
    assert [choose_init(siren, i) for i in (1, 3, 5)] == [Init("siren_first", 7.0), Init("siren", 12.0), Init("siren", 12.0)]
    out_act = siren + [Activation("sigmoid")]  # an output activation keeps its own rule
    assert choose_init(out_act, 5) == Init("xavier")
    assert all(l.init is None for l in layers if isinstance(l, Connected))  # untouched


def test_widths_are_recorded_at_build():
    assert small_net().widths == [2, 8, 8, 8, 8, 8, 3, 3]


def test_save_load_round_trip_is_bit_exact(tmp_path):
    net = small_net()
    net.params[...] = np.random.default_rng(0).standard_normal(net.n_params)
    net.save(tmp_path / "m.npz", meta={"epochs": 3}, extras={"image": np.arange(6, dtype=np.uint8)})
    again, meta, extras = Network.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(again.params, net.params)
    assert again.get_config() == net.get_config() and meta == {"epochs": 3}
    np.testing.assert_array_equal(extras["image"], np.arange(6))
    X = np.random.default_rng(1).uniform(-1, 1, (10, 2)).astype(np.float32)
    np.testing.assert_array_equal(again.predict(X), net.predict(X))
    assert not list(tmp_path.glob(".*tmp"))  # no temporary left behind


def test_model_files_are_deflated_and_uncompressed_ones_still_load(tmp_path):
    """Deflate (np.savez_compressed) takes the file close to the weights'
    own bytes; a file written uncompressed (earlier versions) loads the same."""
    import zipfile
    net = small_net()
    net.save(tmp_path / "m.npz", meta={"epochs": 3})
    with zipfile.ZipFile(tmp_path / "m.npz") as z:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist())
    _rewrite(tmp_path / "m.npz", tmp_path / "plain.npz")
    with zipfile.ZipFile(tmp_path / "plain.npz") as z:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
    again, meta, _ = Network.load(tmp_path / "plain.npz")
    np.testing.assert_array_equal(again.params, net.params)
    assert meta == {"epochs": 3}


def _rewrite(src, dst, drop=(), replace=None):
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k not in drop}
    arrays.update(replace or {})
    np.savez(dst, **arrays)


@pytest.mark.parametrize("damage,message", [
    ("truncate", "not a readable"),
    ("not_zip", "not a readable"),
    ("missing", "'params' array is missing"),
    ("pickle", "pickled object array"),
    ("version", "format version"),
    ("shape", "shape"),
    ("nan", "NaN"),
    ("config", "invalid config"),
])
def test_damaged_files_are_refused(tmp_path, damage, message):
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    small_net().save(good)
    if damage == "truncate":
        bad.write_bytes(good.read_bytes()[:-200])
    elif damage == "not_zip":
        bad.write_text("hello")
    elif damage == "missing":
        _rewrite(good, bad, drop=("params",))
    elif damage == "pickle":
        _rewrite(good, bad, replace={"params": np.array([{"evil": 1}], dtype=object)})
        bad.write_bytes(bad.read_bytes())
    elif damage == "version":
        _rewrite(good, bad, replace={"format_version": np.array(99)})
    elif damage == "shape":
        _rewrite(good, bad, replace={"params": np.zeros(5, np.float32)})
    elif damage == "nan":
        p = np.load(good)["params"].copy()
        p[0] = np.nan
        _rewrite(good, bad, replace={"params": p})
    elif damage == "config":
        _rewrite(good, bad, replace={"config": np.array('{"layers": [{"type": "conected"}]}')})
    with pytest.raises(ModelFileError, match=message):
        Network.load(bad)


def test_the_readmes_library_example_runs(tmp_path, monkeypatch):
    import os
    import re
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    text = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    code = re.search(r"## The network as a library.*?```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "xor.npz").exists()


def test_a_wrong_input_width_is_named():
    with pytest.raises(ValueError, match=r"X must have 2 values on its last axis .* got shape \(4, 3\)"):
        small_net().forward(np.zeros((4, 3), np.float32))
