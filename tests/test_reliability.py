"""Every bad input gets one clear line and exit 2; faults lose nothing."""

import os
import signal
import stat
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from nncompress.cli import app
from nncompress.compresser import Compresser

runner = CliRunner()
TINY = ["--layers", "8:relu,out:sigmoid", "-e", "3", "--frames", "0", "-q"]


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(r, code=2, match=None):
    assert r.exit_code == code, (r.exit_code, r.output)
    lines = [l for l in r.output.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert "Traceback" not in r.output
    if match:
        assert match in lines[0], lines[0]
    return lines[0]


def png_header_only(path, w, h):
    """A PNG whose IHDR claims w x h pixels, with a tiny IDAT."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
                     + chunk(b"IEND", b""))


# ------------------------------------------------------------------ images

def test_missing_path(tmp_path):
    one_line_error(cli("train", tmp_path / "nope.png"), match="does not exist")


def test_directory(tmp_path):
    one_line_error(cli("train", tmp_path), match="is a folder")


def test_text_file_named_png(tmp_path):
    p = tmp_path / "fake.png"
    p.write_text("hello, I am not a picture")
    one_line_error(cli("train", p), match="not an image")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    one_line_error(cli("train", p), match="empty file")


def test_truncated_png(tmp_path, digit):
    p = tmp_path / "cut.png"
    Image.open(digit).resize((200, 200)).save(tmp_path / "big.png")
    p.write_bytes((tmp_path / "big.png").read_bytes()[:300])
    one_line_error(cli("train", p), match="truncated")


def test_a_file_without_read_permission_is_named_as_such(tmp_path, digit, monkeypatch):
    """(Tests run as root, which reads any file: the refusal is simulated.)"""
    from nncompress import imaging
    p = tmp_path / "locked.png"
    Image.open(digit).save(p)
    real = imaging.Image.open

    def locked(path, *a, **k):
        if str(path).endswith("locked.png"):
            raise PermissionError(13, "Permission denied")
        return real(path, *a, **k)

    monkeypatch.setattr(imaging.Image, "open", locked)
    for cmd in ("train", "upscale"):
        one_line_error(cli(cmd, p), match="cannot be read: no permission")


def test_decompression_bomb_is_refused_before_allocating(tmp_path):
    p = tmp_path / "bomb.png"
    png_header_only(p, 100000, 100000)
    import resource
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    one_line_error(cli("train", p), match="100000x100000")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: no 10 GB buffer


def test_one_pixel_image_is_handled_in_coords_and_refused_in_patch_mode(tmp_path):
    p = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (200, 10, 10)).save(p)
    r = cli("train", p, *TINY, "-o", tmp_path / "r")
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "r" / "dot_x4.png").size == (4, 4)
    one_line_error(cli("train", p, "--mode", "patch", "-l", "conv3:4:relu,conv3:out", "-e", 1, "-q",
                       "-o", tmp_path / "p"),
                   match="too small for patch mode")


def test_animated_gif_uses_first_frame_with_a_warning(tmp_path):
    p = tmp_path / "anim.gif"
    frames = [Image.new("L", (8, 8), v) for v in (0, 255)]
    frames[0].save(p, save_all=True, append_images=frames[1:])
    r = cli("train", p, *TINY, "-o", tmp_path / "r")
    assert r.exit_code == 0 and "warning" in r.output and "first" in r.output
    src = Compresser.load(tmp_path / "r" / "model.npz").meta["source"]
    assert src["channels"] == 1


def test_cmyk_jpeg_is_converted(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(p)
    r = cli("train", p, *TINY, "-o", tmp_path / "r")
    assert r.exit_code == 0, r.output
    assert Compresser.load(tmp_path / "r" / "model.npz").meta["source"]["channels"] == 3


def test_16_bit_grayscale_keeps_precision(tmp_path):
    from nncompress.imaging import read_image, write_png
    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(ramp).save(p)
    img, bits = read_image(p)
    assert bits == 16 and len(np.unique(img)) == 64 * 64  # 8 bits would keep 256 levels
    write_png(tmp_path / "back.png", img, 16)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "back.png")), ramp)
    r = cli("train", p, *TINY, "--scale", 1, "-o", tmp_path / "r")
    assert r.exit_code == 0
    assert np.asarray(Image.open(tmp_path / "r" / "g16_x1.png")).dtype == np.uint16


# ------------------------------------------------------- specs and options

def test_yaml_syntax_error_names_the_line(tmp_path, digit):
    c = tmp_path / "c.yaml"
    c.write_text("epochs: 3\nlayers: [8:relu, out\nlr: 0.1\n")
    one_line_error(cli("train", digit, "-c", c), match="line")


def test_unknown_key_lists_valid_keys(tmp_path, digit):
    c = tmp_path / "c.yaml"
    c.write_text("epochz: 3\n")
    line = one_line_error(cli("train", digit, "-c", c), match="unknown key 'epochz'")
    assert "valid keys" in line and "epochs" in line


def test_unknown_activation_suggests(digit):
    one_line_error(cli("train", digit, "-l", "8:sigmiod,out"), match="did you mean 'sigmoid'")


@pytest.mark.parametrize("spec", ["0:relu,out", "--layers=-4:relu,out"])
def test_zero_or_negative_width(digit, spec):
    args = [spec] if spec.startswith("--") else ["-l", spec]
    one_line_error(cli("train", digit, *args), match="positive")


def test_output_width_must_match_channels(rgb_image):
    one_line_error(cli("train", rgb_image, "-l", "8:relu,1:sigmoid"), match="write 3 or 'out'")


def test_empty_layer_items(digit):
    one_line_error(cli("train", digit, "-l", "8:relu,,out"), match="empty")


@pytest.mark.parametrize("flag,value,match", [
    ("--lr", "-0.1", "--lr (lr: in a config) must be a positive"), ("--lr", "nan", "--lr (lr: in a config) must be"),
    ("--epochs", "-2", "--epochs "), ("--batch-size", "-1", "--batch-size (batch_size"),
    ("--scale", "0", "scale"), ("--scale", "-2", "scale"), ("--scale", "nan", "scale"),
])
def test_bad_numbers(digit, flag, value, match):
    one_line_error(cli("train", digit, f"{flag}={value}"), match=match)


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_bad_upscale_scale(tmp_path, digit, value):
    cli("train", digit, *TINY, "-o", tmp_path / "r")
    one_line_error(cli("upscale", tmp_path / "r" / "model.npz", f"--scale={value}"), match="--scale")


def test_output_too_large_is_refused_unless_forced(tmp_path, digit):
    cli("train", digit, *TINY, "-o", tmp_path / "r")
    t0 = time.time()
    one_line_error(cli("upscale", tmp_path / "r" / "model.npz", "--width", 2_000_000, "--height", 2_000_000),
                   match="--force")
    assert time.time() - t0 < 5
    one_line_error(cli("train", digit, *TINY, "--scale", 100000, "-o", tmp_path / "big"), match="--force")
    assert not (tmp_path / "big" / "model.npz").exists()  # refused before training
    # the message gives the limit it applied, not only what is free (22.0 GiB "but only 22.7 GiB is free")
    for r in (cli("upscale", digit, "--scale", 30000, "-o", tmp_path / "huge.png"),
              cli("upscale", tmp_path / "r" / "model.npz", "--width", 2_000_000, "--height", 2_000_000)):
        one_line_error(r, match="more than the")
        assert "GiB it may use (80% of the" in r.output, r.output


# ------------------------------------------------------------- model files

@pytest.mark.parametrize("damage", ["not_zip", "truncated", "missing", "version", "shape", "pickle"])
def test_bad_model_files(tmp_path, digit, damage):
    cli("train", digit, *TINY, "-o", tmp_path / "r")
    good = tmp_path / "r" / "model.npz"
    bad = tmp_path / "bad.npz"
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    if damage == "not_zip":
        bad.write_text("not a zip")
    elif damage == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    else:
        if damage == "missing":
            del arrays["params"]
        elif damage == "version":
            arrays["format_version"] = np.array(7)
        elif damage == "shape":
            arrays["params"] = arrays["params"][:-1]
        elif damage == "pickle":
            arrays["meta"] = np.array([{"x": 1}], dtype=object)
        np.savez(bad, **arrays)
    for cmd in (["info", bad], ["upscale", bad, "-o", tmp_path / "o.png"]):
        one_line_error(cli(*cmd))
    assert not (tmp_path / "o.png").exists()


def test_allow_pickle_is_never_true():
    src = os.path.join(os.path.dirname(__file__), "..", "src", "nncompress")
    for name in os.listdir(src):
        if name.endswith(".py"):
            text = open(os.path.join(src, name)).read()
            assert "allow_pickle=True" not in text.replace(" ", ""), name


# ----------------------------------------------------------------- outputs

def test_failed_run_leaves_earlier_model_untouched(tmp_path, digit):
    out = tmp_path / "r"
    cli("train", digit, *TINY, "-o", out)
    before = (out / "model.npz").read_bytes()
    r = cli("train", digit, "-l", "8:relu,out", "--lr", "1e30", "--optimizer", "sgd", "-e", 50, "--frames", 0,
            "-q", "-o", out, "--force")
    assert r.exit_code == 1 and "smaller learning rate" in r.output and "Traceback" not in r.output
    assert (out / "model.npz").read_bytes() == before
    Compresser.load(out / "replacement_last_good.npz")  # the last good weights, usable (beside the old run's)


def test_unwritable_output_is_reported_before_training(tmp_path, digit):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    t0 = time.time()
    one_line_error(cli("train", digit, "-l", "8:relu,out", "-e", 100000, "-o", blocker / "sub"), match="--out")
    assert time.time() - t0 < 10


def test_input_is_never_overwritten(tmp_path, digit):
    out = tmp_path / "r"
    out.mkdir()
    img = out / "model.npz"  # an image that happens to sit where an output goes
    Image.open(digit).save(img, format="PNG")
    data = img.read_bytes()
    one_line_error(cli("train", img, *TINY, "-o", out), match="overwrite the input")
    assert img.read_bytes() == data


def test_outputs_are_written_atomically(monkeypatch, tmp_path):
    """A writer that dies half way leaves the old file and no temporary."""
    from nncompress.atomic import atomic_write
    target = tmp_path / "x.bin"
    target.write_bytes(b"old")

    def dies(f):
        f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, dies)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.bin"]


# ------------------------------------------------------------------ faults

def _start_training(tmp_path, digit, out, epochs=200000):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "nncompress", "train", digit, "-l", "16:relu,out:sigmoid",
                             "-e", str(epochs), "--frames", "5", "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_sigint_saves_a_usable_model_and_exits_130(tmp_path, digit, sig):
    """Ctrl-C, and SIGTERM (a scheduler, `timeout`, `docker stop`: it
    killed the run with nothing saved), save the last whole epoch."""
    out = tmp_path / "r"
    p = _start_training(tmp_path, digit, out)
    for line in p.stdout:  # wait until epochs are running
        if line.startswith("epoch"):
            break
    p.send_signal(getattr(signal, sig))
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr
    assert "interrupted" in stderr and "--resume" in stderr and "Traceback" not in stderr
    assert cli("info", out / "model.npz").exit_code == 0
    assert cli("upscale", out / "model.npz", "-s", 2, "-o", tmp_path / "u.png").exit_code == 0
    import re
    done = int(re.search(r"interrupted at epoch (\d+) of", stderr).group(1))
    r = cli("train", digit, "--resume", out / "model.npz", "-e", done + 2, "--frames", 0, "-q", "-o", tmp_path / "r2")
    assert r.exit_code == 0, r.output
    assert (out / "digit_3_training.gif").exists()


@pytest.mark.slow
def test_sigkill_never_leaves_a_corrupt_model(tmp_path, digit):
    """Runs killed at random moments leave a complete model: theirs or the
    one before. A first run completes, so every kill has a model to check
    (the test once passed having checked nothing)."""
    out = tmp_path / "r"
    first = _start_training(tmp_path, digit, out, epochs=5)
    first.communicate(timeout=120)
    assert first.returncode == 0 and (out / "model.npz").exists()
    rng = np.random.default_rng(0)
    for i in range(5):
        p = _start_training(tmp_path, digit, out, epochs=int(rng.integers(5, 60)))
        time.sleep(float(rng.uniform(0.5, 3.0)))
        p.kill()
        p.wait()
        Compresser.load(out / "model.npz")  # complete, or the previous one
    leftovers = [f for f in os.listdir(out) if f.endswith(".tmp")]
    assert all(f.startswith(".") for f in leftovers)  # only hidden temporaries, never the final name


def test_a_run_stopped_before_its_first_frame_resumes(tmp_path, digit, monkeypatch):
    """Ctrl-C before the first epoch (patch mode's calibration takes
    seconds) saved a model whose printed --resume command was refused:
    its frames/ folder held no frame yet."""
    import nncompress.compresser
    real = nncompress.compresser.Compresser.train

    def stopped(self, *a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(nncompress.compresser.Compresser, "train", stopped)
    r = cli("train", digit, "-l", "8:relu,out:sigmoid", "-e", 3, "--frames", 2, "-o", tmp_path / "r")
    assert r.exit_code == 130 and "interrupted at epoch 0 of 3" in r.output, r.output
    monkeypatch.setattr(nncompress.compresser.Compresser, "train", real)
    r = cli("train", digit, "--resume", tmp_path / "r" / "model.npz", "-q")
    assert r.exit_code == 0, r.output


def test_writes_go_through_links_and_into_streams(tmp_path):
    """A link at the target was replaced by a file (its target untouched);
    a pipe or device (--json /dev/stdout) was replaced by a file, as root
    even /dev's own. Now a link is written through and a stream written to."""
    import threading
    from nncompress.atomic import atomic_write
    (tmp_path / "real.json").write_bytes(b"old")
    os.symlink("real.json", tmp_path / "link.json")
    atomic_write(tmp_path / "link.json", lambda f: f.write(b"new"))
    assert os.path.islink(tmp_path / "link.json") and (tmp_path / "real.json").read_bytes() == b"new"
    os.symlink(os.devnull, tmp_path / "null")
    atomic_write(tmp_path / "null", lambda f: f.write(b"gone"))
    assert os.path.islink(tmp_path / "null") and os.readlink(tmp_path / "null") == os.devnull
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    atomic_write(fifo, lambda f: f.write(b"streamed"))
    reader.join(10)
    assert got == [b"streamed"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def _nncompress(*args):
    return [sys.executable, "-m", "nncompress", *map(str, args)]


@pytest.mark.slow
def test_dev_stdout_redirected_to_a_file_is_appended_to_not_replaced(tmp_path, digit):
    """`--json /dev/stdout >> log` resolved /dev/stdout to log and replaced
    that file by rename: what log held before, and the table, were lost."""
    log = tmp_path / "log.txt"
    log.write_text("EARLIER\n")
    inode = os.stat(log).st_ino
    with open(log, "a") as out:
        r = subprocess.run(_nncompress("evaluate", digit, "--methods", "bicubic", "--json", "/dev/stdout"),
                           stdout=out, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    text = log.read_text()
    assert os.stat(log).st_ino == inode and text.startswith("EARLIER\n")
    assert '"psnr"' in text and "bicubic" in text.split('"scale"')[1]  # the JSON, then the table after it


@pytest.mark.slow
def test_closed_stdout_and_nohup(tmp_path, digit):
    """Started with standard output closed (>&-, cron, daemons) every
    command failed (an internal error on None); under nohup a SIGHUP
    stopped a run that nohup was meant to keep going."""
    r = subprocess.run(["bash", "-c", " ".join(_nncompress("train", digit, *TINY, "-o", tmp_path / "r")) + " >&-"],
                       stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 0 and (tmp_path / "r" / "model.npz").exists(), r.stderr
    p = subprocess.Popen(_nncompress("train", digit, "-l", "16:relu,out:sigmoid", "-e", 200000, "--frames", 0,
                                     "-o", tmp_path / "n"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"),
                         preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    for line in p.stdout:
        if line.startswith("epoch"):
            break
    p.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert p.poll() is None  # still training
    p.send_signal(signal.SIGTERM)
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 130 and "interrupted" in stderr, stderr


def test_the_run_lock_without_locks_and_against_a_vanishing_file(tmp_path, monkeypatch):
    """A file system without locks (NFS nolock: ENOLCK) was taken for
    another run, for ever; a lock taken on a file that a finishing run had
    just unlinked let two runs in (the lock is taken again on the file at
    the path)."""
    import errno
    import fcntl
    from nncompress.runs import LOCK, run_lock
    real = fcntl.flock

    def no_locks(f, how):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(fcntl, "flock", no_locks)
    with run_lock(str(tmp_path / "nfs")):
        pass
    calls = []

    def unlinked_meanwhile(f, how):
        calls.append(how)
        if len(calls) == 1:
            os.unlink(tmp_path / "r" / LOCK)  # the run that held it ended between our open and our lock
        return real(f, how)
    monkeypatch.setattr(fcntl, "flock", unlinked_meanwhile)
    with run_lock(str(tmp_path / "r")):
        assert len(calls) == 2 and (tmp_path / "r" / LOCK).exists()


def test_a_broken_chunk_after_the_pixels_is_not_an_internal_error(tmp_path):
    """A zTXt after the pixels that Pillow cannot read (an unknown
    compression method) made a 16-bit PNG (whose pixels nncompress reads
    itself) an internal error: its pixels are now kept without that chunk.
    An 8-bit one, which Pillow decodes, is refused as damaged (bad input)."""
    from nncompress import imagefile, pngio
    from nncompress.imaging import ImageError
    body = b"Comment\0\1xx"
    chunk = struct.pack(">I", len(body)) + b"zTXt" + body + struct.pack(">I", zlib.crc32(b"zTXt" + body))
    (tmp_path / "deep.png").write_bytes(pngio.encode16(np.full((16, 16, 3), 1000, np.uint16)))
    ex = Image.Exif()
    ex[0x010F] = "a camera"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "b.png", exif=ex)
    for name in ("deep.png", "b.png"):
        data = (tmp_path / name).read_bytes()
        end = data.rindex(b"IEND") - 4
        (tmp_path / name).write_bytes(data[:end] + chunk + data[end:])
    pic = imagefile.load(tmp_path / "deep.png")
    assert pic.pixels.shape == (16, 16, 3) and pic.bits == 16 and "Comment" not in pic.meta.get("text", {})
    with pytest.raises(ImageError, match="damaged"):
        imagefile.load(tmp_path / "b.png")


def test_written_files_take_the_umask_or_keep_their_mode(tmp_path):
    """Every output was rw-r--r--, whatever the umask (a private photo came
    out world-readable); a replaced file lost its own mode."""
    from nncompress.atomic import atomic_write
    old = os.umask(0o077)
    try:
        atomic_write(tmp_path / "new.bin", lambda f: f.write(b"x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.bin").st_mode) == 0o600
    (tmp_path / "kept.bin").write_bytes(b"old")
    os.chmod(tmp_path / "kept.bin", 0o640)
    atomic_write(tmp_path / "kept.bin", lambda f: f.write(b"new"))
    assert stat.S_IMODE(os.stat(tmp_path / "kept.bin").st_mode) == 0o640


def test_a_full_disk_names_the_file(tmp_path):
    """ENOSPC names no file: the error said 'No space left on device' alone."""
    import errno
    from nncompress.atomic import atomic_write
    from nncompress.cli import describe_error

    def full(f):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with pytest.raises(OSError) as e:
        atomic_write(tmp_path / "big.png", full)
    assert describe_error(e.value) == (1, f"No space left on device: {tmp_path / 'big.png'}")
    assert os.listdir(tmp_path) == []


def test_scripts_may_pass_quiet_to_every_command_and_read_whole_lines(tmp_path, digit):
    """info refused -q (a script that passes it to every command failed);
    off a terminal, evaluate's title broke across two lines."""
    assert cli("train", digit, *TINY, "-o", tmp_path / "r").exit_code == 0
    r = cli("info", tmp_path / "r" / "model.npz", "-q")
    assert r.exit_code == 0 and "parameters" in r.output, r.output
    r = cli("evaluate", digit, "--methods", "bicubic", "-s", 2, "-q")
    assert r.exit_code == 0 and "x2: PSNR (dB) / SSIM on Y, border 2" in r.output.splitlines()[0], r.output


def test_an_interrupted_evaluate_keeps_the_images_it_scored(tmp_path, digit, monkeypatch):
    """Ctrl-C part way threw away the scores already computed: the table
    and the JSON now hold those images, and say how far it got (exit 130)."""
    import json
    import shutil
    import nncompress.evaluate
    for n in ("a.png", "b.png", "c.png"):
        shutil.copy(digit, tmp_path / n)
    real, calls = nncompress.evaluate.upscale_with, []

    def stops_at_the_second(method, *a, **k):
        calls.append(method)
        if len(calls) == 4:  # b.png's second method
            raise KeyboardInterrupt
        return real(method, *a, **k)
    monkeypatch.setattr(nncompress.evaluate, "upscale_with", stops_at_the_second)
    r = cli("evaluate", *(tmp_path / n for n in ("a.png", "b.png", "c.png")), "--methods", "bicubic,nearest",
            "--json", tmp_path / "s.json", "-q", "--save", tmp_path / "saved")
    assert r.exit_code == 130 and "interrupted after 1 of 3 images" in r.output, r.output
    assert sorted(os.listdir(tmp_path / "saved")) == ["a_x2_bicubic.png", "a_x2_nearest.png"]  # b's half: not kept
    assert "a.png" in r.output and "b.png" not in r.output
    saved = json.loads((tmp_path / "s.json").read_text())
    assert list(saved["images"]) == ["a.png"] and saved["interrupted"] == "after 1 of 3 images"
    assert saved["mean"]["bicubic"]["psnr"] == saved["images"]["a.png"]["bicubic"]["psnr"]


def test_a_long_file_name_is_written(tmp_path):
    """A legal 250-byte name failed at the end: its temporary name, the
    name plus 14 characters, went over the 255-byte limit."""
    from nncompress.atomic import atomic_write
    name = "a" * 246 + "_x2.png"
    atomic_write(tmp_path / name, lambda f: f.write(b"x"))
    assert os.listdir(tmp_path) == [name]


def test_a_run_folder_is_held_while_a_run_writes_it(tmp_path, digit):
    """Two trains into one folder (photo.png from two folders both default
    to runs/photo) both succeeded and mixed their files; the second is now
    refused while the first holds the folder, and the lock goes with it."""
    from nncompress.runs import LOCK, run_lock
    out = tmp_path / "r"
    with run_lock(str(out)):
        one_line_error(cli("train", digit, *TINY, "-o", out), match="being written by another nncompress train")
    assert not out.exists()  # made for the lock, empty: gone with it
    assert cli("train", digit, *TINY, "-o", out).exit_code == 0
    assert (out / "model.npz").exists() and not (out / LOCK).exists()


def test_evaluate_json_to_stdout_and_never_over_an_input(tmp_path, digit):
    """--json - prints the scores as JSON (the table to stderr); --json at
    one of the images replaced the photo with JSON."""
    import json
    import shutil
    shutil.copy(digit, tmp_path / "d.png")
    data = (tmp_path / "d.png").read_bytes()
    one_line_error(cli("evaluate", tmp_path / "d.png", "--methods", "bicubic", "--json", tmp_path / "d.png", "-q"),
                   match="is one of the images to score")
    assert (tmp_path / "d.png").read_bytes() == data
    r = subprocess.run([sys.executable, "-m", "nncompress", "evaluate", str(tmp_path / "d.png"), "--methods",
                        "bicubic", "--json", "-"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["images"]["d.png"]["bicubic"]["psnr"] > 10 and "bicubic" in r.stderr


@pytest.mark.slow
def test_a_closed_pipe_does_not_stop_the_work(tmp_path):
    """`nncompress upscale shots | head -1` stopped the batch after the
    first file, silently, exit 1: the files are the work, and go on."""
    shots = tmp_path / "shots"
    shots.mkdir()
    for i in range(4):
        Image.fromarray((np.random.default_rng(i).random((24, 24, 3)) * 255).astype(np.uint8)).save(shots / f"{i}.png")
    p = subprocess.Popen([sys.executable, "-m", "nncompress", "upscale", str(shots), "-s", "2", "--preset", "fast",
                          "-o", str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # the reader goes away at once
    _, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["0.png", "1.png", "2.png", "3.png"]


# ------------------------------------------------------------------ errors

def test_a_bug_is_reported_as_internal_not_as_bad_input(monkeypatch, digit):
    """Only UserError means bad input (exit 2); a stray ValueError is our bug."""
    import nncompress.runs

    def broken(*a, **k):
        raise ValueError("boom")

    monkeypatch.setattr(nncompress.runs, "train_run", broken)
    line = one_line_error(cli("train", digit, *TINY), code=1, match="internal error")
    assert "--debug" in line and "boom" in line
    r = cli("--debug", "train", digit, *TINY)
    assert r.exit_code == 1 and "Traceback" in r.output and "boom" in r.output  # the traceback too, same code
    r = cli("--debug", "upscale", "nothere.png")
    assert r.exit_code == 2 and "Traceback" in r.output and "'nothere.png' does not exist" in r.output  # still 2
    assert cli("upscale", "-h").exit_code == 0 and "Usage" in cli("-h").output


def test_every_user_error_class_derives_from_user_error():
    from nncompress.errors import ImageError, ModelFileError, SpecError, UserError
    assert all(issubclass(c, UserError) for c in (SpecError, ImageError, ModelFileError))
    assert not issubclass(UserError, ValueError)


@pytest.mark.parametrize("spec,match", [("8:relu(2),out", "takes no argument"), ("8:sine(0),out", "w0"),
                                        ("8:relu,out", "bce loss needs")])
def test_bad_layer_arguments_are_user_errors(digit, spec, match):
    one_line_error(cli("train", digit, "-l", spec, "--loss", "bce", "-e", 1, "--frames", 0, "-q"), match=match)


def test_a_new_run_never_replaces_an_old_one_unasked(tmp_path, digit, rgb_image):
    """A run folder that holds a model is the user's work: a new run into
    it is refused (exit 2, before any training) unless --force."""
    out = tmp_path / "r"
    assert cli("train", digit, *TINY, "-o", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    line = one_line_error(cli("train", digit, *TINY, "-o", out), match="already holds a run (a coords model of digit_3.png")
    assert "--resume" in line  # the same image and mode: it could go on
    line = one_line_error(cli("train", rgb_image, *TINY, "--frames", "3", "-o", out), match="already holds a run")
    assert "--resume" not in line  # another image: it could not
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before and not (out / "frames").exists()
    # a replacing run that diverges leaves the old run's model and records alone
    r = cli("train", digit, "-l", "8:relu,out", "--lr", "1e30", "--optimizer", "sgd", "-e", 5, "--frames", 0, "-q",
            "-o", out, "--force")
    assert r.exit_code == 1 and "smaller learning rate" in r.output, r.output
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and "last_good" not in p.name} == before
    r = cli("train", rgb_image, *TINY, "-o", out, "--force")
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.iterdir() if p.is_file())
    assert "rgb_x4.png" in names and not [n for n in names if n.startswith("digit_3")], names
    # another mode's run: --resume is not offered (it could not go on with it)
    one_line_error(cli("train", rgb_image, "--mode", "patch", "--preset", "fast", "--scale", "2", "-q", "-o", out),
                   match="already holds a run (a coords model of rgb.png, 3 epochs); write this one elsewhere")
    # the same image with frames, replaced by a run without: the old GIF goes too
    g = tmp_path / "g"
    assert cli("train", digit, "--layers", "8:relu,out:sigmoid", "-e", "3", "--frames", "2", "-q", "-o", g).exit_code == 0
    assert (g / "digit_3_training.gif").exists()
    assert cli("train", digit, *TINY, "-o", g, "--force").exit_code == 0
    assert not (g / "digit_3_training.gif").exists() and (g / "digit_3_x4.png").exists()


def test_edge_case_messages_say_what_is_wrong(tmp_path, digit):
    one_line_error(cli("upscale", digit, "--prior", "nothere.npz"), match="'nothere.npz' does not exist")
    one_line_error(cli("upscale", digit, "--prior", "huge"), match="'huge' is none of these")
    p = tmp_path / "one.png"
    Image.new("RGB", (1, 1), (9, 9, 9)).save(p)
    r = cli("train", p, *TINY, "-o", tmp_path / "one")  # a flat image: nothing to warn about (was "inf dB")
    assert r.exit_code == 0 and "warning" not in r.output, r.output
    chelsea = os.path.join(os.path.dirname(digit), "chelsea.png")  # (adam through a huge rate overflows on the way)
    r = cli("train", chelsea, "--mode", "patch", "--prior", "none", "--lr", "1e4", "--preset", "fast", "--frames", "0",
            "-q", "-o", tmp_path / "div")
    assert r.exit_code == 1 and "--lr" in r.output and "encountered" not in r.output, r.output  # no numpy noise


def test_force_never_deletes_its_own_input_and_a_failed_one_keeps_the_old_frames(tmp_path, digit):
    import shutil
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy(digit, d / "a.png")
    assert cli("train", d / "a.png", *TINY, "-o", d).exit_code == 0  # writes d/a_x4.png
    r = cli("train", d / "a_x4.png", *TINY, "--scale", "1", "-o", d, "--force")  # trains on the old run's upscale
    assert r.exit_code == 0 and (d / "a_x4.png").exists(), r.output
    (d / "frames" / "mine").mkdir(parents=True)  # an input anywhere below the frames folder a run replaces
    shutil.copy(digit, d / "frames" / "mine" / "b.png")
    one_line_error(cli("train", d / "frames" / "mine" / "b.png", *TINY, "-o", d, "--force"), match="frames folder")
    assert (d / "frames" / "mine" / "b.png").exists()
    # a replacing run that fails: the old run's frames come back with its model, history and GIF
    g = tmp_path / "g"
    assert cli("train", digit, "-l", "8:relu,out:sigmoid", "-e", "4", "--frames", "4", "-q", "-o", g).exit_code == 0
    frames = sorted(p.name for p in (g / "frames").iterdir())
    r = cli("train", digit, "-l", "8:relu,out", "--lr", "1e30", "--optimizer", "sgd", "-e", 5, "--frames", 5, "-q",
            "-o", g, "--force")
    assert r.exit_code == 1, r.output
    assert sorted(p.name for p in (g / "frames").iterdir()) == frames and not (g / "frames.replaced").exists()


def test_resuming_a_renamed_model_never_replaces_the_folders_run(tmp_path, digit, rgb_image):
    import shutil
    assert cli("train", digit, *TINY, "-o", tmp_path / "d").exit_code == 0
    assert cli("train", rgb_image, *TINY, "-o", tmp_path / "s").exit_code == 0
    for f in ("model.npz", "model.checkpoint.npz"):
        shutil.copy(tmp_path / "d" / f, tmp_path / "s" / f.replace("model", "keep"))
    before = (tmp_path / "s" / "model.npz").read_bytes()
    r = cli("train", "--resume", tmp_path / "s" / "keep.npz", "-e", "6")
    assert r.exit_code == 2 and "already holds a run (a coords model of rgb.png" in r.output, r.output
    assert (tmp_path / "s" / "model.npz").read_bytes() == before


def test_a_diverged_runs_folder_is_a_run_too(tmp_path, digit):
    """A run that diverged leaves model_last_good.npz, its history and
    frames: a new run is refused there as anywhere a model is, and a forced
    one that diverges too keeps that file and saves its own beside it."""
    out = tmp_path / "d"
    bad = ["-l", "8:relu,out", "--lr", "1e30", "--optimizer", "sgd", "-e", 5, "--frames", 2, "-q"]
    r = cli("train", digit, *bad, "-o", out)
    assert r.exit_code == 1 and (out / "model_last_good.npz").exists(), r.output
    files = lambda: {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    before = files()
    line = one_line_error(cli("train", digit, *TINY, "-o", out), match="already holds a run (a coords model")
    assert "--resume" in line and "model_last_good.npz" in line and files() == before
    r = cli("train", digit, *bad, "-o", out, "--force")
    assert r.exit_code == 1 and "replacement_last_good.npz" in r.output, r.output
    after = files()
    assert {k: v for k, v in after.items() if "replacement" not in k} == before
