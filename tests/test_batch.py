"""nncompress upscale on images and folders: outputs, formats, metadata,
failures. Tiny images and a one-epoch network keep each run well under a
second."""

import io
import os
import warnings

import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from nncompress import imagefile, internal, pngio, upscaler
from nncompress.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def picture(w=40, h=32, seed=0):
    """A small RGB uint8 picture with edges and texture."""
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    img = np.stack([(x * 6) % 256, (y * 8) % 256, ((x + y) * 5) % 256], -1) + rng.integers(0, 30, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """Work in tmp_path; returns the args that make training tiny."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text("epochs: 1\nsteps: 2\nbatch_size: 2\ncrop: 16\nlayers: conv3:4:relu,conv3:out\n")
    return ["-c", tmp_path / "tiny.yaml", "-q"]


def folder(root, names):
    for n in names:
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        if imagefile.is_image_name(n):
            Image.fromarray(picture(seed=len(n))).save(p)
        else:
            p.write_text("not an image")
    return root


def test_one_image_default_name_and_format(tmp_path, tiny):
    Image.fromarray(picture()).save(tmp_path / "photo.jpg", quality=90)
    r = run("upscale", "photo.jpg", "--scale", 2, *tiny)
    assert r.exit_code == 0, r.output
    im = Image.open(tmp_path / "photo_x2.jpg")
    assert im.format == "JPEG" and im.size == (80, 64)


def test_folder_keeps_names_and_skips_subfolders_without_r(tmp_path, tiny):
    folder(tmp_path / "shots", ["a.png", "b.jpg", "sub/c.png", "notes.txt"])
    r = run("upscale", "shots", "--scale", 2, *tiny)
    assert r.exit_code == 0, r.output
    assert sorted(os.listdir(tmp_path / "shots_x2")) == ["a.png", "b.jpg"]


def test_recursive_mirrors_the_tree(tmp_path, tiny):
    folder(tmp_path / "shots", ["a.png", "sub/c.png", "sub/deeper/d.webp"])
    r = run("upscale", "shots", "-r", "--scale", 2, "-o", "out", *tiny)
    assert r.exit_code == 0, r.output
    found = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert found == ["a.png", "sub/c.png", "sub/deeper/d.webp"]
    assert Image.open(tmp_path / "out/sub/deeper/d.webp").size == (80, 64)


def test_output_inside_the_input_folder_is_not_read_again(tmp_path, tiny):
    folder(tmp_path / "shots", ["a.png"])
    assert run("upscale", "shots", "-r", "--scale", 2, "-o", "shots/up", *tiny).exit_code == 0
    r = run("upscale", "shots", "-r", "--scale", 2, "-o", "shots/up", "--skip-existing", *tiny)
    assert r.exit_code == 0 and not (tmp_path / "shots/up/up").exists()


def test_skip_existing_rewrites_nothing(tmp_path, tiny):
    folder(tmp_path / "shots", ["a.png", "b.png"])
    assert run("upscale", "shots", "--scale", 2, *tiny).exit_code == 0
    outs = [tmp_path / "shots_x2" / n for n in ("a.png", "b.png")]
    before = [p.stat().st_mtime_ns for p in outs]
    r = run("upscale", "shots", "--scale", 2, "--skip-existing", "-c", tmp_path / "tiny.yaml")
    assert r.exit_code == 0, r.output
    assert [p.stat().st_mtime_ns for p in outs] == before
    assert "2 skipped" in r.output
    assert r.output.count("a.png exists") == 1  # said once per file, not as a note too
    assert "status" in r.output and "skipped (exists)" in r.output


@pytest.mark.parametrize("name,fmt", [("up.jpg", "JPEG"), ("up.jpeg", "JPEG"), ("up.webp", "WEBP"), ("up.png", "PNG")])
def test_format_follows_the_output_suffix(tmp_path, tiny, name, fmt):
    Image.fromarray(picture()).save(tmp_path / "in.png")
    assert run("upscale", "in.png", "--scale", 2, "-o", name, *tiny).exit_code == 0
    assert Image.open(tmp_path / name).format == fmt


def test_format_option_and_quality(tmp_path, tiny):
    folder(tmp_path / "shots", ["a.png"])
    assert run("upscale", "shots", "--scale", 2, "--format", "jpg", "--quality", 20, "-o", "lo", *tiny).exit_code == 0
    assert run("upscale", "shots", "--scale", 2, "--format", "jpg", "-o", "hi", *tiny).exit_code == 0
    lo, hi = tmp_path / "lo/a.jpg", tmp_path / "hi/a.jpg"
    assert Image.open(lo).format == Image.open(hi).format == "JPEG"
    assert lo.stat().st_size < 0.7 * hi.stat().st_size  # default quality 95 is far above 20


def test_16_bit_stays_16_bit(tmp_path, tiny):
    deep = (picture().astype(np.uint16) * 257 + np.arange(40, dtype=np.uint16)[None, :, None]).astype(np.uint16)
    (tmp_path / "deep.png").write_bytes(pngio.encode16(deep))
    gray = (deep[..., :1]).astype(np.uint16)
    Image.fromarray(gray[..., 0]).save(tmp_path / "gray16.png")
    for name in ("deep.png", "gray16.png"):
        assert run("upscale", name, "--scale", 2, *tiny).exit_code == 0
        out = tmp_path / name.replace(".png", "_x2.png")
        assert pngio.header(out)[2] == 16
        px = pngio.read16(out)
        assert px.shape[:2] == (64, 80) and np.any(px % 257 != 0)  # real 16-bit values, not 8-bit ones stretched


def test_pngio_reads_pillows_filtered_16_bit_png(tmp_path):
    g = np.random.default_rng(1).integers(0, 65536, (30, 20)).astype(np.uint16)
    Image.fromarray(g).save(tmp_path / "g.png", optimize=True)
    assert np.array_equal(pngio.read16(tmp_path / "g.png")[..., 0], g)
    for c in (2, 3, 4):
        a = np.random.default_rng(c).integers(0, 65536, (9, 7, c)).astype(np.uint16)
        (tmp_path / "c.png").write_bytes(pngio.encode16(a))
        assert np.array_equal(pngio.read16(tmp_path / "c.png"), a)


def test_alpha_kept_and_jpeg_flattens_with_a_note(tmp_path, tiny):
    rgba = np.concatenate([picture(), np.full((32, 40, 1), 255, np.uint8)], -1)
    rgba[:, :20, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "logo.png")
    assert run("upscale", "logo.png", "--scale", 2, *tiny).exit_code == 0
    out = Image.open(tmp_path / "logo_x2.png")
    assert out.mode == "RGBA"
    a = np.asarray(out)[..., 3]
    assert a[:, :30].max() < 40 and a[:, 50:].min() > 215
    r = run("upscale", "logo.png", "--scale", 2, "-o", "logo.jpg", "-c", tmp_path / "tiny.yaml")
    assert r.exit_code == 0 and "flattened onto white" in r.output
    flat = np.asarray(Image.open(tmp_path / "logo.jpg"))
    assert flat.shape[2] == 3 and flat[:, :30].mean() > 240  # transparent -> white


def test_exif_icc_copied_and_orientation_applied(tmp_path, tiny):
    px = picture()
    px[:8, :8] = 255  # a white corner at the top left of the stored pixels
    exif = Image.Exif()
    exif[imagefile.ORIENTATION] = 6  # view rotated 90 degrees clockwise
    exif[0x010F] = "TestCam"
    icc = b"\x00" * 128 + b"not a real profile"
    Image.fromarray(px).save(tmp_path / "cam.jpg", exif=exif.tobytes(), icc_profile=icc, quality=95)
    assert run("upscale", "cam.jpg", "--scale", 2, *tiny).exit_code == 0
    out = Image.open(tmp_path / "cam_x2.jpg")
    assert out.size == (64, 80)  # upright: 32 wide, 40 tall, doubled
    assert out.info["icc_profile"] == icc
    ex = out.getexif()
    assert ex[0x010F] == "TestCam" and ex.get(imagefile.ORIENTATION, 1) == 1
    view = np.asarray(out).mean(axis=2)
    assert view[:12, -12:].mean() > 200 > view[:12, :12].mean()  # the white corner is now top right


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16_bit_orientation_matches_pillow(orientation):
    a = np.arange(5 * 7, dtype=np.uint8).reshape(5, 7)
    im = Image.fromarray(a)
    ex = im.getexif()
    ex[imagefile.ORIENTATION] = orientation
    buf = io.BytesIO()
    im.save(buf, format="PNG", exif=ex.tobytes())
    want = np.asarray(ImageOps.exif_transpose(Image.open(buf)))
    assert np.array_equal(imagefile._transpose_array(a[..., None], orientation)[..., 0], want)


def test_a_broken_file_fails_alone(tmp_path, tiny):
    folder(tmp_path / "shots", ["a.png", "c.png"])
    (tmp_path / "shots/b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    r = run("upscale", "shots", "--scale", 2, "-c", tmp_path / "tiny.yaml")
    assert r.exit_code == 1
    assert "b.png" in r.output and "1 of 3" in r.output
    line = next(l for l in r.output.splitlines() if l.startswith("failed:"))
    assert line.count("b.png") == 1, line  # named once: the message names it already
    assert sorted(os.listdir(tmp_path / "shots_x2")) == ["a.png", "c.png"]


def test_ctrl_c_between_files_keeps_finished_ones(tmp_path, tiny, monkeypatch):
    folder(tmp_path / "shots", ["a.png", "b.png", "c.png"])
    from nncompress import batchview
    original = batchview.BatchView.on_step

    def on_step(self, phase, done, total, info):
        if self.name == "b.png" and phase == "upscale" and done == 1:
            raise KeyboardInterrupt  # after b.png is computed, before it is written
        return original(self, phase, done, total, info)

    monkeypatch.setattr(batchview.BatchView, "on_step", on_step)
    r = run("upscale", "shots", "--scale", 2, "-c", tmp_path / "tiny.yaml")
    assert r.exit_code == 130, r.output
    assert os.listdir(tmp_path / "shots_x2") == ["a.png"]  # no b.png, no temporary file
    monkeypatch.setattr(batchview.BatchView, "on_step", original)
    assert run("upscale", "shots", "--scale", 2, "--skip-existing", *tiny).exit_code == 0
    assert sorted(os.listdir(tmp_path / "shots_x2")) == ["a.png", "b.png", "c.png"]


@pytest.mark.parametrize("args", [
    ["--format", "gif"], ["--quality", 0], ["--quality", 101], ["--scale", 2, "--width", 100],
    ["--scale", 2, "--height", 100], ["--preset", "huge"], ["--scale", -1], ["-o", "up.xyz"],
    ["-o", "up.png", "--format", "jpg"],
])
def test_bad_arguments_exit_2_before_any_work(tmp_path, tiny, args):
    Image.fromarray(picture()).save(tmp_path / "in.png")
    r = run("upscale", "in.png", *args, "-c", tmp_path / "tiny.yaml")
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert sorted(os.listdir(tmp_path)) == ["in.png", "tiny.yaml"]


def test_missing_input_and_name_clash_exit_2(tmp_path, tiny):
    assert run("upscale", "nothing.png", *tiny).exit_code == 2
    Image.fromarray(picture()).save(tmp_path / "in.png")
    Image.fromarray(picture()).save(tmp_path / "in2.png")
    assert run("upscale", "in.png", "in2.png", "-o", "both.png", *tiny).exit_code == 2
    folder(tmp_path / "shots", ["a.png", "a.jpg"])
    r = run("upscale", "shots", "--format", "png", "-c", tmp_path / "tiny.yaml")
    assert r.exit_code == 2 and "both" in r.output


def test_width_alone_keeps_aspect(tmp_path, tiny):
    Image.fromarray(picture()).save(tmp_path / "in.png")
    assert run("upscale", "in.png", "--width", 100, *tiny).exit_code == 0
    assert Image.open(tmp_path / "in_w100.png").size == (100, 80)


def test_a_patch_model_upscales_by_the_scale_it_learned(tmp_path, tiny):
    """A model made at x2 upscaled by the default 4 (x2 twice) when no
    scale was given; now by its own 2, and by -s, --width or a config's
    scale when given. A coords model (any size) keeps the default 4."""
    Image.fromarray(picture()).save(tmp_path / "in.png")  # 40x32
    assert run("upscale", "in.png", "--scale", 2, "--save-model", *tiny).exit_code == 0
    r = run("upscale", "in_x2.npz", "-q")
    assert r.exit_code == 0 and Image.open(tmp_path / "in_80x64.png").size == (80, 64), r.output
    r = run("upscale", "in_x2.npz", "-s", 4, "-q")
    assert r.exit_code == 0 and Image.open(tmp_path / "in_160x128.png").size == (160, 128), r.output
    assert run("upscale", "in_x2.npz", "--width", 120, "-q").exit_code == 0
    assert Image.open(tmp_path / "in_120x96.png").size == (120, 96)
    import json
    with np.load(tmp_path / "in_x2.npz") as z:  # a record without its scale (hand-edited, or old): named as made
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    del meta["settings"]["scale"]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "noscale.npz", **arrays)
    r = run("upscale", "noscale.npz", "-o", "ns", "-q")
    assert r.exit_code == 0, r.output
    [made] = os.listdir(tmp_path / "ns")
    assert made == "in_{}x{}.png".format(*Image.open(tmp_path / "ns" / made).size)
    assert run("train", "in.png", "-l", "8:relu,out:sigmoid", "-e", 2, "--frames", 0, "-o", "c", "-q").exit_code == 0
    r = run("upscale", tmp_path / "c" / "model.npz", "-q")
    assert r.exit_code == 0 and (tmp_path / "c" / "in_160x128.png").exists(), r.output


def test_a_folder_without_r_says_which_subfolders_it_left_out(tmp_path, tiny):
    folder(tmp_path / "shots", ["a.png", "sub/b.png", ".hidden/c.png"])
    (tmp_path / "shots" / "empty").mkdir()
    folder(tmp_path / "elsewhere", ["d.png"])
    os.symlink("../elsewhere", tmp_path / "shots" / "link")  # -r follows no link: not said to be left out
    r = run("upscale", "shots", "-s", 2, *tiny)
    assert r.exit_code == 0 and "left out 1 subfolder of 'shots' with images in it (sub); -r upscales them too" in r.output
    r = run("upscale", "shots", "-s", 2, "-r", "-o", "all", *tiny)
    assert r.exit_code == 0 and "left out" not in r.output, r.output


def test_info_json_types_a_patch_models_record(tmp_path, tiny):
    """--json gave yes/no facts as 1.0/0.0 and the epoch kept as 6.0."""
    import json
    Image.fromarray(picture()).save(tmp_path / "in.png")
    assert run("upscale", "in.png", "--scale", 2, "--save-model", "--preset", "fast", "-q").exit_code == 0
    facts = json.loads(run("info", "in_x2.npz", "--json").output)
    assert facts["learned_finetune"] is False and facts["learned_lowres"] is True


@pytest.mark.parametrize("ext", ["png", "jpg", "webp"])
def test_skip_existing_redoes_an_output_cut_short(tmp_path, tiny, ext):
    """--skip-existing skipped an output whose header still gave the right
    size but whose end was cut off (a copy or a full disk elsewhere)."""
    Image.fromarray(picture()).save(tmp_path / f"in.{ext}")
    assert run("upscale", f"in.{ext}", "-s", 2, *tiny).exit_code == 0
    whole = (tmp_path / f"in_x2.{ext}").read_bytes()
    r = run("upscale", f"in.{ext}", "-s", 2, "--skip-existing")
    assert r.exit_code == 0 and "skipped" in r.output, r.output
    (tmp_path / f"in_x2.{ext}").write_bytes(whole[:len(whole) * 2 // 3])
    if ext != "webp":  # (Pillow reads a WebP's size only from a whole file)
        assert imagefile.size_of(tmp_path / f"in_x2.{ext}") == (64, 80)  # the header still reads
    r = run("upscale", f"in.{ext}", "-s", 2, "--skip-existing", *tiny)
    assert r.exit_code == 0 and Image.open(tmp_path / f"in_x2.{ext}").size == (80, 64)
    Image.open(tmp_path / f"in_x2.{ext}").load()  # whole again


def test_whole_files_with_bytes_after_their_end_are_whole(tmp_path):
    """Phones and cameras append data after a JPEG's end marker (and tools
    after a PNG's IEND): still whole, so --skip-existing keeps them."""
    for ext in ("jpg", "png"):
        Image.fromarray(picture()).save(tmp_path / f"a.{ext}")
        data = (tmp_path / f"a.{ext}").read_bytes()
        (tmp_path / f"t.{ext}").write_bytes(data + b"SEFH" + bytes(3000))
        (tmp_path / f"cut.{ext}").write_bytes(data[:-20])
        assert imagefile.looks_whole(tmp_path / f"a.{ext}") and imagefile.looks_whole(tmp_path / f"t.{ext}")
        assert not imagefile.looks_whole(tmp_path / f"cut.{ext}")


def test_save_model_only_when_asked(tmp_path, tiny):
    Image.fromarray(picture()).save(tmp_path / "in.png")
    assert run("upscale", "in.png", "--scale", 2, *tiny).exit_code == 0
    assert not list(tmp_path.glob("*.npz"))
    assert run("upscale", "in.png", "--scale", 2, "--save-model", *tiny).exit_code == 0
    assert (tmp_path / "in_x2.npz").exists()
    assert not (tmp_path / "in_x2.checkpoint.npz").exists()  # a model to upscale with, not to resume
    r = run("upscale", tmp_path / "in_x2.npz", "--scale", 2, "-o", "again.png", *tiny)
    assert r.exit_code == 0 and Image.open(tmp_path / "again.png").size == (80, 64)
    r = run("upscale", tmp_path / "in_x2.npz", "--scale", 2, "-o", "again.png", "--skip-existing")
    assert r.exit_code == 0 and "skipped (--skip-existing): again.png exists" in r.output, r.output
    before = (tmp_path / "in_x2.npz").read_bytes()  # a model given as an input is never overwritten by another
    r = run("upscale", "in.png", "in_x2.npz", "--scale", 2, "--save-model", *tiny)
    assert r.exit_code == 2 and "which is an input" in r.output and (tmp_path / "in_x2.npz").read_bytes() == before
    (tmp_path / "in_x2.npz.d").mkdir()
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "in_x2.npz").mkdir()  # a folder where --save-model's model goes
    r = run("upscale", "in.png", "--scale", 2, "--save-model", "-o", "keep", *tiny)
    assert r.exit_code == 2 and "a folder 'keep/in_x2.npz' is where --save-model keeps" in r.output, r.output
    # a model's output, named from its record before any work, never lands on another input or output of the call
    (tmp_path / "ov").mkdir()
    Image.fromarray(picture(20, 10, seed=5)).save(tmp_path / "ov" / "in_80x64.png")
    mine = (tmp_path / "ov" / "in_80x64.png").read_bytes()
    r = run("upscale", "in_x2.npz", "ov/in_80x64.png", "--scale", 2, "-o", "ov", *tiny)
    assert r.exit_code == 2 and "would be written to 'ov/in_80x64.png', which is an input" in r.output, r.output
    assert (tmp_path / "ov" / "in_80x64.png").read_bytes() == mine and len(list((tmp_path / "ov").iterdir())) == 1
    r = run("upscale", "in_x2.npz", "in_x2.npz.d/../in_x2.npz", "--scale", 2, "-o", "ov2", "-q")
    assert r.exit_code == 2 and "give each input once" in r.output, r.output
    import shutil
    shutil.copy(tmp_path / "in_x2.npz", tmp_path / "twin.npz")  # two models of one image: one output name
    r = run("upscale", "in_x2.npz", "twin.npz", "--scale", 2, "-o", "ov3", "-q")
    assert r.exit_code == 2 and "'in_x2.npz' and 'twin.npz' would both be written to 'ov3/in_80x64.png'" in r.output
    assert not (tmp_path / "ov3").exists()  # refused before the first one was written
    r = run("upscale", "in_x2.npz", "twin.npz", "-i", "in.png", "--scale", 2, "-o", "ov4", "-q")  # and with --input
    assert r.exit_code == 2 and "would both be written to 'ov4/in_80x64.png'" in r.output and not (tmp_path / "ov4").exists()
    (tmp_path / "in_80x64.png").mkdir()  # a folder where a model's default output goes
    for more in ([], ["--skip-existing"]):
        r = run("upscale", "in_x2.npz", "--scale", 2, *more)
        assert r.exit_code == 2 and "a folder 'in_80x64.png' is where the upscale" in r.output, r.output
    Image.fromarray(picture(30, 20, seed=3)).save(tmp_path / "other.png")
    r = run("upscale", tmp_path / "in_x2.npz", "-i", "other.png", "--scale", 2, "-o", "other_up.png", "-q")
    assert r.exit_code == 0 and Image.open(tmp_path / "other_up.png").size == (60, 40), r.output
    # two inputs whose upscales differ only by format would keep one model over the other
    Image.fromarray(picture()).save(tmp_path / "in.webp", lossless=True)
    r = run("upscale", "in.png", "in.webp", "--scale", 2, "--save-model", "-o", "both", *tiny)
    assert r.exit_code == 2 and "--save-model would keep the models of 'in.png' and 'in.webp'" in r.output, r.output
    assert not (tmp_path / "both").exists()


