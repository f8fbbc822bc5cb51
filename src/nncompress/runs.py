"""A training run on disk: the files ``nncompress train`` writes, and the
side-by-side comparison GIF of several runs. Reports through callbacks."""

import contextlib
import csv
import io
import os
import re
import shlex
import shutil
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from . import imaging
from .atomic import atomic_write
from .checkpoint import path_for
from .compresser import Compresser
from .errors import UserError
from .metrics import psnr_rgb
from .spec import Settings, SpecError
from .timing import Phases
from .training import TrainingDiverged

FRAME_RE = re.compile(r"^epoch_(\d+)\.png$")


class RunInterrupted(Exception):
    """Ctrl-C during training; everything up to the last whole epoch was saved."""

    def __init__(self, paths, image, epoch, epochs, finished=None, upscale_missing=False):
        super().__init__("interrupted")
        self.paths, self.image, self.epoch, self.epochs = paths, image, epoch, epochs
        self.finished = finished  # why the run is over as it is (nothing to go on with), or None
        self.upscale_missing = upscale_missing  # trained to the end, stopped while writing its upscale

    def resume_command(self):
        """A command that goes on where this run stopped, as given."""
        return " ".join(shlex.quote(a) for a in ("nncompress", "train", self.image, "--resume", self.paths.model))


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
    seconds: dict  # this session's wall time by phase (the model's meta["seconds"] adds up every session)


def check_outputs(image_path, paths: RunPaths):
    """Refuse outputs that would overwrite the input image."""
    src = os.path.realpath(image_path)
    for p in (paths.model, paths.upscaled, paths.gif, paths.history):
        if os.path.realpath(p) == src:
            raise SpecError(f"the output '{p}' would overwrite the input image; choose another --out")
    if src.startswith(os.path.realpath(paths.frames) + os.sep):
        raise SpecError(f"the input image is in the output's frames folder '{paths.frames}', whose frames a new run "
                        f"replaces; choose another --out")


def prepare_output(out_dir, paths: RunPaths, frames):
    """Make the folder (and its frames/ when ``frames``) and prove it
    writable before any training starts."""
    try:
        os.makedirs(paths.frames if frames else out_dir, exist_ok=True)
        probe = os.path.join(out_dir, ".nncompress-write-test")
        with open(probe, "wb"):
            pass
        os.unlink(probe)
    except OSError as e:
        raise SpecError(f"cannot write to output folder '{out_dir}' ({e.strerror}); choose another with --out") from None


ASIDE = ".replaced-run"  # a replaced run's files wait here until the run replacing it has saved


def _check_replace(out_dir, paths: RunPaths, force, settings: Settings, img, resume):
    """A new run into a folder that holds another run's model: refused
    (the user's work), unless ``force``. Returns that run's files (model,
    checkpoint, history, frames, its upscale and GIF), for ``_set_aside``."""
    held = paths.model if os.path.exists(paths.model) else paths.last_good if os.path.exists(paths.last_good) else None
    if held is None:
        return []
    what, old = f"a {os.path.basename(held)}", None
    try:
        old = Compresser.load(held)
        what = f"a {old.mode} model of {old.meta['source']['name']}, {old.checkpoint.epoch} epochs"
    except (UserError, OSError):  # unreadable: still the user's file
        pass
    if not force:
        src = old.meta["source"] if old is not None else {}
        same = (old is not None and old.mode == settings.mode and not resume
                and (src.get("height"), src.get("width"), src.get("channels")) == img.shape)  # it could go on
        hint = f"go on with it with --resume {held} (-e for more epochs), " if same else ""
        raise SpecError(f"'{out_dir}' already holds a run ({what}); {hint}write this one elsewhere with --out, "
                        f"or replace it with --force")
    files = [paths.model, path_for(paths.model), paths.last_good, path_for(paths.last_good), paths.history, paths.frames]
    if old is not None:
        theirs = RunPaths(out_dir, os.path.splitext(old.meta["source"]["name"])[0], old.settings.scale)
        files += [theirs.upscaled, theirs.gif]
    return files


