"""A training run on disk: the files ``nncompress train`` writes, and the
side-by-side comparison GIF of several runs. Reports through callbacks."""

import csv
import io
import os
import re
from dataclasses import dataclass

from PIL import Image, ImageDraw

from . import imaging
from .atomic import atomic_write
from .compresser import Compresser
from .spec import Settings, SpecError
from .training import TrainingDiverged

FRAME_RE = re.compile(r"^epoch_(\d+)\.png$")


class RunInterrupted(Exception):
    """Ctrl-C during training; everything so far was saved."""

    def __init__(self, paths):
        super().__init__("interrupted")
        self.paths = paths


@dataclass
class RunPaths:
    out: str
    stem: str
    scale: float

    @property
    def model(self):
        return os.path.join(self.out, "model.npz")

    @property
    def last_good(self):
        return os.path.join(self.out, "model_last_good.npz")

    @property
    def upscaled(self):
        return os.path.join(self.out, f"{self.stem}_x{self.scale:g}.png")

    @property
    def frames(self):
        return os.path.join(self.out, "frames")

    @property
    def gif(self):
        return os.path.join(self.out, f"{self.stem}_training.gif")

    @property
    def history(self):
        return os.path.join(self.out, "history.csv")


@dataclass
class RunResult:
    paths: RunPaths
    compresser: Compresser


def prepare_output(out_dir, image_path, paths: RunPaths):
    """Make the folder and prove it writable before any training starts;
    refuse outputs that would overwrite the input image."""
    try:
        os.makedirs(paths.frames, exist_ok=True)
        probe = os.path.join(out_dir, ".nncompress-write-test")
        with open(probe, "wb"):
            pass
        os.unlink(probe)
    except OSError as e:
        raise SpecError(f"cannot write to output folder '{out_dir}' ({e.strerror}); choose another with --out") from None
    src = os.path.realpath(image_path)
    for p in (paths.model, paths.upscaled, paths.gif, paths.history):
        if os.path.realpath(p) == src:
            raise SpecError(f"the output '{p}' would overwrite the input image; choose another --out")


def train_run(image_path, settings: Settings, out_dir=None, resume=None, on_epoch=None, on_info=None,
              upscale_output=True, force=False):
    """Train on one image and write model.npz, the upscale, frames, GIF and
    history.csv into ``out_dir``. ``on_epoch(done, total, loss, psnr,
    seconds, rows)`` returns True to stop early."""
    img, bits = imaging.read_image(image_path)
    stem = os.path.splitext(os.path.basename(image_path))[0]
    out_dir = out_dir or os.path.join("runs", stem)
    paths = RunPaths(out_dir, stem, settings.scale)
    if resume:
        comp = Compresser.load(resume)
        src = comp.meta["source"]
        if (src["height"], src["width"], src["channels"]) != img.shape:
            raise SpecError(f"--resume model was trained on a {src['width']}x{src['height']} image with "
                            f"{src['channels']} channel(s); this image is {img.shape[1]}x{img.shape[0]}x{img.shape[2]}")
        if comp.mode != settings.mode:
            raise SpecError(f"--resume model is a {comp.mode} model; drop --mode or use --mode {comp.mode}")
    else:
        comp, _ = Compresser.for_image(img, bits, settings, name=os.path.basename(image_path))
    if upscale_output:
        comp.check_output_size(*comp.output_size(scale=settings.scale), force)
    prepare_output(out_dir, image_path, paths)
    if on_info:
        on_info(comp, paths)

    history, frames = [], []

    def epoch_cb(done, total, loss, dt, rows):
        p = comp.impl.loss_psnr(loss, settings, comp.state)
        history.append((comp.meta["epochs"], loss, p, dt))
        return bool(on_epoch and on_epoch(done, total, loss, p, dt, rows))

    def frame_cb(epoch, picture):
        view = imaging.array_to_pil(picture)
        imaging.write_png(os.path.join(paths.frames, f"epoch_{epoch:06d}.png"), view)
        frames.append((epoch, view))

    def save_all(model_path=paths.model):
        comp.save(model_path)
        _write_history(paths.history, history)
        if frames:
            write_training_gif(paths.gif, frames)

    try:
        comp.train(img, settings, on_epoch=epoch_cb, on_frame=frame_cb if settings.frames else None)
    except KeyboardInterrupt:
        save_all()
        raise RunInterrupted(paths) from None
    except TrainingDiverged as e:
        save_all(paths.last_good)  # an earlier run's model.npz stays as it was
        raise TrainingDiverged(f"{e} Saved them to {paths.last_good}") from None
    save_all()
    if upscale_output:
        h, w = comp.output_size(scale=settings.scale)
        imaging.write_png(paths.upscaled, comp.upscale(h, w), bits)
    return RunResult(paths, comp)