def test_tiles_meet_without_seams(monkeypatch):
    """TILE_PAD covers what an output pixel depends on: the balanced
    preset's depth (6 conv3 layers, x4 in two stages) with random weights and
    full detail gain, so the network's reach is tested, not only the base
    upscale's (a tiny training run leaves the residual near zero)."""
    img = picture(96, 64).astype(np.float32) / 255
    layers = ",".join(["conv3:4:relu"] * 5 + ["conv3:out"])
    s = upscaler.patch_settings(4, overrides={"epochs": 1, "steps": 2, "batch_size": 2, "crop": 16, "layers": layers})
    comp = upscaler.train(img, 8, s)
    comp.net.params[...] = np.random.default_rng(1).normal(0, 0.3, comp.net.params.shape)
    comp.state.alpha = 1.0

    def up(part, size):
        return comp.upscale(*size, image=part)

    whole = upscaler.apply(up, img, (256, 384)).astype(int)
    monkeypatch.setattr(upscaler, "TILE_ABOVE", 0)
    monkeypatch.setattr(upscaler, "TILE", 32)
    assert upscaler.tile_plan(64, 96, (256, 384)) is not None
    tiled = upscaler.apply(up, img, (256, 384)).astype(int)
    assert np.abs(tiled - whole).max() <= 1
    monkeypatch.setattr(upscaler, "TILE_PAD", 0)  # the check can fail: no context, seams
    assert np.abs(upscaler.apply(up, img, (256, 384)).astype(int) - whole).max() > 1