def _set_aside(out_dir, files, keep):
    """Move ``files`` (those that exist; never one in ``keep``, this run's
    input) into ``out_dir``/ASIDE; returns that folder."""
    aside = os.path.join(out_dir, ASIDE)
    os.makedirs(aside, exist_ok=True)
    for f in dict.fromkeys(files):
        if os.path.exists(f) and os.path.realpath(f) not in keep:
            os.rename(f, os.path.join(aside, os.path.basename(f)))
    return aside


def _put_back(out_dir, aside):
    """The replacing run failed (in this process): its records (frames,
    history) go and the replaced run's files come back from ``aside``, its
    model last."""
    def remove(path):
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.unlink(path)

    for name in ("frames", "history.csv"):  # the replacing run's, whether or not the old run had them
        remove(os.path.join(out_dir, name))
    for name in sorted(os.listdir(aside), key=lambda n: n == "model.npz"):
        remove(os.path.join(out_dir, name))
        os.rename(os.path.join(aside, name), os.path.join(out_dir, name))
    os.rmdir(aside)


def _clear_stale_frames(folder, after):
    """Delete the frames (epoch_NNNNNN.png) in ``folder`` of epochs after
    ``after`` (a resumed run's start; -1 for a new run): an earlier run into
    the same output left them, and they would mix into this run's
    ``animate``."""
    if not os.path.isdir(folder):
        return
    for f in os.listdir(folder):
        m = FRAME_RE.match(f)
        if m and int(m.group(1)) > after:
            os.unlink(os.path.join(folder, f))


LOCK = ".nncompress.lock"  # held (flock) while a run writes its folder


@contextlib.contextmanager
def run_lock(out_dir):
    """Hold ``out_dir`` for one run: a second ``train`` into the same folder
    at the same time (two photo.png from two folders both default to
    runs/photo) is refused rather than mixing the two runs' files. The lock
    goes with the process, a killed one's too; so does a folder made for a
    run that wrote nothing."""
    try:
        import fcntl
    except ImportError:  # (Windows: no lock)
        yield
        return
    import errno
    made = not os.path.isdir(out_dir)
    path = os.path.join(out_dir, LOCK)
    while True:
        try:
            os.makedirs(out_dir, exist_ok=True)
            f = open(path, "a")
        except OSError as e:
            raise SpecError(f"cannot write to output folder '{out_dir}' ({e.strerror}); choose another with "
                            f"--out") from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            f.close()
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise SpecError(f"'{out_dir}' is being written by another nncompress train; wait for it to "
                                f"finish, or give another -o") from None
            f = None  # a file system without locks (NFS mounted nolock, some FUSE and SMB): no lock there
            break
        try:  # the file locked is still the one at the path (a run ending now unlinks it): else again
            if os.fstat(f.fileno()).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        f.close()
    try:
        yield
    finally:
        if f is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)
            f.close()
        if made:
            with contextlib.suppress(OSError):
                os.rmdir(out_dir)  # only if empty: a run that stopped before writing anything


def train_run(*args, **kw):
    """``_train_run``, its run folder held (``run_lock``) while it writes."""
    with contextlib.ExitStack() as stack:
        return _train_run(*args, lock=lambda d: stack.enter_context(run_lock(d)), **kw)


