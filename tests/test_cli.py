import json
import os
import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from nncompress import __version__
from nncompress.cli import app

runner = CliRunner()
TINY = ["--layers", "8:relu,out:sigmoid", "--epochs", "6", "--frames", "3", "--batch-size", "16", "-q"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _commands():
    """The app itself and every command registered on it."""
    import typer.main
    return [[]] + [[name] for name in sorted(typer.main.get_command(app).commands)]


@pytest.mark.parametrize("cmd", _commands(), ids=lambda c: c[0] if c else "app")
def test_every_command_has_help(cmd):
    r = run(*cmd, "--help")
    assert r.exit_code == 0 and "Usage" in r.output
    assert "--help" in r.output and (not cmd or len(r.output.splitlines()) > 5)


def test_help_covers_the_commands_the_readme_names():
    assert {"train", "upscale", "animate", "info", "evaluate"} <= {c[0] for c in _commands() if c}


def test_version():
    r = run("--version")
    assert r.exit_code == 0 and __version__ in r.output


def test_train_writes_every_promised_file(tmp_path, digit):
    out = tmp_path / "run"
    r = run("train", digit, *TINY, "--scale", 3, "-o", out)
    assert r.exit_code == 0, r.output
    assert Image.open(out / "digit_3_x3.png").size == (84, 84)
    gif = Image.open(out / "digit_3_training.gif")
    assert gif.n_frames == len(list((out / "frames").glob("epoch_*.png"))) >= 3
    lines = (out / "history.csv").read_text().splitlines()
    assert lines[0] == "epoch,loss,psnr_db,seconds" and len(lines) == 7
    assert (out / "model.npz").exists()


def test_quiet_prints_nothing(tmp_path, digit):
    r = run("train", digit, "-e", 10, "--frames", 3, "-q", "-o", tmp_path / "q")
    assert r.exit_code == 0 and r.output == ""  # a run that learns: no warning either


def test_a_useless_result_says_so_and_still_exits_0(tmp_path, digit):
    r = run("train", digit, "-l", "8:relu,out:sigmoid", "-e", 5, "--frames", 0, "--optimizer", "sgd",
            "--lr", "1e6", "-q", "-o", tmp_path / "u")
    assert r.exit_code == 0, r.output
    assert "no better than a flat image of the mean colour" in r.output
    assert "another --lr (now 1e+06; smaller if the loss jumps about)" in r.output and "more --epochs" in r.output


def test_plain_progress_when_not_a_terminal(tmp_path, digit):
    r = run("train", digit, "--layers", "8:relu,out:sigmoid", "-e", "3", "--frames", "0", "-o", tmp_path / "p")
    assert r.exit_code == 0
    assert "epoch 3/3" in r.output and "dB" in r.output and "rows/s" in r.output


@pytest.mark.parametrize("scale,size", [(2, (56, 56)), (2.5, (70, 70)), (0.5, (14, 14)), (1.3, (36, 36))])
def test_upscale_sizes_are_exact(tmp_path, digit, scale, size):
    run("train", digit, *TINY, "-o", tmp_path / "r")
    out = tmp_path / "up.png"
    r = run("upscale", tmp_path / "r" / "model.npz", "--scale", scale, "-o", out)
    assert r.exit_code == 0, r.output
    assert Image.open(out).size == size


def test_upscale_width_height(tmp_path, rgb_image):
    run("train", rgb_image, *TINY, "-o", tmp_path / "r")
    out = tmp_path / "wh.png"
    assert run("upscale", tmp_path / "r" / "model.npz", "--width", 100, "--height", 33, "-o", out).exit_code == 0
    im = Image.open(out)
    assert im.size == (100, 33) and im.mode == "RGB"
    assert run("upscale", tmp_path / "r" / "model.npz", "--width", 64, "-o", out).exit_code == 0
    assert Image.open(out).size == (64, 48)  # aspect kept


def test_animate_makes_a_multi_panel_gif(tmp_path, digit):
    for name in ("a", "b"):
        run("train", digit, *TINY, "-o", tmp_path / name)
    out = tmp_path / "cmp.gif"
    r = run("animate", tmp_path / "a", tmp_path / "b", "-o", out, "--labels", "first,second", "--size", 64)
    assert r.exit_code == 0, r.output
    gif = Image.open(out)
    assert gif.n_frames >= 3 and gif.width > 2 * 64


def test_info_reports_parameter_count(tmp_path, digit):
    run("train", digit, *TINY, "-o", tmp_path / "r")
    r = run("info", tmp_path / "r" / "model.npz", "--json")
    facts = json.loads(r.output)
    assert facts["parameters"] == (2 * 8 + 8) + (8 + 1) and facts["mode"] == "coords"
    assert facts["epochs"] == 6
    r = run("info", tmp_path / "r" / "model.npz")
    assert r.exit_code == 0 and "33" in r.output and "bits per pixel" in r.output


def test_yaml_and_flags_give_the_same_network(tmp_path, digit):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("layers:\n  - {units: 8, activation: leaky_relu, arg: 0.2}\n  - {fourier: 4, sigma: 3}\n"
                   "  - out:sigmoid\nepochs: 2\nframes: 0\n")
    run("train", digit, "-c", cfg, "-q", "-o", tmp_path / "y")
    run("train", digit, "-l", "8:leaky_relu(0.2),fourier:4:3,out:sigmoid", "-e", 2, "--frames", 0, "-q",
        "-o", tmp_path / "f")
    a = np.load(tmp_path / "y" / "model.npz")
    b = np.load(tmp_path / "f" / "model.npz")
    assert str(a["config"]) == str(b["config"])
    np.testing.assert_array_equal(a["params"], b["params"])


def test_seed_reproduces_a_run_exactly(tmp_path, digit):
    for name in ("a", "b"):
        run("train", digit, *TINY, "--seed", 3, "--optimizer", "adam", "-o", tmp_path / name)
    np.testing.assert_array_equal(np.load(tmp_path / "a" / "model.npz")["params"],
                                  np.load(tmp_path / "b" / "model.npz")["params"])


def test_resume_continues_training(tmp_path, digit):
    run("train", digit, *TINY, "-o", tmp_path / "r")
    r = run("train", digit, "--resume", tmp_path / "r" / "model.npz", "-e", 10, "-q", "-o", tmp_path / "r2")
    assert r.exit_code == 0, r.output  # --epochs is the total: 4 more
    facts = json.loads(run("info", tmp_path / "r2" / "model.npz", "--json").output)
    assert facts["epochs"] == 10
    assert len((tmp_path / "r2" / "history.csv").read_text().splitlines()) == 1 + 10  # the first run's rows kept


def test_python_dash_m():
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "nncompress", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and __version__ in r.stdout


@pytest.mark.parametrize("args,says", [(["upscale", "x.png", "--scale", "abc"], "Invalid value for '--scale'"),
                                       (["upscale", "--bogus"], "No such option: --bogus"),
                                       (["frobnicate"], "No such command 'frobnicate'"),
                                       (["info"], "Missing argument")])
def test_a_bad_flag_or_value_is_one_line_and_exit_2(args, says):
    """What Typer itself rejects reads like every other bad input: one
    line on stderr that names the command's help, exit 2."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "nncompress", *args], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and says in r.stderr, r.stderr
    assert "--help" in r.stderr and r.stdout == ""


def test_no_arguments_shows_the_help_and_exits_2():
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "nncompress"], capture_output=True, text=True)
    assert r.returncode == 2 and "Usage" in r.stdout + r.stderr and "error:" not in r.stderr


def _options(cmd):
    import typer.main
    group = typer.main.get_command(app)
    command = group.commands[cmd[0]] if cmd else group
    return [p for p in command.params if p.param_type_name == "option"]


@pytest.mark.parametrize("cmd", _commands(), ids=lambda c: c[0] if c else "app")
def test_help_shows_real_defaults_flags_and_examples(cmd):
    r = runner.invoke(app, [*cmd, "--help"], env={"COLUMNS": "240"})
    text = r.output
    for p in _options(cmd):
        if p.is_flag:  # on/off: no value type, no default text
            line = next(l for l in text.splitlines() if p.opts[0] + " " in l or l.rstrip().endswith(p.opts[0]))
            assert "<bool>" not in line, line
        else:
            assert p.show_default or p.default is not None, f"{p.opts[0]} shows no default"
    import re
    assert "[default: ]" not in text and "[default: ()]" not in text
    assert not re.search(r"\w \.(\s|$)", text), "a default written into the help text was eaten as markup"
    assert "<bool>" not in text
    after = text.split("Examples", 1)[1] if "Examples" in text else ""
    examples = [l for l in after.splitlines() if l.strip().strip("│").strip().startswith("nncompress ")]
    assert 2 <= len(examples) <= 4, text


def test_help_defaults_are_the_real_ones():
    from nncompress.cli import MODE_DEFAULTS
    from nncompress.modes import get_mode
    from nncompress.spec import make_settings
    coords, patch = make_settings({}), make_settings({}, mode="patch")
    for key, shown in MODE_DEFAULTS.items():
        if key == "mode":
            assert shown == coords.mode
            continue
        a, b = getattr(coords, key), getattr(patch, key)
        text = f"{a:g}" if isinstance(a, float) else str(a)
        assert shown.split(";")[0] == text, (key, shown)
        other = f"{b:g}" if isinstance(b, float) else str(b)
        assert other == text or shown.replace(", ", ",").endswith(f"patch: {other}"), (key, shown)  # (spaces to wrap)
    assert get_mode("patch").PRESETS[patch.preset]["epochs"] == patch.epochs


@pytest.mark.parametrize("args,says", [
    (["--layers", "conv3:8:relu,conv3:out"], "conv and shuffle items are for patch mode: add --mode patch"),
    (["--mode", "patch", "--layers", "20:relu,conv3:out"], "layer item 1: patch mode's network is convolutional"),
    (["--mode", "patch", "--layers", "conv3:8:relu,fourier:8:2,conv3:out"], "layer item 2: patch mode's")])
def test_layers_a_mode_cannot_take_are_bad_input(tmp_path, args, says):
    """Conv items in coords mode, dense or fourier items in patch mode: one
    line and exit 2 before any work (they crashed inside the kernels)."""
    img = tmp_path / "p.png"
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(img)
    r = run("train", img, *args, "-e", 1, "--frames", 0, "-q", "-o", tmp_path / "run")
    assert r.exit_code == 2 and says in r.output and "internal error" not in r.output, r.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("resume", [False, True])
def test_pretrain_interrupted_before_an_epoch_says_what_holds_the_work(tmp_path, monkeypatch, resume):
    """Ctrl-C before the first epoch ends: no file claims to hold an epoch
    that was never written; with --resume, the resumed file still does."""
    import nncompress.pretrain

    def stop(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(nncompress.pretrain, "pretrain", stop)
    (tmp_path / "imgs").mkdir()
    old = tmp_path / "old.npz"
    if resume:
        old.write_bytes(b"")
    r = run("pretrain", tmp_path / "imgs", "-s", 2, "-o", tmp_path / "new.npz", *(["--resume", old] if resume else []))
    assert r.exit_code == 130
    lines = [l for l in r.output.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted: "), r.output
    if resume:
        assert f"{old} holds the last whole epoch" in r.output and f"--resume {old}" in r.output
    else:
        assert "nothing was written" in r.output and "--resume" not in r.output


def test_frames_0_writes_no_frames_folder_and_info_reads_plainly(tmp_path):
    img = tmp_path / "p.png"
    Image.fromarray((np.arange(24 * 24 * 3) % 251).astype(np.uint8).reshape(24, 24, 3)).save(img)
    r = run("train", img, "--mode", "patch", "--prior", "none", "--preset", "fast", "-e", 1, "--steps", 2,
            "--frames", 0, "-q", "-o", tmp_path / "run")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "model.npz").exists() and not (tmp_path / "run" / "frames").exists()
    shown = run("info", tmp_path / "run" / "model.npz").output
    facts = [l for l in shown.splitlines() if re.match(r"\s*(learned|psnr)", l)]
    assert facts and not any("None" in l or re.search(r"\d\.0\b|\d{6}", l) for l in facts), facts
    r = run("train", img, "--mode", "patch", "--preset", "fast", "--frames", 0, "-q", "-o", tmp_path / "big")
    shown = run("info", tmp_path / "big" / "model.npz").output  # an upscaler: its bits per pixel measure nothing
    assert r.exit_code == 0 and "bits per pixel" not in shown and re.search(r"file bytes\s+\d", shown), shown
    assert "trained with                      nothing trained" in shown and "learned: detail gain" in shown, shown


def test_layers_and_a_prior_as_flags_contradict(tmp_path):
    img = tmp_path / "p.png"
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(img)
    r = run("train", img, "--mode", "patch", "--prior", "builtin", "--layers", "conv3:8:relu,conv3:out", "-q")
    assert r.exit_code == 2 and "drop --layers, or use --prior none" in r.output, r.output
    from nncompress.spec import load_config, make_settings
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    s = make_settings(load_config(os.path.join(root, "configs", "patch.yaml")))  # a config holds both: its layers are --prior none's
    assert s.prior == "builtin"


def test_animate_refuses_a_name_that_is_not_a_gif(tmp_path, digit):
    run("train", digit, *TINY, "-o", tmp_path / "a")
    r = run("animate", tmp_path / "a", "-o", tmp_path / "a.png")
    assert r.exit_code == 2 and "ending in .gif" in r.output and not (tmp_path / "a.png").exists()
    r = run("animate", tmp_path / "a", "-o", tmp_path / "new" / "a.gif")
    assert r.exit_code == 0 and Image.open(tmp_path / "new" / "a.gif").n_frames >= 2, r.output


def test_a_new_run_into_an_old_run_folder_drops_its_frames(tmp_path, digit):
    run("train", digit, *TINY[:-3], "--frames", "6", "-q", "-o", tmp_path / "r")
    first = sorted(os.listdir(tmp_path / "r" / "frames"))
    run("train", digit, *TINY[:-3], "--frames", "2", "-q", "-o", tmp_path / "r", "--force")
    run("train", digit, *TINY[:-3], "--frames", "2", "-q", "-o", tmp_path / "fresh")
    again = sorted(os.listdir(tmp_path / "r" / "frames"))
    assert len(first) > len(again) and again == sorted(os.listdir(tmp_path / "fresh" / "frames"))


def test_evaluate_checks_its_outputs_first_and_makes_missing_folders(tmp_path, digit):
    (tmp_path / "afile").write_text("x")
    r = run("evaluate", digit, "--methods", "bicubic", "--json", tmp_path / "afile" / "s.json")
    assert r.exit_code == 2 and "is a file, not a folder" in r.output, r.output
    r = run("evaluate", digit, "--methods", "bicubic", "--json", tmp_path)
    assert r.exit_code == 2 and "is a folder; give a file name" in r.output, r.output
    r = run("evaluate", digit, "--methods", "bicubic", "--save", tmp_path / "afile")
    assert r.exit_code == 2 and "is a file; give a folder" in r.output, r.output
    r = run("evaluate", digit, "--methods", "bicubic", "-q", "--json", tmp_path / "new" / "s.json")
    assert r.exit_code == 0 and "bicubic" in json.loads((tmp_path / "new" / "s.json").read_text())["mean"]


def test_image_only_options_with_a_model_are_named_as_ignored(tmp_path, digit):
    run("train", digit, *TINY, "-o", tmp_path / "r")
    r = run("upscale", tmp_path / "r" / "model.npz", "-s", 2, "--preset", "fast", "-o", tmp_path / "m.png")
    assert r.exit_code == 0 and "--preset applies to images only, and is ignored" in r.output, r.output


def test_info_rows_read_right(tmp_path, digit):
    from nncompress.cli import _loss_text
    assert _loss_text(0.000431, noted=True) == "0.000431 (mse)"  # a fine-tuned model has a note and a loss
    assert _loss_text(None, noted=True).startswith("none (nothing was trained")
    run("train", digit, *TINY, "-o", tmp_path / "r")
    facts = json.loads(run("info", tmp_path / "r", "--json").output)
    text = run("info", tmp_path / "r").output
    bpp = facts["bits_per_pixel_file"]
    assert f"bits per pixel file     {bpp:.1f}\n" in text and bpp > 10
    rows = [line for line in text.splitlines() if line.startswith(" ") and "model.npz" not in line]
    assert len(rows) > 10 and not any(line.endswith(" ") for line in rows)  # no table padding after the values


def test_animate_refuses_an_unwritable_path_first(tmp_path, digit):
    run("train", digit, *TINY, "-o", tmp_path / "a")
    (tmp_path / "afile").write_text("x")
    r = run("animate", tmp_path / "a", "-o", tmp_path / "afile" / "a.gif")
    assert r.exit_code == 2 and "is a file, not a folder" in r.output, r.output


def test_drawing_the_frames_is_timed_apart_from_training(tmp_path, digit):
    r = run("train", digit, *TINY[:-1], "-o", tmp_path / "r")
    assert "frames " in r.output.split("time:")[1], r.output
    facts = json.loads(run("info", tmp_path / "r", "--json").output)
    assert facts["seconds_frames"] >= 0 and facts["seconds_training"] >= 0  # (each a few ms here: rounded, maybe 0)
    run("train", digit, *TINY, "--frames", 0, "-o", tmp_path / "none")
    assert "seconds_frames" not in json.loads(run("info", tmp_path / "none", "--json").output)


def test_animate_captions_each_panel_and_warns_of_mixed_modes(tmp_path, digit, monkeypatch):
    """Each panel says its own epoch out of its run's last, and 'done' with
    the model's PSNR once it has finished (a shorter run holds its last
    frame); runs of different modes are compared with a warning."""
    from nncompress import runs
    run("train", digit, *TINY, "-o", tmp_path / "a")
    run("train", digit, "-l", "8:relu,out:sigmoid", "-e", 2, "--frames", 2, "-q", "-o", tmp_path / "short")
    mode, psnr, planned = runs._run_record(tmp_path / "a")
    assert mode == "coords" and psnr > 0 and planned == 6 and runs._run_record(tmp_path / "none") == (None,) * 3
    seen = []
    monkeypatch.setattr(runs.ImageDraw.ImageDraw, "text", lambda self, xy, text, **kw: seen.append(text))
    r = run("animate", tmp_path / "a", tmp_path / "short", "-o", tmp_path / "c.gif", "--size", 64)
    assert r.exit_code == 0, r.output
    last = max(int(t.split("/")[1].split(",")[0]) for t in seen if t.startswith("epoch ") and "/" in t)
    assert f"epoch {last}/{last}, done: {psnr:.2f} dB" in seen and any(t.startswith("epoch 2/2, done: ") for t in seen)
    meta = tmp_path / "p"
    meta.mkdir()
    (meta / "frames").mkdir()
    Image.open(next((tmp_path / "a" / "frames").iterdir())).save(meta / "frames" / "epoch_000001.png")
    monkeypatch.setattr(runs, "_run_record", lambda d: ("patch", None, 2) if str(d).endswith("p") else ("coords", 30.0, 6))
    r = run("animate", tmp_path / "a", meta, "-o", tmp_path / "d.gif", "--size", 64)
    assert r.exit_code == 0 and "different modes (coords, patch)" in r.output, r.output


def test_evaluate_keeps_two_images_of_one_name_apart(tmp_path):
    """cc/rocket.jpg and mixed/rocket.jpg were one row (the mean wrong) and
    one saved file; a file given twice is evaluated once."""
    import json
    rng = np.random.default_rng(0)
    for d in ("cc", "mixed"):
        (tmp_path / d).mkdir()
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / d / "rocket.png")
    again = tmp_path / "cc" / ".." / "cc" / "rocket.png"
    r = run("evaluate", tmp_path / "cc" / "rocket.png", tmp_path / "mixed" / "rocket.png", again, "--methods", "bicubic",
            "--json", tmp_path / "r.json", "--save", tmp_path / "s")
    assert r.exit_code == 0 and "evaluated once" in r.output, r.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert list(report["images"]) == ["cc/rocket.png", "mixed/rocket.png"]
    assert report["images"]["cc/rocket.png"]["size"] == [48, 40] and report["preset"] == "balanced"
    assert sorted(os.listdir(tmp_path / "s")) == ["cc_rocket_x2_bicubic.png", "mixed_rocket_x2_bicubic.png"]


def test_animate_calls_a_patch_run_its_mode_ended_done(tmp_path, rgb_image):
    """A prior alone (or a fine-tune a held-out strip stopped) is done
    though it trained fewer epochs than planned."""
    from nncompress import runs
    r = run("train", rgb_image, "--mode", "patch", "--scale", 2, "--preset", "fast", "--frames", 2, "-q", "-o", tmp_path / "p")
    assert r.exit_code == 0, r.output
    mode, psnr, planned = runs._run_record(tmp_path / "p")
    assert mode == "patch" and psnr is not None and planned is None


def test_patch_options_without_mode_patch_are_refused(tmp_path, digit):
    """train --prior mine.npz --preset fast (no --mode patch) trained a
    coords network for 300 epochs and exited 0: the options were dropped."""
    for flags, said in [(["--prior", "builtin"], "--prior is a patch-mode option; add --mode patch"),
                        (["--preset", "fast", "--steps", "5"], "--preset, --steps are patch-mode options")]:
        r = run("train", digit, *flags, "-o", tmp_path / "r", "-q")
        assert r.exit_code == 2 and said in r.output, r.output
        assert not (tmp_path / "r").exists()


def test_evaluate_quiet_keeps_its_results_and_methods_count_once(tmp_path, digit):
    r = run("evaluate", digit, "--methods", "bicubic,bicubic,nearest", "-q")
    assert r.exit_code == 0 and "bicubic" in r.output and "mean" in r.output, r.output
    header = next(l for l in r.output.splitlines() if "bicubic" in l)
    assert header.count("bicubic") == 1 and "nearest" in header


def test_upscaling_a_prior_file_says_what_it_is(tmp_path):
    from nncompress.prior import builtin_path
    r = run("upscale", builtin_path(2), "-s", 2, "-o", tmp_path / "x.png")
    assert r.exit_code == 2 and "is a prior (nncompress pretrain), not a model of one image" in r.output, r.output
    assert "nncompress upscale IMAGE --prior" in r.output


def test_a_strip_ended_fine_tune_keeps_only_the_frames_it_holds(tmp_path, monkeypatch):
    """The held-out strip kept an earlier epoch: history.csv and the GIF
    stopped there, but frames/ (which animate reads) held the discarded
    epochs too."""
    from nncompress import patch
    from nncompress.runs import read_frames
    img = tmp_path / "p.png"
    Image.fromarray((np.arange(96 * 96 * 3) % 251).astype(np.uint8).reshape(96, 96, 3)).save(img)
    monkeypatch.setattr(patch, "HOLDOUT_MIN", 1)  # a strip on this small image
    r = run("train", img, "--mode", "patch", "--scale", 2, "-e", 6, "--steps", 2, "--crop", 16, "--lr", "0.01",
            "--frames", 6, "-q", "-o", tmp_path / "r")  # kept epoch 1 of 4 trained (frames of 0, 1, 2, 4 were left)
    assert r.exit_code == 0, r.output
    model = json.loads(str(np.load(tmp_path / "r" / "model.npz")["meta"]))
    frames = [e for e, _ in read_frames(tmp_path / "r")]
    assert model["state"]["kept_epoch"] == model["epochs"] and frames[-1] == model["epochs"], (model, frames)