@pytest.mark.parametrize("scale, grid", [(3, 4), (2.5, 8)])
def test_tiles_meet_without_seams_at_part_steps_learned_from_the_image(monkeypatch, scale, grid):
    """--prior none at x3 learns two equal steps of 1.73 and goes to 7/4 of
    the input first (x2.5: 1.58, 13/8): tiles on multiples of 4 (8) meet
    without seams, random weights at full detail gain; a side that is not
    such a multiple is made whole."""
    img = picture(96, 64).astype(np.float32) / 255
    layers = ",".join(["conv3:4:relu"] * 5 + ["conv3:out"])
    s = upscaler.patch_settings(scale, overrides={"epochs": 1, "steps": 2, "batch_size": 2, "crop": 16,
                                                  "layers": layers, "prior": "none"})
    comp = upscaler.train(img, 8, s)
    comp.net.params[...] = np.random.default_rng(1).normal(0, 0.3, comp.net.params.shape)
    comp.state.alpha = 1.0
    size = (round(64 * scale), round(96 * scale))
    assert len(internal.stages(comp.net, (64, 96), size, comp.state.train_scale)) == 2

    def up(part, size):
        return comp.upscale(*size, image=part)

    whole = upscaler.apply(up, img, size).astype(int)
    monkeypatch.setattr(upscaler, "TILE_ABOVE", 0)
    monkeypatch.setattr(upscaler, "TILE", 32)
    assert internal.stages_grid(comp.net, (64, 96), size, comp.state.train_scale) == grid
    assert upscaler.tiled_before_training(64, 96, size, s)
    plan = upscaler.tile_plan(64, 96, size, grid=grid)
    assert plan is not None and len(plan) == 6 and all(r[0] % grid == 0 and c[0] % grid == 0 for r, c, *_ in plan)
    assert np.abs(upscaler.upscale_with(comp, img, size).astype(int) - whole).max() <= 1
    assert not upscaler.tiled_before_training(66, 96, (round(66 * scale), size[1]), s)  # 66 x 7/4, x 13/8: not whole