def _train_run(image_path, settings: Settings, out_dir=None, resume=None, on_epoch=None, on_info=None,
               upscale_output=True, force=False, on_progress=None, lock=None):
    """Train on one image and write model.npz (with its checkpoint), the
    upscale, frames, GIF and history.csv into ``out_dir``.

    ``settings.epochs`` is the total: with ``resume`` (a model.npz) training
    goes on from the model's epoch to it, exactly as if never stopped, and
    ``image_path`` may be None to use the image the model records. The
    history and frames so far are kept. ``on_epoch(done, total, loss, psnr,
    seconds, rows)`` returns True to stop early; ``on_progress(what, done,
    total)`` reports the other slow phases. Raises RunInterrupted on Ctrl-C."""
    phases = Phases()
    earlier_rows, earlier_frames = [], []
    if resume:
        comp = Compresser.load(resume, resume=True)
        image_path = recorded_image(comp, image_path)
    with phases("reading"):
        img, bits = imaging.read_image(image_path)
    stem = os.path.splitext(os.path.basename(image_path))[0]
    out_dir = out_dir or (os.path.dirname(resume) or "." if resume else os.path.join("runs", stem))
    paths = RunPaths(out_dir, stem, settings.scale)
    if resume:
        _check_resume(comp, img, settings)
        if comp.impl.TAKES_IMAGE:  # an upscaler: no dark fringe at alpha edges (for_image does it for a new run)
            img = imaging.fill_transparent(img)
        start = comp.checkpoint.epoch
        folder = os.path.dirname(resume) or "."
        if _own_run(resume, folder):  # the folder's history and frames are this model's
            earlier_rows = [r for r in read_history(os.path.join(folder, "history.csv")) if r[0] <= start]
            if settings.frames and os.path.isdir(os.path.join(folder, "frames")):
                earlier_frames = [(e, p) for e, p in read_frames(folder, empty_ok=True) if e <= start]
    else:
        comp, img = Compresser.for_image(img, bits, settings, name=os.path.basename(image_path))
    comp.meta["source"]["path"] = os.path.abspath(image_path)
    if upscale_output:
        comp.check_output_size(*comp.output_size(scale=settings.scale), force)
    check_outputs(image_path, paths)
    if lock:
        lock(out_dir)
    left = os.path.join(out_dir, ASIDE)
    if os.path.exists(left):  # never guessed at: it may be a live run's, or the user's own
        raise SpecError(f"'{left}' holds the files of a run that a replacing run (--force) set aside and did not "
                        f"finish; move them back into '{out_dir}' (or, if its model.npz is the replacing run's, "
                        f"delete that folder), then run again")
    same_run = bool(resume) and os.path.realpath(out_dir) == os.path.realpath(folder) and _own_run(resume, folder)
    old_files = [] if same_run else _check_replace(out_dir, paths, force, settings, img, resume)
    keep = {os.path.realpath(p) for p in (image_path, resume) if p}  # this run's inputs stay where they are
    aside = _set_aside(out_dir, old_files, keep) if old_files else None  # until this run has saved

    def restore_replaced():  # this run failed, or stopped before it learned anything: the replaced run comes back
        if aside and os.path.isdir(aside):
            _put_back(out_dir, aside)

    history, frames = list(earlier_rows), []
    try:
        prepare_output(out_dir, paths, frames=bool(settings.frames))
        _clear_stale_frames(paths.frames, after=start if same_run else -1)  # another run's folder: all its frames go
        if on_info:
            on_info(comp, paths)
        for e, p in earlier_frames:
            view = imaging.pil_to_array(Image.open(p))[0]
            frames.append((e, imaging.array_to_pil(view)))
            if os.path.realpath(os.path.dirname(p)) != os.path.realpath(paths.frames):
                imaging.write_png(os.path.join(paths.frames, os.path.basename(p)), frames[-1][1])
    except BaseException:
        restore_replaced()
        raise
    timing = dict(comp.meta.get("seconds") or {})

    def epoch_cb(done, total, loss, dt, rows):
        p = comp.impl.loss_psnr(loss, settings, comp.state)
        history.append((done, loss, p, dt))
        return bool(on_epoch and on_epoch(done, total, loss, p, dt, rows))

    def frame_cb(epoch, render):
        with phases("frames"):  # the previews, timed apart from the training steps
            picture = render()
        with phases("writing"):
            view = imaging.array_to_pil(picture)
            imaging.write_png(os.path.join(paths.frames, f"epoch_{epoch:06d}.png"), view)
            frames.append((epoch, view))

    def save_all(model_path=paths.model, checkpoint=True, records=True):
        with phases("writing"):
            comp.meta["seconds"] = phases.record(timing)
            comp.save(model_path, checkpoint=checkpoint)
            if not records:
                return
            _write_history(paths.history, [r for r in history if r[0] <= comp.checkpoint.epoch])
            if frames:
                write_training_gif(paths.gif, [f for f in frames if f[0] <= comp.checkpoint.epoch])
            # frames of epochs the model does not hold (a fine-tune its held-out strip ended at an earlier
            # epoch) go too, as they went from history.csv and the GIF: animate reads the folder
            _clear_stale_frames(paths.frames, after=comp.checkpoint.epoch)

    def save_replacing():  # save_all, saying where the replaced run is if the save fails part way
        try:
            save_all()
        except BaseException:
            if aside and os.path.isdir(aside):
                warnings.warn(f"this run was not saved whole; the run it replaces is kept in '{aside}'")
            raise

    def drop_replaced():  # this run has saved: the replaced run goes
        if aside:
            shutil.rmtree(aside, ignore_errors=True)

    try:
        with phases("training"):
            comp.train(img, settings, on_epoch=epoch_cb, on_frame=frame_cb if settings.frames else None,
                       on_progress=on_progress, score=False)
        with phases("rendering"):
            comp.meta["psnr"] = comp.score(img, on_progress)
    except KeyboardInterrupt:
        if aside and comp.checkpoint.epoch <= (start if resume else 0):
            restore_replaced()  # nothing learned yet: the replaced run stays as it was
            warnings.warn(f"stopped before the first epoch: the run already in '{out_dir}' is kept as it was")
            raise
        save_replacing()
        drop_replaced()
        about = comp.describe()
        done = about.get("note") if about.get("finished") else None
        raise RunInterrupted(paths, image_path, comp.checkpoint.epoch, settings.epochs, done) from None
    except TrainingDiverged as e:
        restore_replaced()  # the replaced run's files (its model_last_good.npz too) stay as they were
        kept = os.path.join(out_dir, "replacement_last_good.npz") if aside else paths.last_good
        save_all(kept, records=not aside)
        raise TrainingDiverged(f"{e} Saved them to {kept}") from None
    except Exception:
        restore_replaced()
        raise
    save_replacing()
    drop_replaced()
    warn_if_useless(comp, img, settings)
    if upscale_output:
        h, w = comp.output_size(scale=settings.scale)
        try:
            with phases("rendering"):
                up = comp.upscale(h, w, bits=bits, on_progress=on_progress)
            with phases("writing"):
                imaging.write_png(paths.upscaled, up, bits)
        except KeyboardInterrupt:  # the model is saved and finished: say how to make what is missing
            raise RunInterrupted(paths, image_path, comp.checkpoint.epoch, settings.epochs,
                                 upscale_missing=True) from None
        del up
        save_all(checkpoint=False)  # the time record now covers the upscale too
    return RunResult(paths, comp, phases.record())


