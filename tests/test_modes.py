"""Modes share one interface, their defaults are applied in one place, and
nothing outside the registry branches on a mode's name."""

import os
import re

import pytest
from typer.testing import CliRunner

from nncompress.cli import app
from nncompress.compresser import Compresser
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
    assert got.layers == get_mode("patch").DEFAULTS["layers"] and got.batch_size == 64


def test_a_flag_overrides_a_mode_default_only_when_given():
    s = make_settings(mode="patch", layers="8:relu,out", lr=None)
    assert s.layers == "8:relu,out" and s.lr == get_mode("patch").DEFAULTS["lr"]
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