def _write_history(path, rows):
    def write(f):
        t = io.TextIOWrapper(f, encoding="utf-8", newline="")
        w = csv.writer(t)
        w.writerow(["epoch", "loss", "psnr_db", "seconds"])
        for e, loss, p, dt in rows:
            w.writerow([e, f"{loss:.8g}", "" if p is None else f"{p:.4f}", f"{dt:.4f}"])
        t.flush()
        t.detach()
    atomic_write(path, write)


def write_training_gif(path, frames, fps=8):
    """frames: list of (epoch, PIL image) -> labelled looping GIF."""
    imaging.write_gif(path, [imaging.label_frame(im, f"epoch {e}") for e, im in frames], fps=fps)


# -------------------------------------------------------------- animate

def read_frames(run_dir):
    """[(epoch, path)] from RUN_DIR/frames, sorted by epoch."""
    folder = os.path.join(run_dir, "frames")
    if not os.path.isdir(run_dir):
        raise SpecError(f"run folder '{run_dir}' does not exist")
    if not os.path.isdir(folder):
        raise SpecError(f"'{run_dir}' has no frames/ folder; train with --frames N (N > 0) first")
    found = sorted((int(m.group(1)), os.path.join(folder, f))
                   for f in os.listdir(folder) if (m := FRAME_RE.match(f)))
    if not found:
        raise SpecError(f"'{folder}' holds no frames (epoch_NNNNNN.png)")
    return found


def animate(run_dirs, out_path, labels=None, fps=8, size=256):
    """One GIF, each run a labelled panel, frames aligned by epoch: at each
    epoch any run shows its latest frame at or before it."""
    if labels is not None and len(labels) != len(run_dirs):
        raise SpecError(f"--labels has {len(labels)} names for {len(run_dirs)} runs")
    runs = [read_frames(d) for d in run_dirs]
    labels = labels or [os.path.basename(os.path.normpath(d)) for d in run_dirs]
    epochs = sorted({e for run in runs for e, _ in run})
    cache = {}

    def panel(path):
        if path not in cache:
            im = Image.open(path).convert("RGB")
            f = size / max(im.size)
            cache[path] = im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))),
                                    Image.NEAREST if f >= 2 else Image.LANCZOS)
        return cache[path]

    pad, top = 6, 18
    out = []
    for e in epochs:
        shown = []
        for run in runs:
            earlier = [p for ep, p in run if ep <= e]
            shown.append(panel(earlier[-1] if earlier else run[0][1]))
        W = sum(p.width for p in shown) + pad * (len(shown) + 1)
        H = max(p.height for p in shown) + top + pad
        canvas = Image.new("RGB", (W, H), "white")
        d = ImageDraw.Draw(canvas)
        x = pad
        for p, name in zip(shown, labels):
            canvas.paste(p, (x, top))
            d.text((x, 3), name, fill="black")
            x += p.width + pad
        out.append(imaging.label_frame(canvas, f"epoch {e}"))
    imaging.write_gif(out_path, out, fps=fps)
    return len(out)