USELESS_MARGIN_DB = 1.0  # a result within this of a flat image of the mean colour learned nothing worth having


def flat_psnr(img):
    """PSNR (dB) of a flat image of ``img``'s mean colour: the floor any
    trained network should clear."""
    return psnr_rgb(np.broadcast_to(img.mean(axis=(0, 1)), img.shape), img)


def warn_if_useless(comp, img, settings):
    """Warn (the run still succeeds) when the result is no better than a
    flat image of the mean colour, saying what to change."""
    got, floor = comp.meta["psnr"], flat_psnr(img)
    if got is not None and np.isfinite(floor) and got < floor + USELESS_MARGIN_DB:  # (a flat image: nothing to miss)
        adam = "" if settings.optimizer == "adam" else " or --optimizer adam"
        warnings.warn(f"the result ({got:.2f} dB) is no better than a flat image of the mean colour "
                      f"({floor:.2f} dB): training did not learn the image. Try more --epochs (now "
                      f"{settings.epochs}), another --lr (now {settings.lr:g}; smaller if the loss jumps about)"
                      f"{adam}", stacklevel=2)


def check_resume_start(was, flags, config):
    """Before settings are made: a resume goes on with the model's mode and
    prior, so another from a flag or a config is refused in those words
    (rather than as the model's layers not fitting the other mode)."""
    for name in ("mode", "prior"):
        want, where = (flags[name], f"--{name}") if flags.get(name) is not None else (config.get(name), f"the config's {name}")
        if name in was and want is not None and want != was[name] and not _same_file(want, was[name]):
            raise SpecError(f"--resume goes on with the model's {name} ({was[name]}), not {want}; drop {where}, "
                            f"or train a new model")


