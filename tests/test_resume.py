"""Exact resume: a run stopped at epoch 10 and resumed to 20 ends with the
same weights, bit for bit, as one that ran 20 epochs straight. Bit-exact
because the checkpoint restores the optimizer's moments and step count, the
schedule position and the RNG state, and the engine and its chunking are the
same on both paths."""

import csv
import os
import json
import shlex

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from nncompress import training
from nncompress.checkpoint import Checkpoint, path_for
from nncompress.cli import app
from nncompress.optimizers import get_optimizer
from nncompress.training import run_epochs

runner = CliRunner()
SMALL = ["-l", "8:relu,out:sigmoid", "-b", "16", "--optimizer", "adam", "--seed", "4", "--frames", "4"]
PATCH = ["--mode", "patch", "-l", "conv3:4:relu,conv3:out", "-b", "2", "--crop", "16", "--seed", "4", "--frames", "0", "--scale", "2"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def params(path):
    return np.load(path)["params"]


def history(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def interrupt_at(monkeypatch, epoch):
    """Ctrl-C inside the epoch loop just after epoch ``epoch``'s step, before
    its checkpoint: the worst moment (the weights moved; nothing recorded).
    Only the run's own training (with a checkpoint), not patch mode's
    calibration."""
    original = training.run_epochs

    def patched(net, opt, rng, step_epoch, **kw):
        if kw.get("checkpoint") is None:
            return original(net, opt, rng, step_epoch, **kw)

        def step(e):
            value = step_epoch(e)
            if e + 1 == epoch:
                raise KeyboardInterrupt
            return value
        return original(net, opt, rng, step, **kw)
    monkeypatch.setattr(training, "run_epochs", patched)


@pytest.mark.parametrize("flags", [SMALL, PATCH], ids=["coords", "patch"])
def test_stop_at_10_resume_to_20_equals_20_straight(tmp_path, digit, monkeypatch, flags):
    straight = tmp_path / "straight"
    assert run("train", digit, *flags, "-e", 20, "-q", "-o", straight).exit_code == 0

    stopped = tmp_path / "stopped"
    with monkeypatch.context() as m:
        interrupt_at(m, 11)
        r = run("train", digit, *flags, "-e", 20, "-q", "-o", stopped)
    assert r.exit_code == 130
    hint = r.output.strip().splitlines()[-1]
    assert hint.startswith("go on with: nncompress train ") and str(digit) in hint
    facts = json.loads(run("info", stopped / "model.npz", "--json").output)
    assert facts["epochs"] == 10 and len(history(stopped / "history.csv")) == 10
    assert path_for(stopped / "model.npz").endswith("model.checkpoint.npz")

    command = shlex.split(hint[len("go on with: "):])[1:]  # as printed, less the program name
    r = run(*command, "-q")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(params(stopped / "model.npz"), params(straight / "model.npz"))
    rows = history(stopped / "history.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, 21))  # appended, not overwritten
    assert [r["loss"] for r in rows] == [r["loss"] for r in history(straight / "history.csv")]
    facts = json.loads(run("info", stopped / "model.npz", "--json").output)
    assert facts["epochs"] == 20 == len(rows)


def test_epochs_is_the_total_and_a_finished_run_says_how_to_go_on(tmp_path, digit):
    out = tmp_path / "r"
    assert run("train", digit, *SMALL, "-e", 6, "-q", "-o", out).exit_code == 0
    r = run("train", digit, "--resume", out / "model.npz", "-q")
    assert r.exit_code == 2 and "--epochs" in r.output and "6" in r.output
    r = run("train", digit, "--resume", out / "model.npz", "-e", 9, "-q")  # same folder, 3 more
    assert r.exit_code == 0, r.output
    assert json.loads(run("info", out / "model.npz", "--json").output)["epochs"] == 9
    assert len(history(out / "history.csv")) == 9


def test_resume_without_image_uses_the_recorded_one_or_names_it(tmp_path, digit):
    import shutil
    img = tmp_path / "pic.png"
    shutil.copy(digit, img)
    out = tmp_path / "r"
    assert run("train", img, *SMALL, "-e", 4, "-q", "-o", out).exit_code == 0
    r = run("train", "--resume", out / "model.npz", "-e", 6, "-q")
    assert r.exit_code == 0, r.output
    img.unlink()
    r = run("train", "--resume", out / "model.npz", "-e", 8, "-q")
    assert r.exit_code == 2 and "pic.png" in r.output and "28x28" in r.output
    assert run("train", "-q").exit_code == 2


def test_a_checkpoint_of_other_weights_is_refused_with_a_warning(tmp_path, digit):
    a, b = tmp_path / "a", tmp_path / "b"
    for out, seed in ((a, 1), (b, 2)):
        assert run("train", digit, *SMALL[:-4], "--seed", seed, "-e", 3, "--frames", 0, "-q", "-o", out).exit_code == 0
    (a / "model.checkpoint.npz").write_bytes((b / "model.checkpoint.npz").read_bytes())
    r = run("train", digit, "--resume", a / "model.npz", "-e", 5)
    assert r.exit_code == 0 and "other weights" in r.output and "fresh optimizer state" in r.output


def test_ctrl_c_mid_epoch_goes_back_to_the_last_whole_epoch():
    from nncompress.network import Network
    net = Network([{"type": "input", "size": 2}, {"type": "connected", "units": 3}])
    opt = get_optimizer("adam", 0.1)
    opt.init_state(net.n_params)
    rng = np.random.default_rng(0)
    ck = Checkpoint()

    def step(e):
        net.params[:] += 1.0
        opt.t += 1
        rng.random()
        if e == 2:
            raise KeyboardInterrupt
        return 1.0

    with pytest.raises(KeyboardInterrupt):
        run_epochs(net, opt, rng, step, epochs=5, checkpoint=ck)
    assert ck.epoch == 2 and opt.t == 2 and np.array_equal(net.params, ck.params)
    assert rng.bit_generator.state == ck.rng


def test_resuming_into_another_runs_folder_drops_that_runs_frames(tmp_path, digit, rgb_image):
    import shutil
    from PIL import Image
    small = SMALL[:-2] + ["-q"]  # SMALL without its --frames
    run("train", rgb_image, *small, "-e", "12", "--frames", "12", "-o", tmp_path / "other")  # frames at epochs 0-12
    run("train", digit, *small, "-e", "3", "--frames", "2", "-o", tmp_path / "mine")  # frames at 0 and 3
    shutil.copytree(tmp_path / "mine", tmp_path / "mine2")
    r = run("train", "--resume", tmp_path / "mine" / "model.npz", *small, "-e", "6", "--frames", "2", "-o", tmp_path / "other")
    assert r.exit_code == 2 and "already holds a run (a coords model of rgb.png, 12 epochs)" in r.output, r.output
    r = run("train", "--resume", tmp_path / "mine" / "model.npz", *small, "-e", "6", "--frames", "2", "-o", tmp_path / "other",
            "--force")
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "other" / "rgb_training.gif").exists()  # the replaced run's GIF and upscale went with it
    assert not (tmp_path / "other" / "rgb_x4.png").exists() and (tmp_path / "other" / "digit_3_x4.png").exists()
    r = run("train", "--resume", tmp_path / "mine2" / "model.npz", *small, "-e", "6", "--frames", "2")  # in its own folder
    assert r.exit_code == 0, r.output
    frames = lambda d: sorted(p.name for p in (tmp_path / d / "frames").iterdir())
    assert frames("other") == frames("mine2") and "epoch_000003.png" in frames("mine2")  # its own earlier frames kept
    sizes = {Image.open(p).size for p in (tmp_path / "other" / "frames").iterdir()}
    assert sizes == {Image.open(next((tmp_path / "mine2" / "frames").iterdir())).size}  # none of rgb_image's frames


@pytest.mark.parametrize("change,said", [(["-l", "16:relu,out:sigmoid"], "the model's own network"),
                                         (["--seed", "5"], "the model's seed (4)"),
                                         (["--optimizer", "sgd"], "the model's optimizer (adam)")])
def test_resume_refuses_settings_it_cannot_honour(tmp_path, digit, change, said):
    """The network, its seed and the optimizer's state come from the model:
    a resume given others would train the old ones and record the new."""
    run("train", digit, *SMALL, "-e", "3", "-o", tmp_path / "r", "-q")
    args = [a for a in SMALL if a not in ("-l", "8:relu,out:sigmoid")] if change[0] == "-l" else list(SMALL)
    if change[0] != "-l":
        i = args.index(change[0])
        del args[i:i + 2]
    r = run("train", "--resume", tmp_path / "r" / "model.npz", *args, *change, "-e", "6", "-q")
    assert r.exit_code == 2 and said in r.output, r.output


def test_a_model_outlives_the_prior_file_it_started_from(tmp_path, rgb_image):
    """A model records the prior file it was fine-tuned from, but holds its
    own weights: moving that file must not stop it upscaling or resuming,
    and a resume keeps the model's start (a new --prior is refused)."""
    import shutil
    from nncompress.prior import builtin_path
    mine = tmp_path / "mine.npz"
    shutil.copy(builtin_path(2), mine)
    fast = ["--mode", "patch", "--scale", "2", "--preset", "fast", "--frames", "0", "-q"]
    r = run("train", rgb_image, *fast, "--prior", mine, "-o", tmp_path / "r")
    assert r.exit_code == 0, r.output
    mine.rename(tmp_path / "moved.npz")
    model = tmp_path / "r" / "model.npz"
    r = run("upscale", model, "--scale", "2", "-o", tmp_path / "up.png", "-q")
    assert r.exit_code == 0 and (tmp_path / "up.png").exists(), r.output
    r = run("info", model)
    assert r.exit_code == 0 and "mine.npz" in r.output, r.output
    # the model loads for a resume (a fast run is the prior alone, which a resume takes no further)
    finished = "the model is finished (the prior alone): --resume trains no further"
    r = run("train", rgb_image, "--resume", model, "--epochs", "2", "-q")
    assert r.exit_code == 2 and finished in r.output, r.output
    r = run("train", rgb_image, "--resume", model, "--epochs", "3", "--prior", "builtin", "-q")
    assert r.exit_code == 2 and "the model's prior" in r.output and "drop --prior" in r.output, r.output
    (tmp_path / "moved.npz").rename(mine)  # the same file named another way is the same prior
    r = run("train", rgb_image, "--resume", model, "--epochs", "3", "--prior", f"{tmp_path}/./{mine.name}", "-q")
    assert r.exit_code == 2 and finished in r.output, r.output
    # a config with --resume goes over the model's settings, not instead of them (its prior, its mode)
    (tmp_path / "more.yaml").write_text("epochs: 4\n")
    r = run("train", rgb_image, "--resume", model, "-c", tmp_path / "more.yaml", "-q")
    assert r.exit_code == 2 and finished in r.output, r.output


def test_a_coords_model_records_only_coords_settings(tmp_path, digit):
    r = run("train", digit, *SMALL, "-e", "2", "-o", tmp_path / "c", "-q")
    assert r.exit_code == 0, r.output
    meta = json.loads(str(np.load(tmp_path / "c" / "model.npz")["meta"]))
    assert meta["settings"]["mode"] == "coords" and meta["settings"]["seed"] == 4
    assert not {"preset", "prior", "crop", "steps", "ensemble", "color"} & set(meta["settings"]), meta["settings"]
    r = run("train", "--resume", tmp_path / "c" / "model.npz", "-e", "3", "-q")  # and it still resumes
    assert r.exit_code == 0, r.output


def test_ctrl_c_in_a_replacing_run_drops_the_replaced_runs_upscale_and_gif(tmp_path, digit, monkeypatch):
    """Ctrl-C saves the new run over the old model (so it can go on); the
    old run's x4 upscale and GIF must not stay beside an x2 model."""
    out = tmp_path / "r"
    assert run("train", digit, *SMALL, "-e", "3", "-o", out, "-q").exit_code == 0
    assert (out / "digit_3_x4.png").exists() and (out / "digit_3_training.gif").exists()
    interrupt_at(monkeypatch, 2)
    r = run("train", digit, *SMALL[:-2], "--frames", "0", "-e", "4", "--scale", "2", "-o", out, "--force")
    assert r.exit_code == 130, r.output
    assert not (out / "digit_3_x4.png").exists() and not (out / "digit_3_training.gif").exists()


@pytest.mark.parametrize("given,said", [(["--mode", "patch"], "the model's mode (coords), not patch; drop --mode"),
                                        (["-c", "MODE"], "the model's mode (coords), not patch; drop the config's mode")])
def test_resume_names_a_mode_it_cannot_change(tmp_path, digit, given, said):
    run("train", digit, *SMALL, "-e", "3", "-o", tmp_path / "r", "-q")
    (tmp_path / "m.yaml").write_text("mode: patch\n")
    given = [str(tmp_path / "m.yaml") if g == "MODE" else g for g in given]
    r = run("train", "--resume", tmp_path / "r" / "model.npz", *given, "-e", "6")
    assert r.exit_code == 2 and said in r.output, r.output


def test_a_replaced_run_comes_back_when_the_replacing_one_stops_early_or_is_killed(tmp_path, digit, monkeypatch):
    out = tmp_path / "r"
    assert run("train", digit, *SMALL, "-e", "4", "-o", out, "-q").exit_code == 0
    files = lambda: {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    before = files()
    interrupt_at(monkeypatch, 1)  # Ctrl-C before the first epoch is recorded: nothing learned, nothing replaced
    r = run("train", digit, *SMALL, "-e", "6", "-o", out, "--force", "--seed", "7")
    assert r.exit_code == 130 and files() == before, r.output
    # a replacing run killed outright (no Ctrl-C handler) leaves the old run aside: the next run puts it back
    from nncompress.runs import _set_aside
    monkeypatch.undo()
    aside = _set_aside(str(out), [str(out / n) for n in ("model.npz", "model.checkpoint.npz", "history.csv", "frames")],
                       set())
    assert not (out / "model.npz").exists() and os.path.isdir(aside)
    held = files()
    r = run("train", digit, *SMALL, "-e", "6", "-o", out, "--force")  # never guessed at: said, nothing touched
    assert r.exit_code == 2 and "set aside and did not finish; move them back" in r.output and files() == held, r.output


def test_resuming_a_diverged_runs_last_good_model_keeps_its_records(tmp_path, digit, monkeypatch):
    out = tmp_path / "d"
    original = training.run_epochs

    def nan_at_3(net, opt, rng, step_epoch, **kw):
        return original(net, opt, rng, lambda e: float("nan") if e == 3 else step_epoch(e), **kw)
    monkeypatch.setattr(training, "run_epochs", nan_at_3)
    r = run("train", digit, *SMALL, "-e", "6", "-o", out)
    assert r.exit_code == 1 and "model_last_good.npz" in r.output, r.output
    monkeypatch.undo()
    r = run("train", digit, "--resume", out / "model_last_good.npz", *SMALL, "-e", "6", "-q")
    assert r.exit_code == 0, r.output
    assert [int(row["epoch"]) for row in history(out / "history.csv")] == [1, 2, 3, 4, 5, 6]
    # a resumed run that diverges beside its model.npz: its model_last_good.npz goes on in place too
    interrupt_at(monkeypatch, 1)
    out2 = tmp_path / "e"
    assert run("train", digit, *SMALL, "-e", "8", "-o", out2).exit_code == 130  # model.npz at epoch 0
    monkeypatch.undo()
    monkeypatch.setattr(training, "run_epochs", nan_at_3)
    assert run("train", "--resume", out2 / "model.npz", *SMALL, "-e", "8").exit_code == 1
    monkeypatch.undo()
    r = run("train", digit, "--resume", out2 / "model_last_good.npz", *SMALL, "-e", "8", "-q")
    assert r.exit_code == 0, r.output
    assert [int(row["epoch"]) for row in history(out2 / "history.csv")] == list(range(1, 9))


def test_a_restored_run_has_none_of_the_replacing_runs_records(tmp_path, digit, rgb_image, monkeypatch):
    out = tmp_path / "r"  # an old run without frames
    assert run("train", digit, *SMALL[:-2], "--frames", "0", "-e", "3", "-o", out, "-q").exit_code == 0
    files = lambda: {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    before = files()
    interrupt_at(monkeypatch, 1)
    r = run("train", rgb_image, *SMALL, "-e", "4", "-o", out, "--force")  # draws frames, stopped before epoch 1
    assert r.exit_code == 130 and "kept as it was" in r.output and files() == before, r.output
    monkeypatch.undo()
    # a failure before training starts (an earlier frame that cannot be read, copied from the resumed run)
    assert run("train", rgb_image, *SMALL, "-e", "3", "-o", tmp_path / "x", "-q").exit_code == 0
    (tmp_path / "x" / "frames" / "epoch_000002.png").write_bytes(b"junk")
    r = run("train", "--resume", tmp_path / "x" / "model.npz", *SMALL, "-e", "5", "-o", out, "--force")
    assert r.exit_code != 0 and files() == before, r.output


def test_other_commands_never_touch_a_folder_named_like_a_set_aside_run(tmp_path, digit):
    """.replaced-run is put back only by the run that made it, in that
    process: a folder of that name elsewhere (a user's, or a live run's) is
    left alone by upscale, info and animate."""
    out = tmp_path / "r"
    assert run("train", digit, *SMALL, "-e", "3", "-o", out, "-q").exit_code == 0
    (out / ".replaced-run").mkdir()
    (out / ".replaced-run" / "notes.txt").write_text("mine")
    files = lambda: {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    before = files()
    for cmd in (["info", out], ["upscale", out, "-s", "2", "-o", tmp_path / "u.png", "-q"],
                ["animate", out, "-o", tmp_path / "a.gif", "-q"]):
        assert run(*cmd).exit_code == 0 and files() == before
    photos = tmp_path / "photos"
    (photos / ".replaced-run").mkdir(parents=True)
    Image.open(digit).save(photos / "a.png")
    (photos / "history.csv").write_text("a user's")
    assert run("upscale", photos, "-r", "--skip-existing", "-s", "2", "--preset", "fast", "-q",
               "-o", tmp_path / "photos_x2").exit_code == 0
    assert (photos / "history.csv").read_text() == "a user's" and (photos / ".replaced-run").is_dir()


def test_a_replacing_run_that_cannot_save_says_where_the_old_run_is(tmp_path, digit, monkeypatch):
    from nncompress import runs
    out = tmp_path / "r"
    assert run("train", digit, *SMALL, "-e", "3", "-o", out, "-q").exit_code == 0

    def full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(runs, "write_training_gif", full)
    r = run("train", digit, *SMALL, "-e", "3", "--seed", "9", "-o", out, "--force")
    assert r.exit_code == 1 and "the run it replaces is kept in" in r.output, r.output
    assert (out / ".replaced-run" / "model.npz").exists()


def test_a_resume_refuses_what_it_would_only_record(tmp_path, rgb_image):
    """A resume trains the model's network with the model's budget: a
    config's layers or another preset would have been recorded in the
    model without being used, and a model with nothing left to train (the
    prior alone) was 'resumed' to the same weights. Each is refused, saying
    what to do instead."""
    prior_run = ["--mode", "patch", "--scale", "2", "--preset", "fast", "--frames", "0", "-q"]
    assert run("train", rgb_image, *prior_run, "-o", tmp_path / "p").exit_code == 0
    (tmp_path / "net.yaml").write_text("layers: conv3:16:relu,conv3:out\n")
    r = run("train", rgb_image, "--resume", tmp_path / "p" / "model.npz", "-c", tmp_path / "net.yaml", "-e", "5", "-q")
    assert r.exit_code == 2 and "the model's own network (the prior's), not conv3:16:relu,conv3:out" in r.output, r.output
    r = run("train", rgb_image, "--resume", tmp_path / "p" / "model.npz", "-e", "5", "-q")
    assert r.exit_code == 2 and "trains no further" in r.output and "--preset best" in r.output, r.output
    assert run("train", rgb_image, *PATCH, "-e", "2", "-o", tmp_path / "n", "-q").exit_code == 0
    r = run("train", rgb_image, "--resume", tmp_path / "n" / "model.npz", "--preset", "best", "-e", "4", "-q")
    assert r.exit_code == 2 and "the model's preset (balanced), not best" in r.output, r.output
    r = run("train", rgb_image, "--resume", tmp_path / "n" / "model.npz", "-e", "4", "-q")
    assert r.exit_code == 0, r.output


def test_ctrl_c_while_a_frame_renders_keeps_the_history_whole(tmp_path, digit, monkeypatch):
    """The saved model is the last whole epoch; its history.csv row was
    written after the frame, so Ctrl-C while one rendered left the history
    one epoch short (and a gap after --resume)."""
    from nncompress.compresser import Compresser
    calls, original = [0], Compresser.preview

    def preview(self, img):
        calls[0] += 1
        if calls[0] == 3:  # epoch 0's frame, the next, then Ctrl-C in the third
            raise KeyboardInterrupt
        return original(self, img)
    monkeypatch.setattr(Compresser, "preview", preview)
    r = run("train", digit, *SMALL[:-2], "--frames", 6, "-e", 6, "-o", tmp_path / "r", "-q")
    assert r.exit_code == 130, r.output
    epochs = json.loads(str(np.load(tmp_path / "r" / "model.npz")["meta"]))["epochs"]
    assert epochs >= 2 and int(history(tmp_path / "r" / "history.csv")[-1]["epoch"]) == epochs


def test_info_keeps_the_rates_a_resumed_run_trained_at(tmp_path, digit):
    run("train", digit, *SMALL, "-e", 3, "--lr", "0.003", "-o", tmp_path / "r", "-q")
    run("train", digit, "--resume", tmp_path / "r" / "model.npz", "-e", 5, "--lr", "0.01", "-q")
    r = run("info", tmp_path / "r" / "model.npz")
    assert "lr 0.01 (" in r.output and "lr 0.003 for epochs 1-3" in r.output, r.output
