"""Priors: nncompress pretrain, and patch mode starting from a prior."""

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from nncompress import internal, prior
from nncompress.cli import app
from nncompress.imaging import read_image
from nncompress.metrics import psnr
from nncompress.modelfile import load as load_model
from nncompress.resize import imresize

from conftest import shared_image

runner = CliRunner()
TINY = ["-s", "2", "-e", "2", "--steps", "2", "-b", "2", "--crop", "16", "-l", "conv3:4:relu,conv3:out", "-q"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def folder(tmp_path):
    """Three small smooth photos-to-be and one file that is not an image."""
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, where in enumerate(["a.png", "b.png", "sub/c.png"]):
        img = np.clip(imresize(rng.random((20, 24, 3)), 4.0), 0, 1)
        Image.fromarray((img * 255).astype(np.uint8)).save(d / where)
    (d / "broken.png").write_bytes(b"not an image at all")
    return d


def test_pretrain_writes_a_prior_that_loads_and_fine_tunes(tmp_path, folder, digit):
    r = run("pretrain", folder, *TINY[:-1], "-o", tmp_path / "p.npz")
    assert r.exit_code == 0, r.output
    assert "training on 2 images (1 held back for validation; 1 unreadable, skipped)" in r.output, r.output
    Image.fromarray(np.zeros((20, 200), np.uint8)).save(folder / "thin.png")  # under 16 + 2 x 8 a side
    r = run("pretrain", folder, *TINY[:-1], "-o", tmp_path / "p2.npz")
    assert "training on 2 images (1 held back for validation; 1 smaller than 32 pixels a side" in r.output, r.output
    assert "broken.png" in r.output and "warning" in r.output  # skipped, named, once
    assert r.output.count("broken.png") == 1
    net, meta = prior.load(str(tmp_path / "p.npz"), 2)
    assert meta["kind"] == "prior" and meta["scale"] == 2 and meta["epochs"] == 2
    with open(tmp_path / "p.history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and float(rows[-1]["crops_per_s"]) > 0
    r = run("train", digit, "--mode", "patch", "--prior", tmp_path / "p.npz", "-e", 1, "--steps", 2, "-b", 2,
            "--crop", 16, "--frames", 0, "-q", "-o", tmp_path / "run")
    assert r.exit_code == 0, r.output
    assert os.path.exists(tmp_path / "run" / "model.npz")


def test_pretraining_stopped_and_resumed_equals_straight(tmp_path, folder):
    """Ctrl-C after epoch 1 of 2 keeps that epoch; --resume finishes the
    run as if it had never stopped, bit for bit."""
    from nncompress.pretrain import pretrain
    kw = dict(epochs=2, steps=2, batch_size=2, crop=16, layers="conv3:4:relu,conv3:out")
    pretrain([str(folder)], 2, str(tmp_path / "straight.npz"), **kw)

    def stop(rec, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain([str(folder)], 2, str(tmp_path / "half.npz"), on_epoch=stop, **kw)
    assert load_model(tmp_path / "half.npz")[1]["epochs"] == 1
    r = run("pretrain", folder, "-s", 2, "--resume", tmp_path / "half.npz", "-q")
    assert r.exit_code == 0, r.output
    a, _, _ = load_model(tmp_path / "straight.npz")
    b, meta, _ = load_model(tmp_path / "half.npz")
    assert meta["epochs"] == 2
    np.testing.assert_array_equal(a.params, b.params)
    # a finished prior: --epochs is the total, so it must be more than done (as train's)
    for more in ([], ["-e", "1"]):
        r = run("pretrain", folder, "-s", 2, "--resume", tmp_path / "half.npz", *more)
        assert r.exit_code == 2 and "has trained 2 epochs and --epochs is the total" in r.output, r.output
    r = run("pretrain", folder, "-s", 2, "--resume", tmp_path / "half.npz", "-e", "3")  # a warm restart: said
    assert r.exit_code == 0 and "the cosine schedule now spans 3 epochs (it was 2)" in r.output, r.output


def test_an_unreadable_image_does_not_change_a_resumed_runs_draws(tmp_path):
    """A truncated PNG (its header reads) or a float TIFF that read_image
    refuses was dropped from the list when first drawn, which changed the
    draws after it: a resumed run (which finds it again later) no longer
    equalled a straight one. The list now keeps its length. More images
    than a pool holds (24), so which ones an epoch draws matters."""
    from nncompress.pretrain import pretrain
    d = tmp_path / "many"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray((np.clip(imresize(rng.random((10, 10)), 4.0), 0, 1) * 255).astype(np.uint8)).save(d / f"{i:02d}.png")
    data = (d / "05.png").read_bytes()
    (d / "21x.png").write_bytes(data[:len(data) // 2])  # drawn in a later epoch than the first
    Image.fromarray(np.full((48, 48), -1.0, np.float32)).save(d / "38x.tif")
    kw = dict(epochs=6, steps=1, batch_size=2, crop=16, layers="conv3:4:relu,conv3:out")
    seen = []
    pretrain([str(d)], 2, str(tmp_path / "straight.npz"), warn=seen.append, **kw)
    assert sum("21x.png" in w for w in seen) == 1, seen  # named once

    def stop(rec, total):
        if rec["epoch"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain([str(d)], 2, str(tmp_path / "half.npz"), on_epoch=stop, **kw)
    r = run("pretrain", d, "-s", 2, "--resume", tmp_path / "half.npz", "-q")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(load_model(tmp_path / "straight.npz")[0].params,
                                  load_model(tmp_path / "half.npz")[0].params)


def test_an_epoch_that_draws_only_unreadable_images_draws_again(tmp_path):
    """Unreadable files stay in the list (so that a resume draws as a
    straight run); an epoch whose draws were all unreadable stopped the
    run there, every time it was resumed. It now draws again."""
    d = tmp_path / "mostly_bad"
    d.mkdir()
    for i in range(60):
        Image.fromarray(np.full((48, 48), -1.0, np.float32)).save(d / f"{i:02d}.tif")  # read_image refuses these
    Image.fromarray((np.random.default_rng(0).random((48, 48)) * 255).astype(np.uint8)).save(d / "good.png")
    paths = sorted(str(p) for p in d.iterdir())
    a = prior.DatasetSampler(paths, 2, 16, np.random.default_rng(0))
    b = prior.DatasetSampler(paths, 2, 16, np.random.default_rng(0))
    for _ in range(3):
        a.refresh()
        b.refresh()
        assert len(a.pool) == len(b.pool) == 1
    np.testing.assert_array_equal(a.batch(2)[0], b.batch(2)[0])
    from nncompress.errors import UserError
    with pytest.raises(UserError, match="none of the training images can be read"):
        prior.DatasetSampler(paths[:-1], 2, 16, np.random.default_rng(0))


def test_images_too_small_for_the_scale_say_so(tmp_path):
    """At x4 the margins alone take 64 pixels: 'use a smaller --crop' could
    not help 60-pixel images."""
    d = tmp_path / "tiny"
    d.mkdir()
    for i in range(3):
        Image.fromarray((np.random.default_rng(i).random((60, 50)) * 255).astype(np.uint8)).save(d / f"{i}.png")
    r = run("pretrain", d, "-s", 4, "-e", 1, "--steps", 1, "-b", 2, "--crop", 8, "-l", "conv3:4:relu,conv3:out",
            "-o", tmp_path / "t.npz")
    assert r.exit_code == 2 and "at x4 an image needs at least 72 pixels a side: give larger images" in r.output, r.output
    r = run("pretrain", d, "-s", 2, "-e", 1, "--steps", 1, "-b", 2, "--crop", 64, "-l", "conv3:4:relu,conv3:out",
            "-o", tmp_path / "t2.npz")
    assert r.exit_code == 2 and "use a smaller --crop (at least 4)" in r.output, r.output


def test_an_interrupted_warm_restart_says_the_command_with_its_epochs(tmp_path, folder, monkeypatch):
    from nncompress import internal
    r = run("pretrain", folder, *TINY, "-o", tmp_path / "p.npz")
    assert r.exit_code == 0, r.output

    def stop(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(internal, "train_epoch", stop)
    r = run("pretrain", folder, "-s", 2, "--resume", tmp_path / "p.npz", "-e", "5")
    assert r.exit_code == 130 and f"--resume {tmp_path / 'p.npz'} -e 5" in r.output, r.output


def test_a_half_prior_stores_float16_and_resumes_from_the_exact_weights(tmp_path, folder):
    """--half: the prior file holds float16 weights (format 3) that load as
    float32; its checkpoint holds them unrounded, so stopping after epoch 1
    and resuming ends bit for bit where a straight run does."""
    import zipfile
    from nncompress.pretrain import pretrain
    kw = dict(epochs=2, steps=2, batch_size=2, crop=16, layers="conv3:8:relu,conv3:out", half=True)
    pretrain([str(folder)], 2, str(tmp_path / "straight.npz"), **kw)
    with np.load(tmp_path / "straight.npz") as z:
        assert z["params"].dtype == np.float16 and int(z["format_version"]) == 3
    net, meta = prior.load(str(tmp_path / "straight.npz"), 2)
    assert net.params.dtype == np.float32 and meta["settings"]["half"] is True
    with np.load(tmp_path / "straight.checkpoint.npz") as z:
        exact = z["params"]
    np.testing.assert_array_equal(net.params, exact.astype(np.float16).astype(np.float32))
    assert not np.array_equal(net.params, exact)  # rounded: the checkpoint is what resumes

    def stop(rec, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain([str(folder)], 2, str(tmp_path / "cut.npz"), on_epoch=stop, **kw)
    r = run("pretrain", folder, "-s", 2, "--resume", tmp_path / "cut.npz", "-q")
    assert r.exit_code == 0, r.output
    with np.load(tmp_path / "cut.checkpoint.npz") as z:
        np.testing.assert_array_equal(z["params"], exact)
    r = run("info", tmp_path / "straight.npz", "--json")  # info describes a prior too
    assert r.exit_code == 0, r.output
    facts = json.loads(r.output)
    assert facts["kind"] == "prior for x2" and facts["weights_stored_as"] == "float16" and facts["epochs"] == 2


def test_crops_are_reproducible_with_the_seed(folder):
    paths = prior.find_images([str(folder)])
    assert [os.path.basename(p) for p in paths] == ["a.png", "b.png", "broken.png", "c.png"]
    good = [p for p in paths if "broken" not in p]

    def batch(seed):
        return prior.DatasetSampler(good, 2, 16, np.random.default_rng(seed)).batch(4)

    np.testing.assert_array_equal(batch(3)[0], batch(3)[0])
    assert not np.array_equal(batch(3)[0], batch(4)[0])


def test_low_resolution_crops_are_the_shrunk_high_resolution_crops(folder):
    """The same draws give the same targets either way, and the low-
    resolution input is the high-resolution crop (base + residual) shrunk."""
    from nncompress.resize import imresize
    good = [p for p in prior.find_images([str(folder)]) if "broken" not in p]
    S, N = 2, prior.NORM
    Xh, Th = prior.DatasetSampler(good, S, 32, np.random.default_rng(5)).batch(3)
    Xl, Tl = prior.DatasetSampler(good, S, 32, np.random.default_rng(5), lowres=True).batch(3)
    assert Xl.shape == (3, 16, 16, 1) and Tl.shape == Th.shape == (3, 32, 32, 1)
    np.testing.assert_array_equal(Tl, Th)
    for i in range(3):
        hr = (Xh[i, ..., 0] * N.spread + N.mean) + Th[i, ..., 0] * N.spread
        lr = Xl[i, ..., 0] * N.spread + N.mean
        # away from the crop's edge, which the bicubic kernel (2 pixels a side) reaches past
        np.testing.assert_allclose(imresize(hr.astype(np.float64), 1 / S)[2:-2, 2:-2], lr[2:-2, 2:-2], atol=1e-5)


def test_held_back_images_stay_held_back_when_the_folder_changes(tmp_path, folder):
    """Validation holds back every 25th image of a new run. A resume, an
    --init or an --average goes on with the images its prior recorded, so
    an image added since (here one that sorts first) cannot shift an image
    it trained on into validation."""
    import shutil
    r = run("pretrain", folder, *TINY, "-o", tmp_path / "p.npz")
    assert r.exit_code == 0, r.output
    meta = lambda f: json.loads(str(np.load(tmp_path / f)["meta"]))
    assert meta("p.npz")["val_images"] == ["imgs/a.png"]
    shutil.copy(folder / "b.png", folder / "0.png")  # now first in sorted order
    assert [os.path.basename(p) for p in prior.split(prior.find_images([str(folder)]))[1]] == ["0.png"]
    r = run("pretrain", folder, "-s", 2, "--resume", tmp_path / "p.npz", "-e", 3)
    assert r.exit_code == 0, r.output
    assert "the folders hold 3 training images; the prior trained on 2" in r.output, r.output  # said, not refused
    # the images it can train on are counted and recorded: 0, b and c (broken.png is skipped)
    assert meta("p.npz")["val_images"] == ["imgs/a.png"] and meta("p.npz")["train_images"] == 3
    r = run("pretrain", folder, *TINY, "--init", tmp_path / "p.npz", "-o", tmp_path / "g.npz")
    assert r.exit_code == 0, r.output
    assert meta("g.npz")["val_images"] == ["imgs/a.png"]
    r = run("pretrain", folder, "-s", 2, "--average", tmp_path / "p.npz", "--average", tmp_path / "g.npz",
            "-o", tmp_path / "m.npz", "-q")
    assert r.exit_code == 0, r.output
    assert meta("m.npz")["val_images"] == ["imgs/a.png"]
    # a prior of other folders (the built-in ones hold back BSD200's): every 25th image here, said
    r = run("pretrain", folder, *TINY[:-1], "--init", prior.builtin_path(2), "-l",
            "conv5:64:relu," + "conv3:64:relu," * 13 + "conv3:out,shuffle:2", "--steps", "1", "-e", "1",
            "-o", tmp_path / "b.npz")
    assert r.exit_code == 0 and "none of the 8 images the prior held back is in these folders" in r.output, r.output
    assert meta("b.npz")["val_images"] == ["imgs/0.png"]


def test_init_without_layers_trains_the_priors_own_network(tmp_path, folder):
    """--init PRIOR without --layers goes on with that prior's network (the
    default recipe refused one of any other shape, the built-in x4 too,
    whose convs run in groups): a user's pictures teach the built-in prior
    with one command."""
    from nncompress.spec import network_text
    r = run("pretrain", folder, *TINY, "-o", tmp_path / "p.npz")
    assert r.exit_code == 0, r.output
    r = run("pretrain", folder, *TINY[:-3], "-q", "--init", tmp_path / "p.npz", "-o", tmp_path / "g.npz")
    assert r.exit_code == 0, r.output
    assert network_text(prior.load(str(tmp_path / "g.npz"), 2)[0]) == "conv3:4:relu,conv3:1"
    r = run("pretrain", folder, "-s", 4, "-e", 1, "--steps", 1, "-b", 2, "--crop", 16, "-q", "--init", "builtin",
            "-o", tmp_path / "x4.npz")
    assert r.exit_code == 0, r.output
    net = prior.load(str(tmp_path / "x4.npz"), 4)[0]
    assert network_text(net) == network_text(prior.load("builtin", 4)[0])
    r = run("pretrain", folder, "-s", 4, "-e", 1, "--steps", 1, "-b", 2, "--crop", 16, "-q", "--init", "builtin",
            "-l", "conv5:48:relu,conv3:48:relu,conv3:out,shuffle:4", "-o", tmp_path / "no.npz")
    assert r.exit_code == 2 and "--init" in r.output and "Traceback" not in r.output, r.output  # given layers: as before


def test_a_user_prior_is_named_and_grown_without_typing_its_network(tmp_path, folder):
    """helper-41's first hour: -s 3 --init builtin needed the x2 prior's 16
    items typed out; a --layers that did not match was 'no counterpart';
    a run folder or a checkpoint given as --prior, and a prior written as
    .png, got messages that did not say what they were."""
    from nncompress.spec import network_text
    r = run("pretrain", folder, "-s", 3, "-e", 1, "--steps", 1, "-b", 2, "--crop", 12, "-q", "--init", "builtin",
            "-o", tmp_path / "x3.npz")
    assert r.exit_code == 0, r.output
    body = network_text(prior.load("builtin", 2)[0]).split(",")[:-2]
    assert network_text(prior.load(str(tmp_path / "x3.npz"), 3)[0]).split(",") == body + ["conv3:9", "shuffle:3"]
    r = run("pretrain", folder, "-s", 2, "-e", 1, "--steps", 1, "-q", "--init", "builtin",
            "-l", "conv5:32:relu,conv3:out,shuffle:2", "-o", tmp_path / "no.npz")
    assert r.exit_code == 2 and "does not match the prior's weight layer 1" in r.output, r.output
    assert "begin with them, conv5:64:relu,conv3:64:relu" in r.output, r.output
    r = run("pretrain", folder, *TINY, "-o", tmp_path / "p.png")
    assert r.exit_code == 2 and "a prior is an .npz file" in r.output and not (tmp_path / "p.png").exists()
    img = next(folder.glob("a.png"))
    for given, says in ((tmp_path, "is a folder (a prior is one .npz file"),
                        (tmp_path / "x3.checkpoint.npz", "is a training checkpoint (what --resume goes on from), "
                                                         f"not a model; give {tmp_path / 'x3.npz'}")):
        r = run("upscale", img, "-s", 2, "--prior", given, "-o", tmp_path / "u.png")
        assert r.exit_code == 2 and says in r.output, r.output


def test_a_prior_of_a_larger_scale_is_said(tmp_path, folder):
    """An x4 prior in low-resolution space given at x2 upscaled x4 and
    shrank, silently; one on the bicubic upscale goes to x2 in one pass
    (nothing to say)."""
    import warnings
    from nncompress import batchplan
    for name, layers in (("p4.npz", "conv3:4:relu,conv3:out,shuffle:4"), ("b4.npz", "conv3:4:relu,conv3:out")):
        r = run("pretrain", folder, "-s", 4, "-e", 1, "--steps", 1, "-b", 2, "--crop", 16, "-l", layers,
                "-q", "-o", tmp_path / name)
        assert r.exit_code == 0, r.output
    img = str(next(folder.glob("a.png")))
    said = {}
    for name, scale in (("p4.npz", 2), ("p4.npz", 4), ("p4.npz", 8), ("b4.npz", 2)):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            batchplan.plan(batchplan.Request([img], scale=scale, output=str(tmp_path / "o.png"),
                                             overrides={"prior": str(tmp_path / name)}))
        said[name, scale] = [str(w.message) for w in seen if "is an x4 prior" in str(w.message)]
    assert said["p4.npz", 2] and "at x2 it upscales x4 and shrinks the result" in said["p4.npz", 2][0]
    assert not said["p4.npz", 4] and not said["p4.npz", 8] and not said["b4.npz", 2]


def test_held_back_names_keep_two_folders_apart_and_read_old_records(tmp_path):
    for d in ("one", "two"):
        (tmp_path / d / "sub").mkdir(parents=True)
        for n in ("a.png", "b.png", "sub/c.png"):
            (tmp_path / d / n).write_bytes(b"")
    folders = [str(tmp_path / "one"), str(tmp_path / "two")]
    paths = prior.find_images(folders)
    assert prior.held_name(paths[2], folders) == "one/sub/c.png"
    train, val = prior.split(paths, ["two/a.png", "one/sub/c.png"], folders=folders)
    assert [prior.held_name(p, folders) for p in val] == ["one/sub/c.png", "two/a.png"] and len(train) == 4
    said = []
    train, val = prior.split(paths, ["a.png", "gone.png"], said.append, folders)  # a record without folders
    assert [prior.held_name(p, folders) for p in val] == ["one/a.png", "two/a.png"]  # both, to be safe
    assert said == ["1 of the 2 images the prior held back are not in the folders (deleted, or in a renamed folder); "
                    "validation uses the other 1"]
    # its own held-back image deleted: none held back (said), never a trained-on one in its place
    said.clear()
    train, val = prior.split(paths, ["one/gone.png"], said.append, folders)
    assert val == [] and len(train) == 6 and said[0].endswith("validation uses the other 0, so there is none")
    # the folder renamed: its held-back images are not found, and none is taken in their place
    (tmp_path / "one").rename(tmp_path / "uno")
    moved = [str(tmp_path / "uno"), str(tmp_path / "two")]
    train, val = prior.split(prior.find_images(moved), ["one/sub/c.png"], None, moved)
    assert val == [] and len(train) == 6
    # an empty record (a resume found none of its own) stays empty: never every 25th, trained-on, image
    said.clear()
    assert prior.split(paths, [], said.append, folders)[1] == [] and "no validation" in said[0]
    # one of several folders renamed: the others' names still match, exactly (not two/a.png for one/a.png)
    train, val = prior.split(prior.find_images(moved), ["one/a.png", "two/b.png"], None, moved)
    assert [prior.held_name(p, moved) for p in val] == ["two/b.png"]
    # two folders of one name are told apart by their parents
    for d in ("x/imgs", "y/imgs"):
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "0.png").write_bytes(b"")
    same = [str(tmp_path / "x" / "imgs"), str(tmp_path / "y" / "imgs")]
    assert [prior.held_name(p, same) for p in prior.find_images(same)] == ["x/imgs/0.png", "y/imgs/0.png"]
    train, val = prior.split(prior.find_images(same), ["x/imgs/0.png"], None, same)
    assert [prior.held_name(p, same) for p in val] == ["x/imgs/0.png"]
    # --init or --average from a prior of a same-named folder holding other images: every 25th here
    said.clear()
    train, val = prior.split(paths, ["one/z.png"], said.append, folders, own=False)
    assert val == paths[::prior.VAL_EVERY][:prior.VAL_MAX] and "none of the 1 images" in said[0]
    # a folder given twice, or inside another given: each image once, named below the outermost
    twice = [str(tmp_path / "two"), str(tmp_path / "two") + "/", str(tmp_path / "two" / "sub")]
    found = prior.find_images(twice)
    assert len(found) == 3 and prior.held_name(found[-1], twice[::-1]) == "two/sub/c.png"


def test_a_crop_too_small_for_the_scale_is_bad_input(tmp_path, folder):
    r = run("pretrain", folder, "-s", 4, "--crop", 3, "-e", 1, "--steps", 1, "-q", "-o", tmp_path / "p.npz")
    assert r.exit_code == 2 and "--crop" in r.output and "Traceback" not in r.output


def test_the_loss_is_chosen_recorded_and_checked(tmp_path, folder):
    r = run("pretrain", folder, *TINY, "--loss", "l1", "-o", tmp_path / "p.npz")
    assert r.exit_code == 0, r.output
    _, meta = prior.load(str(tmp_path / "p.npz"), 2)
    assert meta["settings"]["loss"] == "l1"
    r = run("pretrain", folder, *TINY, "--loss", "l2", "-o", tmp_path / "q.npz")
    assert r.exit_code == 2 and "unknown loss 'l2'" in r.output and "Traceback" not in r.output


def test_a_prior_grown_deeper_starts_where_it_ended(tmp_path, folder):
    """--init: the prior's layers fill the deeper network's in order and the
    extra conv between two ReLUs starts as the identity, so before any
    step the deeper network gives the prior's output; a layer that cannot
    start as the identity is bad input."""
    from nncompress.spec import build_network
    r = run("pretrain", folder, *TINY[:-2], "conv3:4:relu,conv3:4:relu,conv3:out", "-q", "-o", tmp_path / "p.npz")
    assert r.exit_code == 0, r.output
    small, _ = prior.load(str(tmp_path / "p.npz"), 2)
    deep = prior.grow(build_network("conv3:4:relu,conv3:4:relu,conv3:4:relu,conv3:out", 1, 1, 5), small)
    X = np.random.default_rng(0).random((2, 12, 12, 1)).astype(np.float32)
    np.testing.assert_array_equal(deep.forward(X), small.forward(X))
    r = run("pretrain", folder, *TINY[:-2], "conv3:4:relu,conv3:4:relu,conv3:4:relu,conv3:out", "-q",
            "--init", tmp_path / "p.npz", "-o", tmp_path / "deep.npz")
    assert r.exit_code == 0, r.output
    assert prior.load(str(tmp_path / "deep.npz"), 2)[1]["settings"]["init"] == str(tmp_path / "p.npz")
    r = run("pretrain", folder, *TINY[:-2], "conv3:4:relu,conv3:6:relu,conv3:out", "-q",
            "--init", tmp_path / "p.npz", "-o", tmp_path / "bad.npz")
    assert r.exit_code == 2 and "--init" in r.output and "Traceback" not in r.output


def test_grow_matches_layers_by_kind_not_only_by_shape():
    """A grouped 3x3 conv's weights have a dense 1x1 conv's shape here; one
    does not fill the other."""
    from nncompress.errors import SpecError
    from nncompress.spec import build_network
    small = build_network("conv3:18:relu,conv3:18/9:relu,conv3:out,shuffle:2", 1, 1)
    with pytest.raises(SpecError, match="--init"):
        prior.grow(build_network("conv3:18:relu,conv1:18:relu,conv3:out,shuffle:2", 1, 1), small)
    same = prior.grow(build_network("conv3:18:relu,conv3:18/9:relu,conv3:out,shuffle:2", 1, 1, seed=4), small)
    np.testing.assert_array_equal(same.params, small.params)


def test_a_prior_of_another_scale_gives_its_body(tmp_path, folder):
    """--init with an x2 prior for an x4 network: every layer but the last
    is the prior's, the last (16 sub-pixels, not 4) starts at zero, so the
    x4 network starts at bicubic and trains from there."""
    r = run("pretrain", folder, *TINY[:-2], "conv3:4:relu,conv3:4:relu,conv3:out,shuffle:2", "-q",
            "-o", tmp_path / "p2.npz")
    assert r.exit_code == 0, r.output
    r = run("pretrain", folder, "-s", "4", "-e", "1", "--steps", "2", "--crop", "16", "-b", "2", "--lr", "0",
            "-l", "conv3:4:relu,conv3:4:relu,conv3:out,shuffle:4", "-q",
            "--init", tmp_path / "p2.npz", "-o", tmp_path / "p4.npz")
    assert r.exit_code == 0, r.output
    p2, _ = prior.load(str(tmp_path / "p2.npz"), 2)
    p4, meta = prior.load(str(tmp_path / "p4.npz"), 4)
    w2, w4 = ([l for l in n.layers if l.has_weights] for n in (p2, p4))
    for a, b in zip(w2[:-1], w4[:-1]):
        np.testing.assert_array_equal(a.params["W"], b.params["W"])
    assert w4[-1].params["W"].shape[-1] == 16 and not np.any(w4[-1].params["W"])
    assert meta["scale"] == 4 and abs(meta["history"][0]["val_gain_db"]) < 1e-9
    # refused: a network on the bicubic upscale (no shuffle) from an x2 prior,
    # at x4 and at x2 (the prior's layers saw the image itself, not its upscale)
    for s in (4, 2):
        r = run("pretrain", folder, "-s", s, "-e", "1", "--steps", "1", "--crop", "16", "-b", "2", "-q",
                "-l", "conv3:4:relu,conv3:4:relu,conv3:out", "--init", tmp_path / "p2.npz", "-o", tmp_path / "bad.npz")
        assert r.exit_code == 2 and "--init" in r.output and "Traceback" not in r.output, r.output
    # without --layers: the prior's body, a new last conv and shuffle (it was refused: the default recipe differs)
    r = run("pretrain", folder, "-s", 4, "-e", "1", "--steps", "1", "--crop", "16", "-b", "2", "-q",
            "--init", tmp_path / "p2.npz", "-o", tmp_path / "body.npz")
    assert r.exit_code == 0, r.output
    from nncompress.spec import network_text
    assert network_text(prior.load(str(tmp_path / "body.npz"), 4)[0]) == "conv3:4:relu,conv3:4:relu,conv3:16,shuffle:4"


def test_an_average_of_priors_outputs_the_mean_of_theirs(tmp_path):
    """prior.average: one network (stacked first conv, block-diagonal
    hidden convs, a last conv over all) whose output is the mean of the
    parts' outputs, for parts of different widths, in tiles too."""
    from nncompress.conv import predict_image
    from nncompress.spec import build_network
    parts = [build_network(f"conv5:{c}:relu,conv3:{c}:relu,conv3:out,shuffle:2", 1, 1, seed)
             for c, seed in ((4, 1), (6, 2), (3, 3))]
    for net in parts:  # a trained-looking last layer (build_network's may start at zero)
        net.params[...] = np.random.default_rng(net.seed).normal(0, 0.3, net.n_params)
    mean = prior.average(parts)
    convs = [l for l in mean.layers if l.has_weights]
    assert [c.channels for c in convs] == [13, 13, 4]
    W = convs[1].params["W"].reshape(3, 3, 13, 13)
    assert not W[:, :, :4, 4:].any() and not W[:, :, 4:10, :4].any()  # part 1's channels see only its own
    img = np.random.default_rng(0).random((23, 17, 1)).astype(np.float32)
    want = np.mean([predict_image(n, img) for n in parts], axis=0)
    np.testing.assert_allclose(predict_image(mean, img), want, rtol=0, atol=2e-6)
    np.testing.assert_array_equal(predict_image(mean, img, tile=8), predict_image(mean, img))
    # equally wide parts: the hidden convs in groups (half the work), saved as format 4, loaded back the same
    same = parts[:1] + [build_network("conv5:4:relu,conv3:4:relu,conv3:out,shuffle:2", 1, 1, 7)]
    same[1].params[...] = np.random.default_rng(7).normal(0, 0.3, same[1].n_params)
    grouped = prior.average(same)
    assert [(l.channels, l.groups) for l in grouped.layers if l.has_weights] == [(8, 1), (8, 2), (4, 1)]
    np.testing.assert_allclose(predict_image(grouped, img), np.mean([predict_image(n, img) for n in same], axis=0),
                               rtol=0, atol=2e-6)
    grouped.save(tmp_path / "g.npz")
    back, _, extras = load_model(tmp_path / "g.npz")
    assert extras["format_version"] == 4 and back.layers[3].groups == 2
    np.testing.assert_array_equal(predict_image(back, img), predict_image(grouped, img))
    parts[0].save(tmp_path / "d.npz")
    assert load_model(tmp_path / "d.npz")[2]["format_version"] == 2  # files without groups stay as they were
    for bad in ([parts[0]], [parts[0], build_network("conv3:4:relu,conv3:4:relu,conv3:out,shuffle:2", 1, 1, 0)],
                [parts[0], build_network("conv5:4:relu,conv3:4:relu,conv3:out,shuffle:4", 1, 1, 0)]):
        with pytest.raises(Exception, match="averaged"):
            prior.average(bad)


def test_pretrain_average_writes_a_validated_prior_that_upscales(tmp_path, folder, digit):
    """nncompress pretrain --average A --average B: no training; the prior
    records its parts and its validation gain, info shows them, patch mode
    uses it; training options beside it, one part, or --resume of it are
    bad input."""
    for name, loss in (("a", "mse"), ("b", "l1")):
        r = run("pretrain", folder, "-s", 2, *LOWRES[:-2], "conv3:4:relu,conv3:out,shuffle:2", "--loss", loss,
                "-q", "-o", tmp_path / f"{name}.npz")
        assert r.exit_code == 0, r.output
    r = run("pretrain", folder, "-s", 2, "--average", tmp_path / "a.npz", "--average", tmp_path / "b.npz",
            "-o", tmp_path / "ab.npz")
    assert r.exit_code == 0, r.output
    assert "the mean of 2 priors" in r.output and "validation" in r.output
    net, meta = prior.load(str(tmp_path / "ab.npz"), 2)
    assert [m["file"] for m in meta["averaged"]] == ["a.npz", "b.npz"]
    assert [m["settings"]["loss"] for m in meta["averaged"]] == ["mse", "l1"]
    assert np.isfinite(meta["history"][-1]["val_gain_db"])
    facts = json.loads(run("info", tmp_path / "ab.npz", "--json").output)
    assert "a.npz (mse, 1 epochs" in facts["average_of"] and facts["layers"] == "conv3:8:relu,conv3:4,shuffle:2"
    assert facts["parameters"] == net.n_params and "parameters_not_zero" not in facts  # equal parts: no zeros
    r = run("upscale", digit, "--prior", tmp_path / "ab.npz", "-s", 2, "--preset", "fast", "-o", tmp_path / "up.png", "-q")
    assert r.exit_code == 0, r.output
    for args, says in ((["--average", tmp_path / "a.npz"], "give it twice or more"),
                       (["--average", tmp_path / "a.npz", "--average", tmp_path / "b.npz", "--lr", "0.1"],
                        "without --lr"),
                       (["--resume", tmp_path / "ab.npz"], "is an average of priors (a.npz, b.npz)")):
        r = run("pretrain", folder, "-s", 2, *args, "-q", "-o", tmp_path / "bad.npz")
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert says in " ".join(r.output.split()), r.output
    # a last conv with an activation after it cannot be averaged (the mean of tanh is not tanh of the mean)
    for name in ("t1", "t2"):
        r = run("pretrain", folder, "-s", 2, *LOWRES[:-2], "conv3:4:relu,conv3:out:tanh,shuffle:2", "-q",
                "-o", tmp_path / f"{name}.npz")
        assert r.exit_code == 0, r.output
    r = run("pretrain", folder, "-s", 2, "--average", tmp_path / "t1.npz", "--average", tmp_path / "t2.npz", "-q",
            "-o", tmp_path / "bad.npz")
    assert r.exit_code == 2 and "last conv is linear" in " ".join(r.output.split()), r.output


def test_a_file_that_is_not_a_prior_is_refused(tmp_path, digit):
    r = run("train", digit, "-e", 1, "--frames", 0, "-q", "-o", tmp_path / "c")
    assert r.exit_code == 0
    r = run("train", digit, "--mode", "patch", "--prior", tmp_path / "c" / "model.npz", "-q")
    assert r.exit_code == 2 and "not a prior" in r.output


LOWRES = ["-e", "1", "--steps", "2", "-b", "2", "--crop", "16", "-l", "conv3:4:relu,conv3:out,shuffle:4", "-q"]


def test_a_prior_in_low_resolution_space_upscales_at_its_scale_and_below(tmp_path, folder, digit):
    """A network ending in shuffle:4 learns from the shrunk crops
    themselves; patch mode uses it as trained (an x4 prior is not
    fine-tuned), at x4 in one pass, at x3 by shrinking its x4, at x8 in two
    stages. An x2 one is fine-tuned, but not on an image too small to hold
    a strip of it out."""
    r = run("pretrain", folder, "-s", 4, *LOWRES, "-o", tmp_path / "p4.npz")
    assert r.exit_code == 0, r.output
    net, meta = prior.load(str(tmp_path / "p4.npz"), 4)
    assert meta["scale"] == 4 and net.layers[-1].get_config() == {"scale": 4}
    h, w = read_image(digit)[0].shape[:2]
    for scale in (4, 3, 8):
        out = tmp_path / f"x{scale}.png"
        r = run("upscale", digit, "--prior", tmp_path / "p4.npz", "--scale", scale, "-o", out, "-q")
        assert r.exit_code == 0, r.output
        assert read_image(str(out))[0].shape[:2] == (h * scale, w * scale)
    r = run("train", digit, "--mode", "patch", "--scale", 4, "--prior", tmp_path / "p4.npz", "--steps", 2,
            "--frames", 0, "-q", "-o", tmp_path / "run")
    assert r.exit_code == 0, r.output
    r = run("info", tmp_path / "run", "--json")
    facts = json.loads(r.output)
    assert "shuffle:4" in facts["layers"] and "x4 prior is not fine-tuned" in facts["note"]
    assert facts["started_from"] == str(tmp_path / "p4.npz")
    r = run("pretrain", folder, "-s", 2, *LOWRES[:-2], "conv3:4:relu,conv3:out,shuffle:2", "-q",
            "-o", tmp_path / "p2.npz")
    assert r.exit_code == 0, r.output
    r = run("train", digit, "--mode", "patch", "--scale", 2, "--prior", tmp_path / "p2.npz", "--steps", 2,
            "--frames", 0, "-q", "-o", tmp_path / "run2")
    assert r.exit_code == 0, r.output
    assert "too small to hold out a strip" in run("info", tmp_path / "run2", "--json").output


def test_a_shuffle_that_does_not_match_the_scale_is_refused(tmp_path, folder, digit):
    r = run("pretrain", folder, "-s", 2, *LOWRES, "-o", tmp_path / "p.npz")
    assert r.exit_code == 2 and "--scale 4" in r.output and "Traceback" not in r.output
    r = run("train", digit, "--mode", "patch", "--prior", "none", "--layers", "conv3:4:relu,conv3:out,shuffle:2",
            "-q", "-o", tmp_path / "run")
    assert r.exit_code == 2 and "shuffle" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("scale", [2, 4])
def test_pretrain_defaults_are_the_recipe_of_the_builtin_prior(scale):
    """`nncompress pretrain FOLDER -s S` trains the kind of prior that ships."""
    from nncompress.pretrain import defaults
    _, meta = prior.load("builtin", scale)
    want = defaults(scale)
    # an average (x4: one part trained on the squared error, one on the absolute error) is checked part by part
    parts = [m["settings"] for m in meta["averaged"]] if meta.get("averaged") else [meta["settings"]]
    for got in parts:
        got = {"loss": "mse", **got}  # a prior from before --loss trained on mse
        same = ("layers", "crop", "batch_size", "steps")  # the network and the data
        assert {k: got[k] for k in same} == {k: want[k] for k in same}
        if "init" not in got:  # trained from nothing: the whole recipe but the loss (a grown one, x2: README)
            assert {**got, "loss": want["loss"]} == want
    assert [p.get("loss", "mse") for p in parts] in (["mse"], ["mse", "l1"])


BUILTIN_MIN_GAIN = {2: 1.5, 4: 1.5}  # dB over bicubic on the camera crop below, per shipped prior


@pytest.mark.parametrize("scale", sorted(BUILTIN_MIN_GAIN))
def test_each_builtin_prior_beats_bicubic_on_a_camera_crop(scale):
    """Each shipped prior, alone (no fine-tuning, no self-ensemble), on a
    photo it never saw, at its own scale."""
    path = prior.builtin_path(scale)
    assert os.path.basename(path) == f"x{scale}.npz" and os.path.getsize(path) <= 1 << 20
    net, meta = prior.load(path, scale)
    assert meta["scale"] == scale
    hr = read_image(shared_image("camera.png"))[0][128:384, 128:384, 0].astype(np.float64)
    lr = np.round(np.clip(imresize(hr, 1 / scale), 0, 1) * 255) / 255
    base = internal.base_upscale(lr, hr.shape)
    up = internal.refine(net, lr, hr.shape, prior.NORM, ensemble=False)
    gain = psnr(up[..., None], hr[..., None], scale) - psnr(base[..., None], hr[..., None], scale)
    assert gain > BUILTIN_MIN_GAIN[scale], gain


def test_held_back_names_are_found_whatever_other_folders_are_given(tmp_path):
    for d in ("x/imgs", "y/imgs"):
        (tmp_path / d).mkdir(parents=True)
        for n in ("000.png", "020.png", "025.png"):
            (tmp_path / d / n).write_bytes(b"")
    x, y = str(tmp_path / "x" / "imgs"), str(tmp_path / "y" / "imgs")
    # recorded with x/imgs alone ("imgs/..."), resumed with y/imgs beside it: found (in both, to be safe)
    held = [prior.held_name(p, [x]) for p in prior.find_images([x])[:1]]
    assert held == ["imgs/000.png"]
    val = prior.split(prior.find_images([x, y]), held, None, [x, y])[1]
    assert sorted(prior.held_name(p, [x, y]) for p in val) == ["x/imgs/000.png", "y/imgs/000.png"]
    # recorded beside each other ("y/imgs/020.png"), then y/imgs alone (--init on a subset): found, not every 25th
    said = []
    val = prior.split(prior.find_images([y]), ["x/imgs/000.png", "y/imgs/020.png"], said.append, [y], own=False)[1]
    assert [os.path.basename(p) for p in val] == ["020.png"] and "1 of the 2" in said[0]


def test_pretrain_never_replaces_a_prior_unasked(tmp_path, folder):
    """A second pretrain to the same -o replaced a 20-epoch prior, its
    history and checkpoint, with a 1-epoch one, and said 'wrote'."""
    target = tmp_path / "p.npz"
    assert run("pretrain", folder, *TINY, "-o", target).exit_code == 0
    before = target.read_bytes()
    r = run("pretrain", folder, *TINY, "-o", target)
    assert r.exit_code == 2 and f"'{target}' already exists (a prior of 2 epochs); go on with it with --resume" in r.output, r.output
    assert target.read_bytes() == before
    assert run("pretrain", folder, "-s", 2, "--resume", target, "-e", 3, "-q").exit_code == 0  # its own resume: fine
    r = run("pretrain", folder, *TINY, "-o", target, "--force")
    assert r.exit_code == 0 and json.loads(str(np.load(target)["meta"]))["epochs"] == 2, r.output


def test_pretrain_reports_the_steps_within_an_epoch(tmp_path, folder):
    """An epoch of 400 steps takes a minute or more: a terminal shows its
    steps go by, not only a line when it ends."""
    from nncompress.pretrain import pretrain
    seen = []
    pretrain([str(folder)], 2, str(tmp_path / "p.npz"), warn=lambda m: None, epochs=2, steps=3, batch_size=2, crop=16,
             layers="conv3:4:relu,conv3:out", on_progress=lambda what, done, total: seen.append((what, done, total)))
    assert seen == [("epoch 1/2", 1, 3), ("epoch 1/2", 2, 3), ("epoch 1/2", 3, 3),
                    ("epoch 2/2", 1, 3), ("epoch 2/2", 2, 3), ("epoch 2/2", 3, 3)]


def test_replacing_an_average_is_not_offered_a_resume(tmp_path, folder):
    for name in ("a.npz", "b.npz"):
        assert run("pretrain", folder, *TINY, "-o", tmp_path / name).exit_code == 0
    avg = ["pretrain", folder, "-s", 2, "--average", tmp_path / "a.npz", "--average", tmp_path / "b.npz", "-q"]
    assert run(*avg, "-o", tmp_path / "m.npz").exit_code == 0
    r = run(*avg, "-o", tmp_path / "m.npz")
    assert r.exit_code == 2 and "(an average of priors); write elsewhere with -o, or replace it with --force" in r.output
    (tmp_path / "mine.npz").write_bytes(b"mine")  # a file of the user's that is no prior: not offered a resume
    r = run("pretrain", folder, *TINY, "-o", tmp_path / "mine.npz")
    assert r.exit_code == 2 and "--resume" not in r.output and "already exists" in r.output, r.output
    assert (tmp_path / "mine.npz").read_bytes() == b"mine"


def test_a_resume_counts_the_images_as_its_prior_did(tmp_path, folder):
    """A prior made now records the images it can use: one of them turning
    unreadable before a resume is said (it matched the files listed)."""
    target = tmp_path / "p.npz"
    assert run("pretrain", folder, *TINY, "-o", target).exit_code == 0
    (folder / "sub" / "c.png").write_bytes(b"broken now")
    r = run("pretrain", folder, "-s", 2, "--resume", target, "-e", 3)
    assert r.exit_code == 0 and "the folders hold 1 training images; the prior trained on 2" in r.output, r.output