def _own_run(resume, folder):
    """Whether ``resume`` is the run of ``folder`` (whose history and frames
    are its own): the folder's model.npz, or the model_last_good.npz its
    run left when it diverged (a replacing run that diverges writes
    replacement_last_good.npz instead)."""
    return _same_file(resume, os.path.join(folder, "model.npz")) or _same_file(resume, os.path.join(folder, "model_last_good.npz"))


def _same_file(a, b):
    """Whether two settings name one existing file (a prior given as
    ./mine.npz and as mine.npz)."""
    return isinstance(a, str) and isinstance(b, str) and os.path.isfile(a) and os.path.isfile(b) and os.path.samefile(a, b)


def recorded_image(comp, image_path):
    """The image to go on training with: ``image_path``, else the one the
    model records if that file still exists."""
    if image_path:
        return image_path
    src = comp.meta["source"]
    recorded = src.get("path")
    if recorded and os.path.isfile(recorded):
        return recorded
    where = f" (recorded as {recorded}, which no longer exists)" if recorded else ""
    raise SpecError(f"--resume needs the image the model was trained on, {src['name']} "
                    f"({src['width']}x{src['height']}){where}; give it: nncompress train IMAGE --resume MODEL")


def _check_resume(comp, img, settings):
    src = comp.meta["source"]
    if (src["height"], src["width"], src["channels"]) != img.shape:
        raise SpecError(f"--resume model was trained on a {src['width']}x{src['height']} image with "
                        f"{src['channels']} channel(s); this image is {img.shape[1]}x{img.shape[0]}x{img.shape[2]}")
    if comp.mode != settings.mode:
        raise SpecError(f"--resume model is a {comp.mode} model; drop --mode or use --mode {comp.mode}")
    was = comp.settings
    if settings.layers != was.layers:
        own = was.layers if was.prior == "none" else "the prior's"
        raise SpecError(f"--resume goes on with the model's own network ({own}), not {settings.layers}; "
                        f"drop --layers (or the config's layers), or train a new model without --resume")
    about = comp.describe()
    if about.get("finished"):  # (the prior alone, or a fine-tune that a held-out strip ended): nothing to go on with
        raise SpecError(f"the model is finished ({about['note']}): --resume trains no further; for more, train a "
                        f"new run (--preset best, or --prior none to learn from the image alone)")
    for name in ("seed", "optimizer", "prior", "preset"):
        if getattr(settings, name) != getattr(was, name) and not _same_file(getattr(settings, name), getattr(was, name)):
            raise SpecError(f"--resume goes on with the model's {name} ({getattr(was, name)}), not "
                            f"{getattr(settings, name)}; drop --{name} (or the config's {name}), or train a new model")
    done = comp.checkpoint.epoch
    if done >= settings.epochs:
        raise SpecError(f"the model has trained {done} epochs and --epochs is the total ({settings.epochs}); "
                        f"pass --epochs N with N > {done} to train further")
    before = comp.settings.epochs
    if done and settings.epochs != before and settings.schedule != "constant":
        warnings.warn(f"the {settings.schedule} schedule now spans {settings.epochs} epochs (it was {before}), "
                      f"so the learning rate changes at epoch {done}", stacklevel=3)


def read_history(path):
    """[(epoch, loss, psnr or None, seconds)] from a history.csv ([] if absent)."""
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                rows.append((int(r["epoch"]), float(r["loss"]), float(r["psnr_db"]) if r["psnr_db"] else None,
                             float(r["seconds"])))
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, TypeError):
        warnings.warn(f"'{path}' is not a history.csv this version wrote; its rows are not carried over",
                      stacklevel=3)
        return []
    return rows


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

