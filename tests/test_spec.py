import pytest

from nncompress.spec import SpecError, load_config, make_settings, network_config, parse_layers, format_items
from nncompress import Network


@pytest.mark.parametrize("text", [
    "20:leaky_relu,20:leaky_relu,1:sigmoid",
    "20:leaky_relu,20:leaky_relu,out:sigmoid",
    "64:leaky_relu(0.2),out",
    "fourier:64:10,256:sine(30),out",
    "256:sine(30),256:sine(30),256:sine(30),3",
    "16,out:tanh",
])
def test_examples_parse_and_build(text):
    items = parse_layers(text)
    out = 3 if text.endswith(",3") else 1
    net = Network.from_config(network_config(items, 2, out))
    assert net.out_size == out
    assert parse_layers(format_items(items)) == items


def test_a_conv_in_groups_parses_builds_and_reads_back():
    """convK:C/G: what `nncompress info` shows for an averaged prior."""
    from nncompress.spec import build_network, network_text
    text = "conv5:8:relu,conv3:8/2:relu,conv3:out,shuffle:2"
    items = parse_layers(text)
    assert items[1]["groups"] == 2 and parse_layers(format_items(items)) == items
    net = build_network(text, 1, 1)
    assert net.layers[3].groups == 2 and network_text(net) == text.replace("out", "4")
    assert parse_layers([{"conv": 3, "units": 8, "groups": 2, "activation": "relu"}, "conv3:out"])[0] == items[1]
    for bad in ("conv3:7/2:relu,conv3:out", "conv3:8/0,conv3:out", "8/2:relu,out", "conv3:out/2"):
        with pytest.raises(SpecError):
            parse_layers(bad)
    with pytest.raises(SpecError, match="do not fit.*6"):  # 6 channels do not split into 4 groups
        build_network("conv3:6:relu,conv3:8/4:relu,conv3:out", 1, 1)


@pytest.mark.parametrize("text,message", [
    ("20:leaky_rel,out", "item 1.*did you mean 'leaky_relu'"),
    ("20:relu,,out", "item 2 is empty"),
    ("0:relu,out", "item 1.*positive"),
    ("-3:relu,out", "item 1.*positive"),
    ("abc:relu,out", "item 1.*whole number"),
    ("out,20", "'out' may only"),
    ("20:relu,fourier:8:2", "last layer item"),
    ("20:sine(x),out", "number"),
    ("fourier:8:0,out", "positive"),
])
def test_bad_items_are_named(text, message):
    with pytest.raises(SpecError, match=message):
        parse_layers(text)


def test_output_width_must_match_channels():
    with pytest.raises(SpecError, match="3 channel.*write 3 or 'out'"):
        network_config(parse_layers("8:relu,1:sigmoid"), 2, 3)


def test_unknown_yaml_key_lists_valid_keys(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("epoch: 3\n")
    with pytest.raises(SpecError, match="unknown key 'epoch'.*did you mean 'epochs'.*valid keys:.*batch_size"):
        load_config(p)


def test_yaml_syntax_error_reports_the_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("epochs: 3\nlayers: [a, b\nlr: 0.1\n")
    with pytest.raises(SpecError, match="line [34]"):
        load_config(p)


@pytest.mark.parametrize("key,value,message", [
    ("lr", -0.1, r"--lr \(lr: in a config\) must be a positive"), ("lr", float("nan"), "lr: in a config. must be"),
    ("epochs", -1, "epochs: in a config. must be a whole number >= 1"), ("epochs", 0, "must be a whole number >= 1"),
    ("batch_size", -2, r"--batch-size \(batch_size: in a config\) must be a whole number >= 0"), ("scale", 0.0, "scale"),
    ("scale", float("nan"), "scale"), ("optimizer", "adamw", "did you mean 'adam'"),
])
def test_bad_settings_are_refused(key, value, message):
    with pytest.raises(SpecError, match=message):
        make_settings(**{key: value})