@pytest.mark.parametrize("scale", [2, 4, 2.5, 1.5, 8, 2.125])
def test_tiles_meet_without_seams_with_the_builtin_prior(monkeypatch, scale):
    """TILE_PAD also covers the deepest built-in prior (the x2 prior reaches
    13 input pixels, then back-projection spreads), one pass each side; at
    a fractional scale p/q the tiles' edges fall on multiples of q (x2.5:
    x2, then x1.25 of that; x8: x4, then x2)."""
    img = picture(96, 64).astype(np.float32) / 255
    comp = upscaler.train(img, 8, upscaler.patch_settings(scale, preset="fast"))
    size = (round(64 * scale), round(96 * scale))

    def up(part, size):
        return comp.upscale(*size, image=part)

    whole = upscaler.apply(up, img, size).astype(int)
    monkeypatch.setattr(upscaler, "TILE_ABOVE", 0)
    monkeypatch.setattr(upscaler, "TILE", 32)
    assert internal.stages_grid(comp.net, (64, 96), size, comp.state.train_scale) == 1
    plan = upscaler.tile_plan(64, 96, size)
    assert plan is not None and len(plan) == 6
    assert np.abs(upscaler.apply(up, img, size).astype(int) - whole).max() <= 1


def test_training_crop_picks_the_busy_part():
    img = np.zeros((300, 200, 1), np.float32)
    img[200:260, 120:180] = np.random.default_rng(0).random((60, 60, 1))
    crop = upscaler.training_crop(img, side=100)
    assert crop.shape == (100, 100, 1) and crop.std() > 0.2


def test_one_broken_image_is_a_one_line_error(tmp_path, tiny):
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    r = run("upscale", "b.png", "-c", tmp_path / "tiny.yaml")
    assert r.exit_code == 2
    assert [l for l in r.output.splitlines() if l.strip()] == [l for l in r.output.splitlines() if l.startswith("error:")]
    assert sorted(os.listdir(tmp_path)) == ["b.png", "tiny.yaml"]


def test_preset_reaches_patch_mode_through_make_settings():
    from nncompress import patch
    fast = upscaler.patch_settings(2, "fast")
    assert (fast.preset, fast.steps, fast.epochs) == ("fast", patch.PRESETS["fast"]["steps"], patch.PRESETS["fast"]["epochs"])
    assert upscaler.patch_settings(2).preset == "balanced"
    assert upscaler.patch_settings(2, None, {"preset": "best"}).steps == patch.PRESETS["best"]["steps"]  # the config's
    assert upscaler.patch_settings(2, "fast", {"preset": "best", "epochs": 1}).preset == "fast"  # the flag wins
    assert upscaler.patch_settings(2, "fast", {"epochs": 1}).epochs == 1  # the config over the preset


@pytest.mark.parametrize("text", ["epochs: -1\n", "preset: huge\n"])
def test_bad_config_exits_2_before_any_work(tmp_path, tiny, text):
    folder(tmp_path / "shots", ["a.png", "b.png"])
    (tmp_path / "bad.yaml").write_text(text)
    r = run("upscale", "shots", "-c", tmp_path / "bad.yaml")
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert sorted(os.listdir(tmp_path)) == ["bad.yaml", "shots", "tiny.yaml"]


def test_outputs_that_cannot_be_written_are_refused_before_any_work(tmp_path, tiny, monkeypatch):
    Image.fromarray(picture()).save(tmp_path / "a.png")
    Image.fromarray(picture(seed=1)).save(tmp_path / "b.png")
    (tmp_path / "afile").write_text("a file, not a folder")
    monkeypatch.setattr(upscaler, "train", lambda *a, **k: pytest.fail("trained before refusing the output"))
    r = run("upscale", "a.png", "-s", 2, "-o", "afile/x.png", *tiny)
    assert r.exit_code == 2 and "'afile' is a file, not a folder" in r.output, r.output
    r = run("upscale", "a.png", "b.png", "-s", 2, "-o", "afile", *tiny)
    assert r.exit_code == 2 and "-o 'afile' is a file; give a folder" in r.output, r.output
    r = run("upscale", "a.png", "-s", 2, "-o", "x.gif", *tiny)
    assert r.exit_code == 2 and "not GIF" in r.output, r.output


def test_a_missing_output_folder_is_made(tmp_path, tiny):
    Image.fromarray(picture()).save(tmp_path / "a.png")
    r = run("upscale", "a.png", "-s", 2, "-o", "new/deeper/x.png", *tiny)
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "new" / "deeper" / "x.png").size == (80, 64)


def test_a_folder_without_images_is_bad_input(tmp_path, tiny):
    folder(tmp_path / "notes", ["a.txt"])
    r = run("upscale", "notes", *tiny)
    assert r.exit_code == 2 and "no images found in 'notes'" in r.output and "-r" not in r.output, r.output
    folder(tmp_path / "nested", ["sub/a.png"])
    r = run("upscale", "nested", *tiny)
    assert r.exit_code == 2 and "add -r" in r.output, r.output