def read_frames(run_dir, empty_ok=False):
    """[(epoch, path)] from RUN_DIR/frames, sorted by epoch (``empty_ok``:
    none yet is fine, for a run stopped before its first frame)."""
    folder = os.path.join(run_dir, "frames")
    if os.path.isfile(run_dir):
        raise SpecError(f"'{run_dir}' is a file; give the run folder that holds it (made by nncompress train)")
    if not os.path.isdir(run_dir):
        raise SpecError(f"run folder '{run_dir}' does not exist")
    if not os.path.isdir(folder):
        raise SpecError(f"'{run_dir}' has no frames/ folder; train with --frames N (N > 0) first")
    found = sorted((int(m.group(1)), os.path.join(folder, f))
                   for f in os.listdir(folder) if (m := FRAME_RE.match(f)))
    if not found and not empty_ok:
        raise SpecError(f"'{folder}' holds no frames (epoch_NNNNNN.png)")
    return found


def _run_record(run_dir):
    """(mode, PSNR of the model, epochs planned) from RUN_DIR/model.npz,
    the PSNR only if the run is done: all its epochs, or ended by its mode
    (a fine-tune a held-out strip stopped; the planned count is then None,
    the last frame's epoch stands for it); a run stopped by Ctrl-C is not
    done. Nones where there is no model (frames alone)."""
    path = os.path.join(run_dir, "model.npz")
    if not os.path.isfile(path):
        return None, None, None
    try:
        comp = Compresser.load(path)
    except UserError:
        return None, None, None
    meta, planned = comp.meta, comp.settings.epochs
    psnr = meta.get("psnr")
    ended = bool(comp.describe().get("finished"))  # its mode ended it sooner (a held-out strip, the prior alone)
    done = ended or meta.get("epochs", 0) >= planned
    ok = done and isinstance(psnr, (int, float)) and np.isfinite(psnr)
    return comp.mode, (float(psnr) if ok else None), (None if ended else planned)


def animate(run_dirs, out_path, labels=None, fps=8, size=256, on_progress=None):
    """One GIF, each run a labelled panel, frames aligned by epoch: at each
    epoch any run shows its latest frame at or before it. ``on_progress(what,
    done, total)`` after each frame."""
    if labels is not None and len(labels) != len(run_dirs):
        raise SpecError(f"--labels has {len(labels)} names for {len(run_dirs)} runs")
    runs = [read_frames(d) for d in run_dirs]
    labels = labels or [os.path.basename(os.path.normpath(d)) for d in run_dirs]
    records = [_run_record(d) for d in run_dirs]
    modes = sorted({m for m, _, _ in records if m})
    if len(modes) > 1:
        warnings.warn(f"the runs are of different modes ({', '.join(modes)}): an epoch of one is not an epoch of "
                      f"another, so panels side by side compare their frames, not their speed")
    epochs = sorted({e for run in runs for e, _ in run})
    cache = {}

    def panel(path):
        if path not in cache:
            im = Image.open(path).convert("RGB")
            f = size / max(im.size)
            cache[path] = im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))),
                                    Image.NEAREST if f >= 2 else Image.LANCZOS)
        return cache[path]

    pad, top = 6, 30
    out = []
    for e in epochs:
        shown, captions = [], []
        for run, (_, psnr, planned) in zip(runs, records):
            earlier = [(ep, p) for ep, p in run if ep <= e] or run[:1]
            ep, path = earlier[-1]
            shown.append(panel(path))
            last = run[-1][0]
            done = f", done: {psnr:.2f} dB" if psnr is not None and ep == last and e >= last else ""
            captions.append(f"epoch {ep}/{planned or last}{done}")  # a finished (or stopped) run holds its last frame
        W = sum(p.width for p in shown) + pad * (len(shown) + 1)
        H = max(p.height for p in shown) + top + pad
        canvas = Image.new("RGB", (W, H), "white")
        d = ImageDraw.Draw(canvas)
        x = pad
        for p, name, caption in zip(shown, labels, captions):
            canvas.paste(p, (x, top))
            d.text((x, 3), name, fill="black")
            d.text((x, 15), caption, fill=(90, 90, 90))
            x += p.width + pad
        out.append(imaging.label_frame(canvas, f"epoch {e}"))
        if on_progress:
            on_progress("composing frames", len(out), len(epochs))
    imaging.write_gif(out_path, out, fps=fps)
    return len(out)
