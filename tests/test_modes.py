"""Modes share one interface, their defaults are applied in one place, and
nothing outside the registry branches on a mode's name."""

import json
import os
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from nncompress.cli import app
from nncompress.compresser import Compresser
from nncompress.errors import ModelFileError
from nncompress.modes import MODES, State, get_mode
from nncompress.spec import load_config, make_settings

from conftest import ROOT

INTERFACE = ["NAME", "DEFAULTS", "TAKES_IMAGE", "OUTPUT_BYTES_PER_VALUE", "State", "network", "train", "score",
             "preview", "upscale", "describe", "loss_psnr"]


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("name", list(MODES))
def test_every_mode_has_the_whole_interface(name):
    mode = get_mode(name)
    missing = [a for a in INTERFACE if not hasattr(mode, a)]
    assert not missing and mode.NAME == name and mode.DEFAULTS["mode"] == name
    assert issubclass(mode.State, State)
    assert mode.State.from_dict(mode.State().to_dict()) == mode.State()


def test_patch_yaml_is_patch_mode_defaults():
    assert make_settings(mode="patch") == make_settings(load_config(os.path.join(ROOT, "configs", "patch.yaml")))


def test_train_mode_patch_runs_with_patch_defaults_and_the_flags_given(tmp_path, digit):
    """`train --mode patch` once ran with coords mode's layers and epochs."""
    r = cli("train", digit, "--mode", "patch", "-e", 1, "--frames", 0, "-q", "-o", tmp_path / "p")
    assert r.exit_code == 0, r.output
    got = Compresser.load(tmp_path / "p" / "model.npz").settings
    patch_yaml = load_config(os.path.join(ROOT, "configs", "patch.yaml"))
    assert got == make_settings(patch_yaml, epochs=1, frames=0)
    balanced = get_mode("patch").PRESETS["balanced"]
    assert got.prior == "builtin" and got.batch_size == balanced["batch_size"] == 16
    assert got.layers == get_mode("patch").DEFAULTS["layers"] and got.layers.startswith("conv3:32")


def test_a_flag_overrides_a_mode_default_only_when_given():
    s = make_settings(mode="patch", layers="conv3:8:relu,conv3:out", lr=None)
    assert s.layers == "conv3:8:relu,conv3:out" and s.lr == get_mode("patch").DEFAULTS["lr"]
    assert make_settings({"epochs": 3}, mode="patch").epochs == 3  # the config over the mode
    assert make_settings({"epochs": 3}, mode="patch", epochs=5).epochs == 5  # the flag over the config


def test_no_branch_on_a_mode_name_outside_the_registry():
    src = os.path.join(ROOT, "src", "nncompress")
    names = "|".join(MODES)
    pattern = re.compile(rf"""[!=]=\s*["']({names})["']|["']({names})["']\s*[!=]=""")
    hits = []
    for f in sorted(os.listdir(src)):
        if f.endswith(".py") and f != "modes.py":
            for i, line in enumerate(open(os.path.join(src, f)), 1):
                if pattern.search(line):
                    hits.append(f"{f}:{i}: {line.strip()}")
    assert not hits, hits


# ------------------------------------------------------- settings and state

def _trained(tmp_path, mode, **flags):
    img = np.random.default_rng(0).random((24, 24, 3)).astype(np.float32)
    small = (dict(layers="conv3:4:relu,conv3:out", steps=2, batch_size=2, crop=16) if mode == "patch"
             else dict(layers="8:relu,out"))
    s = make_settings(mode=mode, epochs=1, frames=0, **small, **flags)
    comp, _ = Compresser.for_image(img, 8, s)
    comp.train(img, s)
    comp.save(tmp_path / "m.npz")
    return comp, tmp_path / "m.npz"


@pytest.mark.parametrize("mode", list(MODES))
def test_settings_and_state_round_trip_through_the_model_file(tmp_path, mode):
    comp, path = _trained(tmp_path, mode, lr=0.0123456789, seed=5)
    again = Compresser.load(path)
    assert again.settings == comp.settings and again.state == comp.state
    assert type(again.state) is get_mode(mode).State


def test_settings_hold_only_what_the_user_chose(tmp_path):
    comp, path = _trained(tmp_path, "patch")
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
    assert set(meta["settings"]) == set(comp.settings.to_dict()) and "extra" not in meta["settings"]
    assert set(meta["state"]) == {"mean", "spread", "alpha", "train_scale", "finetune", "lowres", "kept_epoch"} and meta["state"]["spread"] > 0


def test_a_layer_argument_survives_the_round_trip():
    s = make_settings(layers="8:leaky_relu(0.123456789),fourier:4:2.5,out")
    assert s.layers == "8:leaky_relu(0.123456789),fourier:4:2.5,out"
    assert make_settings(layers=[{"units": 8, "activation": "relu"}, "out"]).layers == "8:relu,out"


def test_format_1_files_with_state_in_settings_extra_still_load(tmp_path):
    comp, path = _trained(tmp_path, "patch")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    meta["settings"]["extra"] = meta.pop("state")  # the layout before the state had its own key
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **arrays)
    old = Compresser.load(tmp_path / "old.npz")
    assert old.state == comp.state and old.settings == comp.settings


def test_a_bad_learned_state_is_refused_in_one_line(tmp_path):
    _, path = _trained(tmp_path, "patch")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    meta["state"]["spread"] = "wide"
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ModelFileError, match="learned spread must be a finite number"):
        Compresser.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("mode", list(MODES))
def test_format_1_files_load_or_are_refused_in_one_line(tmp_path, mode):
    """Format 2 added convolutions: a format-1 coords model still loads; a
    format-1 patch model (the patch MLP) is refused, saying what to do."""
    comp, path = _trained(tmp_path, mode)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["format_version"] = np.array(1)
    np.savez(tmp_path / "v1.npz", **arrays)
    if get_mode(mode).TAKES_IMAGE:
        with pytest.raises(ModelFileError, match="format 1 .*train it again"):
            Compresser.load(tmp_path / "v1.npz")
    else:
        assert Compresser.load(tmp_path / "v1.npz").settings == comp.settings