def test_an_input_given_twice_is_named_as_such(tmp_path, tiny):
    Image.fromarray(picture()).save(tmp_path / "a.png")
    r = run("upscale", "a.png", "./a.png", "-s", 2, *tiny)
    assert r.exit_code == 2 and "'a.png' and './a.png' are one file; give each input once" in r.output, r.output
    (tmp_path / "f").mkdir()
    Image.fromarray(picture()).save(tmp_path / "f" / "b.png")
    r = run("upscale", "f", "f/b.png", "-s", 2, *tiny)
    assert r.exit_code == 2 and "'f/b.png' is given twice" in r.output, r.output


def test_what_cannot_apply_is_said(tmp_path, tiny):
    Image.fromarray(picture()).save(tmp_path / "a.png")
    r = run("upscale", "a.png", "-s", 2, "--quality", 50, *tiny[:-1])
    assert r.exit_code == 0 and "--quality ignored (PNG is lossless)" in r.output, r.output
    deep = (picture().astype(np.uint16) * 257)
    pngio_path = tmp_path / "deep.png"
    pngio_path.write_bytes(pngio.encode16(deep))
    r = run("upscale", "deep.png", "-s", 2, "--format", "jpg", *tiny[:-1])
    assert r.exit_code == 0 and "16-bit depth written as 8-bit" in r.output, r.output
    for bad, said in ((["-"], "standard input"), (["a.png", "-o", "-"], "standard output"),
                      (["a.png", "--format", "bmp"], "not BMP")):
        r = run("upscale", *bad, *tiny)
        assert r.exit_code == 2 and said in r.output, r.output


def test_format_names_are_forgiving_and_the_r_hint_ignores_the_output(tmp_path, tiny):
    Image.fromarray(picture()).save(tmp_path / "a.png")
    r = run("upscale", "a.png", "-s", 2, "--format", "JPEG", *tiny)
    assert r.exit_code == 0 and Image.open(tmp_path / "a_x2.jpg").format == "JPEG", r.output
    (tmp_path / "only" / "up").mkdir(parents=True)
    r = run("upscale", "only", "-o", "only/up", *tiny)
    assert r.exit_code == 2 and "no images found" in r.output and "-r" not in r.output, r.output


@pytest.mark.parametrize("width", [50, 60, 80, 120])
def test_the_summary_keeps_names_and_statuses_whole_on_a_narrow_terminal(width):
    from rich.console import Console
    from nncompress.batch import Job, Outcome
    from nncompress.batchview import BatchView
    from nncompress.cli import describe_error
    buf = io.StringIO()
    out = Console(file=buf, width=width, force_terminal=False)
    view = BatchView(describe_error, out, out, False)
    name = "vacation_2024_summer_beach_sunset.png"
    outcomes = [Outcome(Job("image", name, "t.png", name, "png"), "done", 1.0, 451, 1200, (28, 28), (56, 56)),
                Outcome(Job("image", "b.png", "u.png", "b.png", "png"), "skipped")]
    view.summary(outcomes, 2)
    text = buf.getvalue()
    assert "skipped (exists)" in text and "written" in text, text
    first_cells = "".join(line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│"))
    assert name in first_cells, text  # folded over lines, never cut
    assert max(len(line) for line in text.splitlines()) <= width
    assert ("451 B" in text) == (width >= 90) and ("28x28" in text) == (width >= 70)


def test_a_configs_scale_is_used_under_the_flags_and_other_modes_refused(tmp_path, tiny):
    Image.fromarray(picture()).save(tmp_path / "photo.png")
    cfg = tmp_path / "s3.yaml"
    cfg.write_text((tmp_path / "tiny.yaml").read_text() + "scale: 3\n")
    r = run("upscale", "photo.png", "-c", cfg, "-q")
    assert r.exit_code == 0 and Image.open(tmp_path / "photo_x3.png").size == (120, 96), r.output
    r = run("upscale", "photo.png", "-c", cfg, "-s", 2, "-q")  # the flag wins
    assert r.exit_code == 0 and Image.open(tmp_path / "photo_x2.png").size == (80, 64), r.output
    r = run("upscale", "photo.png", "-c", cfg, "--width", 50, "-q")
    assert r.exit_code == 0 and Image.open(tmp_path / "photo_w50.png").size == (50, 40), r.output
    (tmp_path / "zero.yaml").write_text("scale: 0\n")
    r = run("upscale", "photo.png", "-c", tmp_path / "zero.yaml")
    assert r.exit_code == 2 and "the config's scale must be a positive number, got 0" in r.output, r.output
    (tmp_path / "coords.yaml").write_text("mode: coords\n")
    r = run("upscale", "photo.png", "-c", tmp_path / "coords.yaml")
    assert r.exit_code == 2 and "mode: coords" in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_a_locked_folder_or_a_folder_on_the_output_is_refused_before_any_work(tmp_path, tiny, monkeypatch):
    from nncompress import atomic
    Image.fromarray(picture()).save(tmp_path / "a.png")
    (tmp_path / "a_x2.png").mkdir()  # a folder where the upscale goes
    monkeypatch.setattr(upscaler, "train", lambda *a, **k: pytest.fail("trained before refusing the output"))
    for more in ([], ["--skip-existing"]):
        r = run("upscale", "a.png", "-s", 2, *more, *tiny)
        assert r.exit_code == 2 and "a folder 'a_x2.png' is where the upscale of 'a.png' goes" in r.output, r.output
    (tmp_path / "ro").mkdir()
    real = atomic.tempfile.mkstemp

    def mkstemp(*a, dir=None, **k):  # (tests run as root, which writes anywhere: a locked folder is simulated)
        if str(dir).endswith("ro"):
            raise PermissionError(13, "Permission denied")
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)
    r = run("upscale", "a.png", "-s", 2, "-o", "ro/x.png", *tiny)
    assert r.exit_code == 2 and "no permission to write in 'ro'" in r.output, r.output
    r = run("upscale", "a.png", "-s", 2, "-o", "ro/new/", *tiny)  # a folder to be made inside it
    assert r.exit_code == 2 and "no permission to write in 'ro'" in r.output, r.output
    r = run("evaluate", "a.png", "--methods", "bicubic", "-s", 2, "--json", "ro/s.json")
    assert r.exit_code == 2 and "no permission to write in 'ro'" in r.output, r.output
    r = run("evaluate", "a.png", "--methods", "bicubic", "-s", 2, "--save", "ro/ups")  # a folder to be made
    assert r.exit_code == 2 and "no permission to write in 'ro'" in r.output, r.output


def test_an_upscale_never_lands_on_another_input_of_the_call(tmp_path, tiny):
    """``upscale a.png a_x2.png`` wrote a.png's upscale over the user's
    a_x2.png, then upscaled that: refused now, before any work."""
    Image.fromarray(picture()).save(tmp_path / "a.png")
    Image.fromarray(picture(seed=7)).save(tmp_path / "a_x2.png")
    mine = (tmp_path / "a_x2.png").read_bytes()
    r = run("upscale", "a.png", "a_x2.png", "--scale", 2, *tiny)
    assert r.exit_code == 2 and "'a.png' would be written to 'a_x2.png', which is an input of this call" in r.output
    assert (tmp_path / "a_x2.png").read_bytes() == mine and not (tmp_path / "a_x2_x2.png").exists()


def test_a_models_output_size_from_its_header_is_upright(tmp_path):
    """``size_of``, which names a model's upscale of --input before the
    pixels are read, gives an EXIF-rotated photo's upright size."""
    im = Image.fromarray(picture(40, 32))
    exif = im.getexif()
    exif[0x0112] = 6  # shown turned a quarter: 32x40 upright
    im.save(tmp_path / "turned.jpg", exif=exif)
    assert imagefile.size_of(tmp_path / "turned.jpg") == (40, 32)
    assert imagefile.load(tmp_path / "turned.jpg").pixels.shape[:2] == (40, 32)
    assert imagefile.size_of(tmp_path / "missing.jpg") is None


def test_a_transparent_logo_has_no_dark_fringe(tmp_path, tiny):
    """Editors leave black under transparent pixels; resampled as it was,
    that black bled into the edge (1,850 grey pixels on a yellow disk, red
    down to 137 on white). Colour under transparency is filled from the
    visible pixels first; alpha itself is as before."""
    from PIL import ImageDraw
    im = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    ImageDraw.Draw(im).ellipse((8, 8, 32, 32), fill=(255, 220, 0, 255))
    im.save(tmp_path / "logo.png")
    for args in (["--scale", 2, *tiny], ["--scale", 0.5]):
        r = run("upscale", "logo.png", "-o", tmp_path / "out.png", *args)
        assert r.exit_code == 0, r.output
        up = Image.open(tmp_path / "out.png").convert("RGBA")
        white = np.asarray(Image.alpha_composite(Image.new("RGBA", up.size, (255, 255, 255, 255)), up).convert("RGB"))
        assert white[..., 0].min() >= 250, white[..., 0].min()  # yellow and white both have red 255
        a = np.asarray(up)[..., 3]
        assert a.min() == 0 and a.max() == 255


def test_fill_transparent_keeps_what_is_seen():
    from nncompress.imaging import fill_transparent
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (9, 7, 4)).astype(np.float32)
    img[..., 3] = 0
    img[2:5, 1:4, 3] = rng.uniform(0.2, 1, (3, 3))
    img[2:5, 1:4, :3] = [0.2, 0.6, 0.9]
    out = fill_transparent(img)
    seen = img[..., 3] > 0
    np.testing.assert_array_equal(out[seen], img[seen])
    np.testing.assert_array_equal(out[..., 3], img[..., 3])
    np.testing.assert_allclose(out[~seen][:, :3], np.broadcast_to([0.2, 0.6, 0.9], (int((~seen).sum()), 3)), atol=1e-6)
    rgb = img[..., :3]
    assert fill_transparent(rgb) is rgb  # no alpha: untouched


def test_a_float_tiff_keeps_its_values(tmp_path):
    """Pillow's own conversion clipped a [0, 1] float image to black."""
    from nncompress.imaging import read_image
    from nncompress.errors import ImageError
    a = np.random.default_rng(0).uniform(0, 1, (12, 10)).astype(np.float32)
    Image.fromarray(a).save(tmp_path / "f.tif")
    img, bits = read_image(tmp_path / "f.tif")
    assert bits == 16 and np.allclose(img[..., 0], a, atol=1e-6)
    Image.fromarray(a * 255).save(tmp_path / "g.tif")
    assert np.allclose(read_image(tmp_path / "g.tif")[0][..., 0], a, atol=1e-5)
    Image.fromarray(a - 1).save(tmp_path / "h.tif")
    with pytest.raises(ImageError, match="32-bit float image must hold values in 0..1"):
        read_image(tmp_path / "h.tif")


def test_an_output_too_large_for_its_format_is_refused_first(tmp_path, tiny):
    """A 4200-pixel-wide WebP at x4 failed after the work as an internal
    error (libwebp holds 16383 pixels a side)."""
    Image.new("RGB", (4200, 8)).save(tmp_path / "wide.webp", lossless=True)
    r = run("upscale", "wide.webp", "--scale", 4, *tiny)
    assert r.exit_code == 2 and "WEBP holds at most 16383 pixels a side; use --format png" in r.output, r.output
    assert not (tmp_path / "wide_x4.webp").exists()


def test_a_folders_links_and_earlier_upscales_are_not_upscaled_again(tmp_path, tiny):
    """A link beside its file refused the whole folder ('given twice'); and
    `upscale .` puts FOLDER_x2 inside the folder, which a later -r run
    upscaled again (FOLDER_x3/FOLDER_x2/...)."""
    shots = folder(tmp_path / "shots", ["a.png", "b.png"])
    os.symlink("a.png", shots / "link.png")
    os.chdir(shots)
    r = run("upscale", ".", "-r", "--scale", 2, *tiny[:2])
    assert r.exit_code == 0 and "'./link.png' is './a.png' again (a link); upscaled once" in r.output, r.output
    assert sorted(os.listdir(shots / "shots_x2")) == ["a.png", "b.png"]
    r = run("upscale", ".", "-r", "--scale", 3, *tiny[:2])
    assert r.exit_code == 0 and "left out './shots_x2': an earlier upscale of this folder" in r.output, r.output
    assert sorted(os.listdir(shots / "shots_x3")) == ["a.png", "b.png"]


def test_skip_existing_redoes_an_upscale_of_another_size(tmp_path, tiny):
    """Into one -o folder, an x2 and then an x4 run write the same names:
    --skip-existing skipped the x4 as done, leaving x2 images."""
    folder(tmp_path / "shots", ["a.png"])
    assert run("upscale", "shots", "--scale", 2, "-o", "pp", *tiny).exit_code == 0
    assert Image.open(tmp_path / "pp" / "a.png").size == (80, 64)
    r = run("upscale", "shots", "--scale", 4, "-o", "pp", "--skip-existing", *tiny)
    assert r.exit_code == 0 and Image.open(tmp_path / "pp" / "a.png").size == (160, 128), r.output
    r = run("upscale", "shots", "--scale", 4, "-o", "pp", "--skip-existing")
    assert r.exit_code == 0 and "skipped" in r.output, r.output


def test_width_and_height_together_warn_when_they_stretch(tmp_path, tiny):
    folder(tmp_path / "shots", ["a.png"])  # 40x32
    r = run("upscale", "shots", "--width", 120, "--height", 40, *tiny)
    assert r.exit_code == 0 and "change the shape of 1 of 1 image(s)" in r.output, r.output
    r = run("upscale", "shots", "--width", 80, "--height", 64, "-o", "same", *tiny)
    assert r.exit_code == 0 and "change the shape" not in r.output, r.output


def test_a_lossless_webp_stays_lossless(tmp_path, tiny):
    from nncompress.imagefile import _webp_lossless
    Image.fromarray(picture()).save(tmp_path / "l.webp", lossless=True)
    Image.fromarray(picture()).save(tmp_path / "y.webp", quality=80)
    assert _webp_lossless(tmp_path / "l.webp") and not _webp_lossless(tmp_path / "y.webp")
    assert run("upscale", "l.webp", "y.webp", "--scale", 2, *tiny).exit_code == 0
    assert _webp_lossless(tmp_path / "l_x2.webp") and not _webp_lossless(tmp_path / "y_x2.webp")
    assert run("upscale", "l.webp", "--scale", 2, "--quality", 90, "-o", "q.webp", *tiny).exit_code == 0
    assert not _webp_lossless(tmp_path / "q.webp")  # a quality asked for: lossy


def test_a_broken_link_says_so(tmp_path, tiny):
    os.symlink("gone.png", tmp_path / "link.png")
    r = run("upscale", "link.png", "--scale", 2, *tiny)
    assert r.exit_code == 2 and "'link.png' is a link to 'gone.png', which does not exist" in r.output, r.output


def test_exif_image_size_tags_follow_the_upscale(tmp_path, tiny):
    im = Image.fromarray(picture())
    ex = im.getexif()
    ex[0x010F] = "Camera maker"
    ex.get_ifd(0x8769).update({0xA002: 40, 0xA003: 32})
    im.save(tmp_path / "e.jpg", exif=ex)
    assert run("upscale", "e.jpg", "--scale", 2, *tiny).exit_code == 0
    out = Image.open(tmp_path / "e_x2.jpg").getexif()
    assert out.get_ifd(0x8769)[0xA002] == 80 and out.get_ifd(0x8769)[0xA003] == 64 and out[0x010F] == "Camera maker"


def _header_only_png(path, w, h):
    """A PNG that claims w x h pixels and holds none (its header is all a size check reads)."""
    import struct
    import zlib
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b""))


def test_sizes_of_big_images_are_read_from_their_headers(tmp_path, tiny):
    """Pillow refuses headers above ~179 MP (DecompressionBombError, not an
    OSError): a finished 16000x12000 upscale broke --skip-existing (an
    internal error), and a 20000x20000 input was no longer refused as bad
    input."""
    _header_only_png(tmp_path / "out.png", 16000, 12000)
    assert imagefile.size_of(tmp_path / "out.png") == (12000, 16000)
    _header_only_png(tmp_path / "huge.png", 20000, 20000)
    r = run("upscale", "huge.png", "--scale", 2, *tiny)
    assert r.exit_code == 2 and "claims 20000x20000 pixels, over the limit" in r.output, r.output


def test_a_transparent_image_in_tiles_equals_one_pass(monkeypatch):
    """The colour under transparent pixels is filled once for the whole
    image: filled per tile, pull-push (not local) differed at the seams by
    up to 12 levels on opaque pixels."""
    img = picture(96, 64).astype(np.float32) / 255
    alpha = np.zeros((64, 96, 1), np.float32)
    alpha[10:50, 20:80] = 1
    alpha[30:34, 40:90] = 0.5
    img = np.concatenate([img * (alpha > 0), alpha], -1)
    comp = upscaler.train(img, 8, upscaler.patch_settings(2, preset="fast"))
    whole = upscaler.upscale_with(comp, img, (128, 192)).astype(int)
    monkeypatch.setattr(upscaler, "TILE_ABOVE", 0)
    monkeypatch.setattr(upscaler, "TILE", 32)
    tiled = upscaler.upscale_with(comp, img, (128, 192)).astype(int)
    seen = whole[..., 3] > 0
    assert np.abs(tiled - whole)[seen].max() <= 1


def test_skip_existing_redoes_a_models_file_of_another_size(tmp_path, tiny):
    Image.fromarray(picture()).save(tmp_path / "in.png")
    assert run("upscale", "in.png", "--scale", 2, "--save-model", *tiny).exit_code == 0
    assert run("upscale", "in_x2.npz", "--scale", 2, "-o", "up.png", "-q").exit_code == 0
    r = run("upscale", "in_x2.npz", "--scale", 3, "-o", "up.png", "--skip-existing", "-q")
    assert r.exit_code == 0 and Image.open(tmp_path / "up.png").size == (120, 96), r.output


def test_only_an_upscales_own_folder_names_are_left_out(tmp_path, tiny):
    shots = folder(tmp_path / "wall", ["a.png", "wall_1920x1080/b.png", "wall_x2/c.png"])
    os.symlink(shots, tmp_path / "link")
    from nncompress.batch import find_images
    import warnings
    for where in (shots, tmp_path / "link"):  # through a link, the folder's own name still counts
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            assert [os.path.relpath(p, where) for p in find_images(str(where), True)] == ["a.png", "wall_1920x1080/b.png"]
        said = [str(w.message) for w in said]
        assert any("wall_x2': an earlier upscale" in m for m in said), said
        assert any("wall_1920x1080' may be an earlier --width/--height upscale" in m for m in said), said


def test_the_eta_counts_from_when_a_phase_was_first_heard_of(monkeypatch):
    from rich.console import Console
    from nncompress import batchview
    from nncompress.batch import Job
    clock = [0.0]
    monkeypatch.setattr(batchview.time, "perf_counter", lambda: clock[0])
    out = io.StringIO()
    view = batchview.BatchView(lambda e: (1, str(e)), Console(file=out), Console(file=io.StringIO()))
    monkeypatch.setattr(batchview, "PLAIN_EVERY", 0)
    for f in range(2):
        view.on_file(f, 2, Job("image", "a.png", "b.png", "a.png", "png"))
        for done in (1, 2, 3):  # tiles of 2 s each, first heard of when the first one ends
            clock[0] += 2
            view.on_step("upscale", done, 4, {})
    lines = [l.strip() for l in out.getvalue().splitlines() if "tile" in l]
    assert lines == ["upscaling tile 1/4", "upscaling tile 2/4 eta 4s", "upscaling tile 3/4 eta 2s"] * 2, lines


def test_a_float_tiff_that_overshoots_one_a_little_is_still_zero_to_one(tmp_path):
    from nncompress.imaging import read_image
    a = np.linspace(0, 1, 120, dtype=np.float32).reshape(10, 12)
    a[0, 0] = 1.001
    Image.fromarray(a).save(tmp_path / "f.tif")
    img = read_image(tmp_path / "f.tif")[0][..., 0]
    assert img.max() == 1 and abs(img[5, 5] - a[5, 5]) < 1e-6


XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmp:Rating="5" xmlns:xmp="http://ns.adobe.com/xap/1.0/"/></rdf:RDF></x:xmpmeta>')


@pytest.mark.parametrize("src,out", [("jpg", "jpg"), ("png", "png"), ("webp", "webp"), ("jpg", "png"), ("png16", "png")])
def test_xmp_text_comment_and_dpi_are_kept(tmp_path, tiny, src, out):
    """A photographer's ratings and keywords (XMP), PNG text, a JPEG
    comment and the DPI were dropped; each is kept where the output
    format holds it (the DPI as it was: the print grows with the pixels)."""
    from PIL import PngImagePlugin
    pixels = picture()
    name = f"m.{'png' if src == 'png16' else src}"
    if src == "jpg":
        Image.fromarray(pixels).save(tmp_path / name, xmp=XMP, comment=b"taken at dawn", dpi=(300, 300))
    elif src == "webp":
        Image.fromarray(pixels).save(tmp_path / name, xmp=XMP, lossless=True)
    else:
        info = PngImagePlugin.PngInfo()
        info.add_text("Title", "a cat")
        info.add_itxt("XML:com.adobe.xmp", XMP.decode())
        if src == "png16":
            (tmp_path / name).write_bytes(pngio.encode16(pixels.astype(np.uint16) * 257, text={"Title": "a cat",
                                          "XML:com.adobe.xmp": XMP.decode()}, dpi=(300, 300)))
        else:
            Image.fromarray(pixels).save(tmp_path / name, pnginfo=info, dpi=(300, 300))
    r = run("upscale", name, "--scale", 2, "-o", f"up.{out}", *tiny)
    assert r.exit_code == 0, r.output
    got = Image.open(tmp_path / f"up.{out}")
    xmp = got.info.get("xmp") or got.info.get("XML:com.adobe.xmp")
    assert xmp and (xmp.encode() if isinstance(xmp, str) else xmp) == XMP
    if src in ("png", "png16"):
        assert got.info["Title"] == "a cat"
    if src == "jpg":
        assert (got.info.get("comment") or got.info.get("Comment", "").encode()) == b"taken at dawn"
    if src != "webp":
        assert np.allclose(got.info["dpi"], (300, 300), atol=0.01)
    if src == "png16":
        assert pngio.is_deep_png(tmp_path / "up.png")


def _png_chunk(kind, body):
    import struct
    import zlib
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_png_text_after_the_pixels_is_kept(tmp_path, tiny):
    """Text chunks after a PNG's pixels (tEXt, zTXt, iTXt, an XMP packet)
    are kept: Pillow reads them as it decodes the pixels (``load`` asks for
    the EXIF, which decodes a PNG); of two chunks of one keyword, the later."""
    import zlib
    from PIL import PngImagePlugin
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "early")
    info.add_text("Place", "here")
    ex = Image.Exif()
    ex[0x010F] = "a camera"  # an eXIf before the pixels: asking for the EXIF then decodes nothing
    Image.fromarray(picture()).save(tmp_path / "late.png", pnginfo=info, exif=ex)
    data = (tmp_path / "late.png").read_bytes()
    late = (_png_chunk(b"tEXt", b"Author\0someone") + _png_chunk(b"tEXt", b"Title\0late")
            + _png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"squeezed"))
            + _png_chunk(b"iTXt", b"Caption\0\1\0en\0\0" + zlib.compress("caf\u00e9".encode()))
            + _png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + XMP))
    end = data.rindex(b"IEND") - 4
    (tmp_path / "late.png").write_bytes(data[:end] + late + data[end:])
    want = {"Title": "late", "Place": "here", "Author": "someone", "Comment": "squeezed", "Caption": "caf\u00e9"}
    assert imagefile.load(tmp_path / "late.png").meta["text"] == want
    r = run("upscale", "late.png", "--scale", 2, "-o", "up.png", *tiny)
    assert r.exit_code == 0, r.output
    got = Image.open(tmp_path / "up.png")
    got.load()
    assert {k: got.text[k] for k in want} == want
    xmp = got.info.get("XML:com.adobe.xmp")
    assert xmp and xmp.encode() == XMP


def test_size_of_turns_as_read_image_does(tmp_path):
    """A PNG's eXIf after its pixels and a TIFF's orientation (which Pillow
    applies as it opens the file) gave sizes other than the upscale's."""
    import struct
    import zlib
    from nncompress.imaging import read_image
    im = Image.fromarray(picture(40, 20))
    ex = im.getexif()
    ex[0x0112] = 6
    im.save(tmp_path / "o.tif", exif=ex)
    im.save(tmp_path / "early.png", exif=ex)
    im.save(tmp_path / "late.png")
    data, body = (tmp_path / "late.png").read_bytes(), ex.tobytes()[6:]
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    end = data.rindex(b"IEND") - 4
    (tmp_path / "late.png").write_bytes(data[:end] + chunk + data[end:])
    for name in ("o.tif", "early.png", "late.png"):
        assert imagefile.size_of(tmp_path / name) == read_image(tmp_path / name)[0].shape[:2] == (40, 20), name


def test_a_models_source_is_filled_under_transparency(tmp_path):
    """A model saved before the fill (its source unfilled) is filled as it
    loads, so a resume or an upscale of it has no dark fringe either."""
    from nncompress.compresser import Compresser
    img = np.zeros((24, 24, 4), np.float32)
    img[6:18, 6:18] = [1.0, 0.8, 0.0, 1.0]
    comp, filled = Compresser.for_image(img, 8, upscaler.patch_settings(2, preset="fast"))
    assert np.allclose(filled[0, 0, :3], [1.0, 0.8, 0.0]) and filled[0, 0, 3] == 0
    comp.source = img  # as an older nncompress kept it
    comp.save(tmp_path / "m.npz")
    again = Compresser.load(tmp_path / "m.npz")
    assert np.allclose(again.source[0, 0, :3], [1.0, 0.8, 0.0], atol=1 / 255)


def test_a_model_fine_tuned_for_x2_warns_at_x3(tmp_path):
    """A fine-tune checked on whole x2 steps, used at x3 (x2, then x1.5):
    the part step where it measured worse than the prior as trained."""
    from nncompress import patch
    from nncompress.spec import make_settings
    s = make_settings(dict(patch.DEFAULTS), scale=2.0, frames=0)
    state = patch.State(train_scale=2.0, lowres=1.0, finetune=1.0)
    assert "ends in a part step" in patch.upscale_warning(s, state, 3.0)
    assert patch.upscale_warning(s, state, 2.0) is None and patch.upscale_warning(s, state, 4.0) is None
    assert patch.upscale_warning(s, patch.State(train_scale=2.0, lowres=1.0, finetune=0.0), 3.0) is None


def test_a_link_that_sorts_first_gives_way_to_its_file(tmp_path, tiny):
    shots = folder(tmp_path / "shots", ["a.png"])
    os.symlink("a.png", shots / "0link.png")
    from nncompress.batch import find_images
    with pytest.warns(UserWarning, match="'.*0link.png' is '.*a.png' again"):
        assert [os.path.basename(p) for p in find_images(str(shots), False)] == ["a.png"]


def test_the_memory_check_counts_the_transparent_fill(monkeypatch):
    from nncompress import batch, compresser
    monkeypatch.setattr(compresser, "available_memory", lambda: 100 * 2**20)  # 80 MiB may be used
    batch._check_memory((1000, 1000), 3, 8, False, 500 * 500)  # 9 MB of output: fine
    with pytest.raises(batch.BatchError, match="needs about"):  # with alpha, the fill over 1.44 MP: ~81 MB more
        batch._check_memory((1000, 1000), 4, 8, False, 1200 * 1200)
    batch._check_memory((1000, 1000), 4, 8, True, 1200 * 1200)  # --force


def test_the_memory_check_counts_an_upscale_made_in_one_piece(monkeypatch):
    """--prior none at x2.5 learns equal steps of 1.58 and goes to 13/8 of
    the input first: on sides that are not multiples of 8 that stage leaves
    the grid, so it is made in one piece, and its working arrays (3.4 GB
    for 7505x5005) are counted; on 3000x2000 it is tiled."""
    from nncompress import batch, compresser
    monkeypatch.setattr(compresser, "available_memory", lambda: 2 * 2**30)
    none = upscaler.patch_settings(2.5, overrides={"prior": "none"})
    assert not upscaler.tiled_before_training(2002, 3002, (5005, 7505), none)
    assert upscaler.tiled_before_training(2000, 3000, (5000, 7500), none)
    assert upscaler.tiled_before_training(2002, 3002, (5005, 7505), upscaler.patch_settings(2.5))
    batch._check_memory((5000, 7500), 3, 8, False, whole=False)  # 112 MB in tiles: fine
    with pytest.raises(batch.BatchError, match="needs about 3.5 GiB"):
        batch._check_memory((5000, 7500), 3, 8, False, whole=True)


def test_best_says_when_it_is_balanced(tmp_path):
    """At x4 and x3 the built-in prior is used as trained, so --preset best
    has nothing more to do than balanced: it says so, and why (the rule
    patch.train follows); at x2 (fine-tuned) and with --prior none it does
    not. Only planned here (--preset fast would do the work quickly, but
    the note is about best)."""
    from nncompress import batchplan, patch
    Image.fromarray(picture()).save(tmp_path / "a.png")
    img = str(tmp_path / "a.png")
    for scale, said in ((4, "an x4 prior is not fine-tuned: it would learn from the image shrunk 16 times"),
                        (3, "x3 ends in a part step of the x2 prior"), (2, None), (1.5, None)):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            batchplan.plan(batchplan.Request([img], scale=scale, preset="best", output=str(tmp_path / "o")))
        notes = [str(w.message) for w in seen if "--preset best" in str(w.message)]
        assert (said in notes[0]) if said else not notes, (scale, notes)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        batchplan.plan(batchplan.Request([img], scale=4, preset="best", overrides={"prior": "none"}))
        batchplan.plan(batchplan.Request([img], scale=4, preset="balanced"))
    assert not [w for w in seen if "--preset best" in str(w.message)]
    assert patch.not_fine_tuned(2.0, 2.0) is None and patch.not_fine_tuned(4.0, 2.0) is None  # x4 of an x2 prior
