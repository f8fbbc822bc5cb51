"""The ``nncompress`` command. Each command parses typed options and makes one
library call; library errors become one line on stderr and an exit code:
0 ok, 1 runtime failure, 2 bad input, 130 interrupted."""

import contextlib
import json
import math
import os
import signal
import sys
import time
import warnings
from typing import Annotated, Optional

import typer
import typer.core
from rich.console import Console
from rich.table import Table

from . import __version__


def _flags_look_like_flags(cmd, ctx):
    """On/off options show no value type (Typer would print <bool>)."""
    for p in cmd.get_params(ctx):
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""


class Command(typer.core.TyperCommand):
    def format_help(self, ctx, formatter):
        _flags_look_like_flags(self, ctx)
        return super().format_help(ctx, formatter)


class Group(typer.core.TyperGroup):
    def format_help(self, ctx, formatter):
        _flags_look_like_flags(self, ctx)
        return super().format_help(ctx, formatter)


def examples(*pairs):
    """A command's help epilog: 2-4 (what it does, command) examples, the
    common cases first; each line fits 80 columns."""
    return "[bold]Examples[/]\n\n\b\n" + "\n".join(f"  [dim]# {what}[/]\n  {cmd}" for what, cmd in pairs)


# Defaults that depend on the mode, as --help shows them (a test checks them
# against Settings and each mode's DEFAULTS; importing those here would load
# numba for --help).
MODE_DEFAULTS = {
    "layers": "fourier:16:2,64:relu,64:relu,out:sigmoid; patch: "  # (spaces: a narrow help panel wraps there)
              "conv3:32:relu, conv3:32:relu, conv3:32:relu, conv3:32:relu, conv3:32:relu, conv3:out",
    "mode": "coords", "epochs": "300; patch: 10", "batch_size": "32; patch: 16",
    "lr": "0.003; patch: 0.001",
    "optimizer": "adam", "loss": "mse", "seed": "0", "scale": "4; patch: 2", "frames": "30; patch: 10",
}

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich", cls=Group,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Upscale photos on a CPU beyond bicubic with a small convolutional network (a built-in prior, "
                       "fine-tuned on each photo); or fit a network to one image, keep it as the picture, and "
                       "render it at any size.",
                  epilog=examples(
    ('fit; writes runs/photo/photo_x4.png', 'nncompress train photo.png'),
    ('an x2 upscaler for the photo (the built-in prior)', 'nncompress train photo.png --mode patch -o runs/photo_x2'),
    ('render a trained model at x8', 'nncompress upscale runs/photo/model.npz -s 8'),
    ('what a model holds and how long it took', 'nncompress info runs/photo/model.npz'),
))
out = Console()
err = Console(stderr=True)
STATE = {"debug": bool(os.environ.get("NNCOMPRESS_DEBUG"))}


def _version(value: bool):
    if value:
        print(f"nncompress {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
):
    STATE["debug"] = bool(os.environ.get("NNCOMPRESS_DEBUG")) or debug


@contextlib.contextmanager
def errors():
    """Library exceptions -> one line on stderr + exit code (``--debug``:
    the traceback too, and the same exit code)."""
    from .runs import RunInterrupted
    for console in (out, err):  # piped output is never wrapped or cut: one report, one line; tables in full
        console.width = None
        console.width = None if console.is_terminal else 100_000
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=DeprecationWarning)
            if not STATE["debug"]:  # numpy's overflow on the way to a diverged run, which is then reported in words
                warnings.filterwarnings("ignore", category=RuntimeWarning,
                                        message="(overflow|invalid value|divide by zero) encountered")
            warnings.showwarning = lambda msg, *a, **k: err.print(f"warning: {msg}", highlight=False, markup=False,
                                                                  soft_wrap=True)
            yield
    except typer.Exit:
        raise
    except RunInterrupted as e:
        err.print(f"interrupted at epoch {e.epoch} of {e.epochs}: saved {e.paths.model}", highlight=False,
                  markup=False, soft_wrap=True)
        if e.upscale_missing:  # trained to the end: only the upscale is missing
            import shlex
            err.print(f"training is done; its upscale was not written: nncompress upscale {shlex.quote(e.paths.model)} "
                      f"-s {e.paths.scale:g} -o {shlex.quote(e.paths.upscaled)}", highlight=False, markup=False,
                      soft_wrap=True)
        elif e.finished:  # a fine-tune checked on a held-out strip ends at its best epoch so far
            err.print(f"{e.finished}; it is finished (--resume trains no further); its upscale: nncompress upscale "
                      f"{e.paths.model} -s {e.paths.scale:g}", highlight=False, markup=False, soft_wrap=True)
        else:
            err.print(f"go on with: {e.resume_command()}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(130)
    except KeyboardInterrupt:
        how = STATE.get("signal")
        err.print(f"interrupted ({how})" if how and how != "SIGINT" else "interrupted", highlight=False)
        raise typer.Exit(130)
    except Exception as e:
        code, message = describe_error(e)
        if STATE["debug"]:  # the traceback, and the same exit code as without --debug
            err.print_exception(show_locals=False)
            message = message.replace(" (run with --debug for the traceback)", "")
        err.print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(code)


def describe_error(e: Exception) -> tuple[int, str]:
    """(exit code, one-line message): bad input 2; a runtime failure 1; any
    other exception is our bug, 1."""
    from .errors import UserError
    from .training import TrainingDiverged
    if isinstance(e, UserError):
        return 2, str(e)
    if isinstance(e, TrainingDiverged):
        return 1, str(e)
    if isinstance(e, MemoryError):
        return 1, "out of memory; use a smaller output size or image"
    if isinstance(e, OSError):
        return 1, f"{e.strerror or e}: {e.filename or ''}".rstrip(": ")
    return 1, f"internal error (run with --debug for the traceback): {type(e).__name__}: {e}"


# ------------------------------------------------------------------- train

@app.command(cls=Command, epilog=examples(
    ('fit; the x4 PNG it writes is the upscale', 'nncompress train photo.png'),
    ('an upscaler learned from the photo alone (ZSSR-style)', 'nncompress train photo.png --mode patch -s 4 --prior none -o runs/photo_zssr'),
    ('go on with a stopped run, to 600 epochs in all', 'nncompress train photo.png --resume runs/photo/model.npz -e 600'),
    ('settings from a file, into another folder', 'nncompress train photo.png -c configs/siren.yaml -o runs/siren'),
))
def train(
    image: Annotated[Optional[str], typer.Argument(metavar="IMAGE", help="Image to fit (PNG, JPEG, GIF, ...). With --resume it may be left out: the image the model records is used.", show_default=False)] = None,
    config: Annotated[Optional[str], typer.Option("--config", "-c", help="YAML file of settings (see configs/); flags override it.", show_default="none")] = None,
    layers: Annotated[Optional[str], typer.Option("--layers", "-l", help="Layer spec, e.g. 20:leaky_relu,20:leaky_relu,out:sigmoid.", show_default=MODE_DEFAULTS["layers"])] = None,
    mode: Annotated[Optional[str], typer.Option("--mode", help="coords (the network is the image) or patch (a learned upscaler).", show_default=MODE_DEFAULTS["mode"])] = None,
    preset: Annotated[Optional[str], typer.Option("--preset", help="Patch mode's training budget: fast, balanced or best.", show_default="balanced")] = None,
    prior: Annotated[Optional[str], typer.Option("--prior", help="Patch mode's start: builtin (trained on many images), none (learn from the image alone) or a prior file.", show_default="builtin")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", "-e", help="Epochs in all (passes over the table). With --resume, the total too: a run stopped at 10 of 150 trains the remaining 140.", show_default=MODE_DEFAULTS["epochs"])] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", help="Rows per step; 0 = full batch. Patch mode: crops per step.", show_default=MODE_DEFAULTS["batch_size"])] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="Patch mode: training steps per epoch.", show_default="the preset's (fast: 0, the prior alone; balanced, best: 20; with --prior none 25, 40, 75)")] = None,
    crop: Annotated[Optional[int], typer.Option("--crop", help="Patch mode: side of the random training crops.", show_default="the preset's (48; with --prior none 32, 40, 48)")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Learning rate (the start of the schedule: cosine, or constant where a config says so).", show_default=MODE_DEFAULTS["lr"])] = None,
    optimizer: Annotated[Optional[str], typer.Option("--optimizer", help="sgd, momentum or adam.", show_default=MODE_DEFAULTS["optimizer"])] = None,
    loss: Annotated[Optional[str], typer.Option("--loss", help="mse or bce (bce needs a sigmoid output).", show_default=MODE_DEFAULTS["loss"])] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed: the same seed gives the same model, bit for bit.", show_default=MODE_DEFAULTS["seed"])] = None,
    scale: Annotated[Optional[float], typer.Option("--scale", "-s", help="Scale of the upscaled PNG written at the end.", show_default=MODE_DEFAULTS["scale"])] = None,
    frames: Annotated[Optional[int], typer.Option("--frames", help="GIF frames to record (up to; epochs that coincide share one); 0 = none.", show_default=MODE_DEFAULTS["frames"])] = None,
    out_dir: Annotated[Optional[str], typer.Option("--out", "-o", help="Output folder.", show_default="runs/IMAGE-NAME; with --resume, the model's folder")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Go on training this model.npz exactly where it stopped, with its settings (--epochs, --lr, --frames and the like may change; its network, seed, optimizer, mode, prior and preset may not; a model with nothing left to train, such as the prior alone, is refused).", show_default="none")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a run already in the output folder (its model stays if this run fails); write the upscale even if it looks too large for memory.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors and warnings.")] = False,
):
    """Fit a network to IMAGE; write model.npz (and the checkpoint that resumes it), the upscaled PNG, frames, a GIF and history.csv."""
    from .progress import Reporter
    from .runs import train_run
    from .spec import load_config, make_settings, network_text

    with errors():
        if image is None and not resume:
            from .errors import SpecError
            raise SpecError("give the IMAGE to train on (or --resume MODEL to go on with a run)")
        cfg = load_config(config) if config else {}
        if resume:  # the model's settings, under a config's and the flags
            from .compresser import Compresser
            from .runs import check_resume_start
            was = Compresser.load(resume).settings.to_dict()
            check_resume_start(was, {"mode": mode, "prior": prior}, cfg)
            cfg = {**was, **cfg}
        settings = make_settings(cfg, layers=layers, mode=mode, preset=preset, prior=prior, epochs=epochs, batch_size=batch_size, lr=lr,
                                 steps=steps, crop=crop,
                                 optimizer=optimizer, loss=loss, seed=seed, scale=scale, frames=frames,
                                 check_files=not resume)  # a resumed model has its network: its prior may have moved
        report = Reporter(out, quiet)

        def on_info(comp, paths):
            report.unit = getattr(comp.impl, "SAMPLES", "rows")
            report.print(f"{comp.mode} mode, {comp.net.n_params:,} parameters ({network_text(comp.net)}) -> {paths.out}/")
            # a prior is fine-tuned only as far as self-validation or a held-out strip says (or not at all)
            if getattr(settings, "steps", None) == 0 and comp.impl.TAKES_IMAGE and settings.prior != "none":  # fast
                report.print(f"{comp.meta['source']['name']}: the prior alone, nothing to train")
                return
            report.epochs(f"training {comp.meta['source']['name']}", comp.checkpoint.epoch, settings.epochs,
                          at_most=settings.prior != "none")

        try:
            result = train_run(image, settings, out_dir, resume, on_epoch=report.epoch, on_info=on_info, force=force,
                               on_progress=report)
        finally:
            report.close()
        if not quiet:
            m, p = result.compresser.meta, result.paths
            what = result.compresser.describe()["score_detail"]
            note = result.compresser.describe().get("note")
            trained = (note if note else f"{m['epochs']} epochs, loss {m['loss']:.4g}" if m["loss"] is not None
                       else "nothing to train")
            report.print(f"done: {trained}, PSNR {m['psnr']:.2f} dB ({what})")
            report.print(f"time: {timing_text(result.seconds)}")
            for path in (p.model, p.upscaled, p.gif, p.history):
                if os.path.exists(path):
                    report.print(f"  {path}")


def timing_text(seconds: dict) -> str:
    """'41.2s wall: training 11.3s, frames 0.9s, rendering 26.0s, writing 1.9s, other 2.0s' (frames only when
    drawn)."""
    parts = [(k, seconds.get(k, 0.0)) for k in ("training", "frames", "rendering", "writing")
             if k != "frames" or seconds.get(k)]
    other = seconds.get("wall", 0.0) - sum(v for _, v in parts)
    return f"{seconds.get('wall', 0.0):.1f}s wall: " + ", ".join(
        f"{k} {v:.1f}s" for k, v in parts + [("other", max(other, 0.0))])


# ----------------------------------------------------------------- upscale

@app.command(cls=Command, epilog=examples(
    ("one photo, with the built-in x4 prior: photo_x4.jpg here", "nncompress upscale photo.jpg"),
    ("all images below shots/ into shots_x4/; a rerun skips those done", "nncompress upscale shots/ -r --skip-existing"),
    ("two files at x2 as WebP, into out/", "nncompress upscale a.jpg b.png -s 2 --format webp -o out/"),
    ("a model from `nncompress train`, or its run folder", "nncompress upscale runs/photo/model.npz"),
))
def upscale(
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT", help="Images, folders of images, or models (model.npz or a run folder).", show_default=False)],
    scale: Annotated[Optional[float], typer.Option("--scale", "-s", help="Scale factor (any positive number, e.g. 4 or 2.5).", show_default="4 unless --width/--height; a patch model: the scale it learned")] = None,
    width: Annotated[Optional[int], typer.Option("--width", help="Output width in pixels (alone: aspect kept).")] = None,
    height: Annotated[Optional[int], typer.Option("--height", help="Output height in pixels (alone: aspect kept).")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="A file for one input image (its suffix picks the format); a folder otherwise.", show_default="NAME_x4.ext or FOLDER_x4/ here; models: NAME_WxH.png beside the model")] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Folders: subfolders too; the tree is mirrored.")] = False,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Leave alone an output already there, whole, at the size this call makes (else it is replaced).")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="same (the input's), png, jpg or webp.")] = "same",
    quality: Annotated[Optional[int], typer.Option("--quality", help="JPEG/WebP quality 1..100.", show_default="95")] = None,
    preset: Annotated[Optional[str], typer.Option("--preset", help="Training budget for images: fast, balanced or best.", show_default="balanced")] = None,
    prior: Annotated[Optional[str], typer.Option("--prior", help="Where images' networks start: builtin, none or a prior file.", show_default="builtin")] = None,
    config: Annotated[Optional[str], typer.Option("--config", "-c", help="YAML settings for the patch model (e.g. epochs, or scale when --scale/--width/--height are not given).")] = None,
    save_model: Annotated[bool, typer.Option("--save-model", help="Also keep each image's model beside its upscale, named like it with .npz (photo_x4.npz).")] = False,
    input_image: Annotated[Optional[str], typer.Option("--input", "-i", help="Patch models: upscale this image instead of the training image.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Render even if the output looks too large for memory.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors and warnings.")] = False,
):
    """Upscale images, whole folders, or a trained model; metadata (EXIF, ICC), alpha and 16-bit depth are kept.

    Images go through patch mode: the built-in prior for the scale (x2 up to x3, x4 above; up to x2.14 fine-tuned on the image while that rebuilds a held-out strip of it better), averaged over 8 rotations and flips (not --preset fast), back-projected onto the input; --prior none learns from each image instead."""
    from .batch import BatchInterrupted, run, single
    from .batchplan import Request, plan
    from .batchview import BatchView
    from .spec import load_config

    with errors():
        overrides = {**(load_config(config) if config else {}), **({"prior": prior} if prior else {})}
        req = Request(inputs, scale, width, height, output, recursive, skip_existing, fmt, quality, preset,
                      save_model, input_image, force, overrides)
        jobs = plan(req)
        one = single(req)
        view = BatchView(describe_error, out, err, quiet, single=one)
        try:
            outcomes = run(req, jobs, view.on_file, view.on_done, view.on_step, raise_errors=STATE["debug"] or one)
        except BatchInterrupted as e:
            view.summary(e.outcomes, len(jobs), interrupted=True)
            err.print("interrupted: finished files are kept; rerun with --skip-existing to go on", highlight=False)
            raise typer.Exit(130)
        finally:
            view.close()
        if jobs[0].kind == "model" and len(jobs) == 1:
            if not quiet and outcomes[0].status != "failed":
                what = "wrote" if outcomes[0].status == "done" else "skipped (--skip-existing):"
                out.print(f"{what} {outcomes[0].job.target}" + (" exists" if outcomes[0].status == "skipped" else ""),
                          highlight=False)
            return
        failed = view.summary(outcomes, len(jobs))
        if failed:
            err.print(f"error: {failed} of {len(jobs)} file(s) failed", highlight=False)
            raise typer.Exit(1)


# ----------------------------------------------------------------- animate

@app.command(cls=Command, epilog=examples(
    ('comparison.gif, panels named by folder', 'nncompress animate runs/relu runs/siren'),
    ('named panels, faster', 'nncompress animate runs/a runs/b -o ab.gif --labels A,B --fps 12'),
))
def animate(
    run_dirs: Annotated[list[str], typer.Argument(metavar="RUN_DIR", help="Run folders made by `nncompress train` (with frames).", show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", help="Output GIF.")] = "comparison.gif",
    labels: Annotated[Optional[str], typer.Option("--labels", help="Comma-separated panel names.", show_default="the folder names")] = None,
    fps: Annotated[float, typer.Option("--fps", help="Frames per second.")] = 8.0,
    size: Annotated[int, typer.Option("--size", help="Longest side of each panel, in pixels.")] = 256,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors and warnings.")] = False,
):
    """Side-by-side convergence GIF of several runs, frames aligned by epoch."""
    from .progress import Reporter
    from .runs import animate as make
    from .errors import SpecError

    with errors():
        if not (math.isfinite(fps) and 0 < fps <= 100):
            raise SpecError(f"--fps must be between 0 and 100, got {fps}")
        if not 8 <= size <= 4096:
            raise SpecError(f"--size must be between 8 and 4096 pixels, got {size}")
        if os.path.splitext(output)[1].lower() != ".gif":
            raise SpecError(f"-o '{output}': animate writes a GIF; give a name ending in .gif")
        from .atomic import check_file_target
        check_file_target(output)
        names = [s.strip() for s in labels.split(",")] if labels else None
        report = Reporter(out, quiet)
        try:
            n = make(run_dirs, output, names, fps, size, on_progress=report)
        finally:
            report.close()
        panels = len(run_dirs)
        report.print(f"wrote {output} ({panels} panel{'' if panels == 1 else 's'}, {n} frame{'' if n == 1 else 's'})")


# ---------------------------------------------------------------- pretrain

@app.command(cls=Command, epilog=examples(
    ('an x2 prior from two folders', 'nncompress pretrain T91 BSD200 -s 2 -o x2.npz'),
    ('go on with a stopped run, to 80 epochs', 'nncompress pretrain T91 BSD200 -s 2 --resume x2.npz -e 80'),
    ('use it', 'nncompress train photo.png --mode patch --prior x2.npz'),
    ('the built-in x2 prior taught your kind of pictures', 'nncompress pretrain scans -s 2 --init builtin -e 4 --steps 200 --lr 0.0003 -o scans_x2.npz'),
))
def pretrain(
    folders: Annotated[list[str], typer.Argument(metavar="FOLDER", help="Folders of training images (subfolders too).", show_default=False)],
    scale: Annotated[int, typer.Option("--scale", "-s", help="The scale the prior learns (2, 3, 4).")] = 2,
    output: Annotated[str, typer.Option("--output", "-o", help="The prior file to write.", show_default="prior_xSCALE.npz")] = "",
    resume: Annotated[Optional[str], typer.Option("--resume", help="Go on training this prior exactly where it stopped.", show_default="none")] = None,
    layers: Annotated[Optional[str], typer.Option("--layers", "-l", help="Network (convK:CHANNELS[:ACT] items; end in shuffle:S to work in low-resolution space).", show_default="the built-in prior's recipe for the scale: conv5, conv3 layers (thirteen of 64 channels at x2; four of 48 above, one part of the built-in x4) and shuffle:S; with --init, that prior's own network (of another scale: its body, then a new last conv and shuffle)")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", "-e", help="Epochs in all, of --steps minibatches each.", show_default="50")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="Minibatches per epoch.", show_default="400")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", help="Crops per minibatch.", show_default="16 at x2, else 32")] = None,
    crop: Annotated[Optional[int], typer.Option("--crop", help="Side of the high-resolution crops.", show_default="64 at x2, else 24 x scale")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Learning rate (the start of the cosine schedule).", show_default="0.001")] = None,
    loss: Annotated[Optional[str], typer.Option("--loss", help="mse or l1, of the predicted residual.", show_default="mse")] = None,
    init: Annotated[Optional[str], typer.Option("--init", help="Start from this prior (a file, or builtin: the built-in prior for --scale; a new run, a fresh schedule): its layers fill --layers' in order, extra convs between ReLUs start as the identity, so a deeper network starts where the prior ended; a prior of another scale gives all but its last layer (x4 from x2).", show_default="none")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed: the same seed gives the same crops and prior.", show_default="0")] = None,
    half: Annotated[Optional[bool], typer.Option("--half/--no-half", help="Store the prior's weights as float16: half the file (its checkpoint keeps them exactly, for --resume).", show_default="no")] = None,
    average: Annotated[Optional[list[str]], typer.Option("--average", help="Train nothing: write one prior whose output is the mean of these (give it twice or more; same layer kinds, e.g. one trained with --loss mse and one with l1), validated on the folders' held-back images.", show_default="none")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing prior file at -o (and its history and checkpoint).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors and warnings.")] = False,
):
    """Train a prior: patch mode's network on many images (nncompress upscale --prior FILE uses it)."""
    from .pretrain import average_priors, history_path, pretrain as run
    from .progress import Reporter, clock_text

    with errors():
        from .atomic import check_file_target
        from .errors import SpecError
        if scale < 2 or scale > 8:
            raise SpecError(f"--scale must be a whole number from 2 to 8, got {scale}")
        if output and not output.lower().endswith(".npz"):
            raise SpecError(f"-o '{output}': a prior is an .npz file (as a model is); give a name that ends in .npz")
        if average:
            training = {"--resume": resume, "--layers": layers, "--epochs": epochs, "--steps": steps,
                        "--batch-size": batch_size, "--crop": crop, "--lr": lr, "--loss": loss, "--init": init,
                        "--seed": seed}
            given = [k for k, v in training.items() if v is not None]
            if given or len(average) < 2:
                raise SpecError("--average writes the mean of two or more priors and trains nothing: give it twice "
                                "or more" + (f", without {', '.join(given)}" if given else ""))
            target = output or f"prior_x{scale}.npz"
            check_file_target(target)
            _check_prior_target(target, None, force)
            r = average_priors(folders, scale, target, average, command=" ".join(["nncompress", "pretrain", *sys.argv[2:]]),
                               half=half, warn=lambda m: err.print(f"warning: {m}", highlight=False, markup=False, soft_wrap=True))
            parts = ", ".join(f"{f} {g:+.2f} dB" if g is not None and not math.isnan(g) else f for f, g in r["parts"])
            if not quiet:
                out.print(f"wrote {target}: the mean of {len(average)} priors ({parts}), "
                          f"{_validation_text(r['val_gain_db'])} on the held-back images",
                          highlight=False, markup=False, soft_wrap=True)
            return
        target = output or resume or f"prior_x{scale}.npz"
        check_file_target(target)
        _check_prior_target(target, resume, force)
        report = Reporter(out, quiet)
        t0 = time.perf_counter()

        def on_epoch(rec, total):
            left = (time.perf_counter() - t0) / max(1, len(done) + 1) * (total - rec["epoch"])
            done.append(rec)
            gain = rec["val_gain_db"]
            val = _validation_text(gain)
            report.print(f"epoch {rec['epoch']}/{total}  loss {rec['loss']:.4g}  {val}  "
                         f"{rec['crops_per_s']:.0f} crops/s  {rec['seconds']:.0f} s an epoch  eta {clock_text(left)}")

        def on_start(facts):
            small = (f"; {facts['small']} smaller than {facts['side']} pixels a side (the crop and its margins) "
                     f"left out" if facts["small"] else "")
            bad = f"; {facts['bad']} unreadable, skipped" if facts["bad"] else ""
            report.print(f"training on {facts['train']} image{'' if facts['train'] == 1 else 's'} ({facts['val']} held "
                         f"back for validation{small}{bad})")
            if facts["before"] is not None and facts["before"] != facts["now"]:  # (counted as the prior counted)
                err.print(f"warning: the folders hold {facts['now']} training images; the prior trained on "
                          f"{facts['before']}, so this resume is not the run it would have been",
                          highlight=False, markup=False, soft_wrap=True)

        done = []
        try:
            r = run(folders, scale, target, resume=resume, on_epoch=on_epoch, on_start=on_start,
                    warn=lambda m: err.print(f"warning: {m}", highlight=False, markup=False, soft_wrap=True),
                    command=" ".join(["nncompress", "pretrain", *sys.argv[2:]]), layers=layers, epochs=epochs,
                    steps=steps, batch_size=batch_size, crop=crop, lr=lr, loss=loss, init=init, seed=seed,
                    half=half, on_progress=report if report.tty else None)  # (a log gets one line an epoch)
        except KeyboardInterrupt:
            report.close()
            saved = target if done and os.path.isfile(target) else resume  # what holds the last whole epoch
            more = f" -e {epochs}" if epochs is not None else ""  # (a warm restart's new total, still to reach)
            again = (f"; go on with: nncompress pretrain {' '.join(folders)} -s {scale} --resume {saved}{more}" if saved
                     else "")
            what = (f"{saved} holds the last whole epoch" if saved else
                    "stopped before the first epoch ended, so nothing was written")
            err.print(f"interrupted: {what}{again}", highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(130) from None
        finally:
            report.close()
        n = r["epochs"]
        report.print(f"wrote {target} ({n} epoch{'' if n == 1 else 's'}, {r['seconds']:.0f} s) and {history_path(target)}")


def _check_prior_target(target, resume, force):
    """A prior file at ``target`` is replaced only by its own --resume or
    with --force: priors take the better part of an hour to train."""
    from .errors import SpecError
    from .runs import _same_file
    if not os.path.exists(target) or force or (resume and _same_file(resume, target)):
        return
    from .modelfile import read_meta
    meta = read_meta(target) or {}  # (not a model file we can read: still the user's file)
    held, resumable = "", meta.get("kind") == "prior" and "averaged" not in meta
    if meta.get("kind") == "prior":
        n = meta.get("epochs", "?")
        held = f" (a prior of {n} epoch{'' if n == 1 else 's'})" if resumable else " (an average of priors)"
    again = f"go on with it with --resume {target}, " if resumable else ""
    raise SpecError(f"'{target}' already exists{held}; {again}write elsewhere with -o, or replace it with --force")


def _validation_text(gain):
    return "no validation images" if math.isnan(gain) else f"validation {gain:+.2f} dB over bicubic"


# -------------------------------------------------------------------- info

@app.command(cls=Command, epilog=examples(
    ('layers, size, training record, time split', 'nncompress info runs/photo/model.npz'),
    ('the same facts as JSON', 'nncompress info runs/photo/model.npz --json'),
))
def info(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="A model.npz, or the run folder that holds one.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Accepted as every command takes it; info prints its report, which is its output.")] = False,
):
    """Describe a model: mode, layers, size in bits per pixel, training record."""
    from .compresser import Compresser
    from .spec import network_text

    with errors():
        if os.path.isfile(os.path.join(model, "model.npz")):
            model = os.path.join(model, "model.npz")
        from .modelfile import load as load_model
        from .prior import is_prior
        loaded = load_model(model)
        if is_prior(loaded[1]):
            return _prior_info(model, *loaded, as_json)
        comp = Compresser.load(model, loaded=loaded)
        m, src = comp.meta, comp.meta["source"]
        bpp_file, bpp_weights = comp.bits_per_pixel(model)
        facts = {"mode": m["mode"], "parameters": comp.net.n_params, "file_bytes": os.path.getsize(model)}
        if not comp.impl.TAKES_IMAGE:  # the network is the image: its size per pixel (an upscaler's is no measure)
            facts.update(bits_per_pixel_file=round(bpp_file, 4), bits_per_pixel_weights=round(bpp_weights, 4))
        rate = getattr(comp.impl, "training_rate", lambda s: s.lr)(comp.settings)
        facts.update({
            "source": f"{src['name']} {src['width']}x{src['height']}, {src['channels']} channel(s), {src['bits']}-bit",
            "layers": network_text(comp.net), "epochs": m["epochs"],
            "loss": m["loss"], "psnr_db": m["psnr"],
            "trained_with": _training_text(comp.settings, rate) if m["epochs"] or m["loss"] is not None
            else "nothing trained",
        })
        if m.get("earlier_lr"):  # a resume changed --lr: [[from epoch, the rate before it], ...]
            cuts = [0] + [e for e, _ in m["earlier_lr"]]
            facts["earlier_rates"] = ", ".join(f"lr {lr:g} for epochs {a + 1}-{b}" for (b, lr), a in zip(m["earlier_lr"], cuts))
        seconds = m.get("seconds") or {"training": m["train_seconds"]}  # older files kept the epochs' time only
        facts.update({f"seconds_{k}": round(v, 2) for k, v in seconds.items()})
        from .checkpoint import path_for
        facts["checkpoint"] = os.path.basename(path_for(model)) if os.path.exists(path_for(model)) else "none"
        about = comp.describe()
        if "start" in about:  # where the network started (patch mode: a prior, or nothing)
            facts["started_from"] = about["start"]
        if "note" in about:
            facts["note"] = about["note"]
        labels, flags = getattr(comp.impl, "STATE_LABELS", {}), getattr(comp.impl, "FLAGS", ())

        def shown(k, v):  # (the file stores floats) JSON: true/false, a whole epoch; the table: yes/no
            if v is None or (k not in flags and not (as_json and k == "kept_epoch")):
                return v
            return (bool(v) if k in flags else int(v)) if as_json else ("yes" if v else "no")
        facts.update({f"learned_{k if as_json else labels.get(k, k)}": shown(k, v) for k, v in about["learned"].items()})
        if as_json:
            print(json.dumps(facts, indent=2))
            return
        t = Table(title=f"{os.path.basename(model)}", show_header=True)
        t.add_column("layer")
        t.add_column("output", justify="right")
        t.add_column("parameters", justify="right")
        for name, width, n in comp.net.summary():
            t.add_row(name, width, f"{n:,}")
        out.print(t)
        kv = []
        for k, v in facts.items():
            if k == "psnr_db":
                v = f"{v:.2f} dB ({about['score']})" if v is not None else "not measured"
            elif k == "loss":
                v = _loss_text(v, "note" in about, comp.settings.loss)
            elif isinstance(v, int):
                v = f"{v:,}"
            elif k.startswith("seconds"):
                v = f"{v:.2f}"
            elif k.startswith("bits_per_pixel"):
                v = f"{v:.1f}" if v >= 10 else f"{v:.3g}"  # a tiny model's 0.0102 must not read 0.0
            elif k.startswith("learned_") and isinstance(v, float):
                v = f"{v:.0f}" if v.is_integer() else f"{v:.4g}"  # e.g. kept epoch 7, mean 0.4415
                if k == "learned_scale of one step":
                    v = f"x{v}"
            elif v is None:
                v = "-"
            kv.append((k.replace("_", " ") if not k.startswith("learned_") else "learned: " + k[8:], str(v)))
        _print_facts(kv)


def _loss_text(loss, noted, name="mse"):
    """info's loss row: the loss and which, or why there is none (a note says more)."""
    if loss is not None:
        return f"{loss:.5g} ({name})"
    return "none (nothing was trained; see the note)" if noted else "none (no epochs yet)"


def _training_text(s, rate=None):
    """'adam, lr 0.003 (cosine), batch 256, mse': how a model was trained
    (``rate``: the one it ran at, when the mode lowers --lr)."""
    lr = f"lr {s.lr:g}" if rate is None or rate == s.lr else f"lr {rate:g} (--lr {s.lr:g}, lowered to fine-tune a prior)"
    return (f"{s.optimizer}, {lr} ({s.schedule}), batch {s.batch_size or 'full'}"
            f"{f', {s.steps} steps an epoch' if s.steps else ''}, {s.loss}")


def _print_facts(rows):
    """' key   value' lines: no table padding after the value (piped output stays clean)."""
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        out.print(f" {k:<{w}}  {v}", highlight=False, markup=False, soft_wrap=True)


def _part_text(m):
    """One part of an averaged prior, as its meta records it: 'a.npz (mse, 50 epochs, +0.71 dB)'."""
    settings = m.get("settings") or {}
    what = "an average" if settings.get("average") else f"{settings.get('loss', 'mse')}, {m.get('epochs')} epochs"
    gain = f", {m['history'][-1]['val_gain_db']:+.2f} dB" if m.get("history") else ""
    return f"{m['file']} ({what}{gain})"


def _prior_info(path, net, meta, extras, as_json):
    """``info`` of a prior (``nncompress pretrain``'s file)."""
    from .spec import network_text
    history = meta.get("history") or []
    facts = {"kind": f"prior for x{meta['scale']}", "parameters": net.n_params, "file_bytes": os.path.getsize(path),
             "weights_stored_as": extras["stored_dtype"], "layers": network_text(net), "epochs": meta.get("epochs"),
             "validation_gain_db": round(history[-1]["val_gain_db"], 3) if history else None,
             "training_images": meta.get("train_images"), "command": meta.get("command")}
    if meta.get("averaged"):  # nncompress pretrain --average: what each part was
        del facts["epochs"]
        facts["average_of"] = "; ".join(_part_text(m) for m in meta["averaged"])
        import numpy as np
        nonzero = int(np.count_nonzero(net.params))
        if nonzero < net.n_params:  # parts of different widths: dense convs, zero outside the blocks
            facts["parameters_not_zero"] = nonzero
    if as_json:
        print(json.dumps(facts, indent=2))
        return
    t = Table(title=os.path.basename(path), show_header=True)
    t.add_column("layer")
    t.add_column("output", justify="right")
    t.add_column("parameters", justify="right")
    for name, width, n in net.summary():
        t.add_row(name, width, f"{n:,}")
    out.print(t)
    kv = []
    for k, v in facts.items():
        if k == "command":  # long: printed after the table, so it does not widen every row
            continue
        if k == "validation_gain_db" and v is not None:
            v = f"{v:+.2f} dB over bicubic on the held-back images (one pass)"
        kv.append((k.replace("_", " "), f"{v:,}" if isinstance(v, int) else str(v)))
    _print_facts(kv)
    if facts["command"]:
        out.print(f" command: {facts['command']}", highlight=False, markup=False, soft_wrap=True)


# ---------------------------------------------------------------- evaluate

@app.command(cls=Command, epilog=examples(
    ('the default methods at x2 (all but coords)', 'nncompress evaluate photo.png'),
    ('x4, two methods, scores kept as JSON', 'nncompress evaluate a.png b.png -s 4 --methods patch,bicubic --json s.json'),
    ("also keep each method's upscale", 'nncompress evaluate photo.png --save upscales/'),
))
def evaluate(
    images: Annotated[list[str], typer.Argument(metavar="IMAGE", help="High-resolution images to score on.", show_default=False)],
    scale: Annotated[int, typer.Option("--scale", "-s", help="Upscaling factor (2, 3, 4, ...).")] = 2,
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated: patch (trained with the settings below), prior (the prior alone: --prior's, or the built-in one under --prior none, so one run compares the two), coords, bicubic, lanczos, nearest.")] = "patch,prior,bicubic,lanczos,nearest",
    config: Annotated[Optional[str], typer.Option("--config", "-c", help="YAML settings for the patch model.", show_default="none")] = None,
    layers: Annotated[Optional[str], typer.Option("--layers", "-l", help="Patch network layer spec.", show_default="the preset's")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", "-e", help="Patch training epochs.", show_default="the preset's")] = None,
    preset: Annotated[Optional[str], typer.Option("--preset", help="Patch mode's training budget: fast, balanced or best.", show_default="balanced")] = None,
    prior: Annotated[Optional[str], typer.Option("--prior", help="Patch mode's start: builtin (trained on many images), none (learn from the image alone) or a prior file.", show_default="builtin")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed for training.", show_default="0")] = None,
    json_path: Annotated[Optional[str], typer.Option("--json", help="Also write the scores as JSON here (- for standard output; the table then goes to stderr).", show_default="none")] = None,
    save_dir: Annotated[Optional[str], typer.Option("--save", help="Write each method's upscale into this folder.", show_default="none")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print the results table alone (no progress, no per-image lines).")] = False,
):
    """Score upscalers with the standard protocol: shrink with MATLAB-style bicubic, upscale, PSNR/SSIM on Y with a border of SCALE pixels shaved."""
    from .evaluate import METHODS, EvaluationInterrupted, evaluate_images
    from .progress import Reporter
    from .registry import lookup
    from .errors import SpecError
    from .spec import load_config, make_settings

    with errors():
        if scale < 2 or scale > 8:
            raise SpecError(f"--scale must be a whole number from 2 to 8, got {scale}")
        chosen = list(dict.fromkeys(lookup(METHODS, m.strip(), "method", SpecError) for m in methods.split(",")
                                    if m.strip()))  # each once
        if not chosen:
            lookup(METHODS, methods, "method", SpecError)
        cfg = load_config(config) if config else {}
        settings = make_settings(cfg, layers=layers, epochs=epochs, preset=preset, prior=prior, seed=seed, scale=float(scale), mode="patch",
                                 frames=0)

        from .atomic import check_file_target, check_folder_target
        to_stdout = json_path == "-"  # the scores as JSON on standard output; the table and progress go to stderr
        if json_path and not to_stdout:
            check_file_target(json_path, "--json")
            if os.path.isfile(json_path) and any(os.path.exists(i) and os.path.samefile(json_path, i) for i in images):
                raise SpecError(f"--json '{json_path}' is one of the images to score; give another file name")
        if save_dir:
            check_folder_target(save_dir, "--save")
        shown = err if to_stdout else out
        progress = Reporter(shown, quiet)

        def on_image(name, row):
            parts = "  ".join(f"{k} {v['psnr']:.2f}/{v['ssim']:.4f}" for k, v in row.items() if k in METHODS)
            secs = f"  ({row['seconds']['patch']:.1f} s patch)" if "patch" in row.get("seconds", {}) else ""
            progress.print(f"{name}: {parts}{secs}")

        stopped = None
        try:
            report = evaluate_images(images, scale, chosen, settings, on_image=on_image, save_dir=save_dir,
                                     on_progress=progress)
        except EvaluationInterrupted as e:  # the images scored so far are kept: their table (and JSON)
            report, stopped = e.report, e
            if not report["images"]:
                raise
        finally:
            progress.close()
        if to_stdout:
            print(json.dumps(report, indent=2), flush=True)
        elif json_path:
            from .atomic import atomic_write
            atomic_write(json_path, lambda f: f.write(json.dumps(report, indent=2).encode()))
        # the results are evaluate's output, as info's table is info's: --quiet keeps them
        # (the prior column is the built-in prior under --prior none, so one run compares the two)
        column = "builtin" if settings.prior == "none" else settings.prior
        learned = (f", {settings.preset}, prior {settings.prior}" + (f" (the prior column: {column})" if "prior" in chosen
                   and column != settings.prior else "") if "patch" in chosen else
                   f", prior {column}" if "prior" in chosen else "")
        # the title as a line of its own: a table's title wraps at the table's width (off a terminal too)
        shown.print(f"x{scale}: PSNR (dB) / SSIM on Y, border {scale}{learned}", highlight=False, soft_wrap=True)
        t = Table()
        t.add_column("image", no_wrap=True, min_width=max(len(n) for n in report["images"]))
        for m in chosen:
            t.add_column(m, justify="right")
        for name, row in report["images"].items():
            t.add_row(name, *[f"{row[m]['psnr']:.2f} / {row[m]['ssim']:.4f}" for m in chosen])
        t.add_row("[bold]mean[/]", *[f"[bold]{report['mean'][m]['psnr']:.2f} / {report['mean'][m]['ssim']:.4f}[/]" for m in chosen])
        shown.print(t)
        if stopped:
            err.print(f"interrupted {report['interrupted']}: the table (and --json) holds those", highlight=False)
            raise typer.Exit(130)


class _Output:
    """Standard output that a closed reader does not stop: after a
    BrokenPipeError (``nncompress upscale shots | head -1``) what is
    printed goes nowhere, and the work (the files) goes on."""

    def __init__(self, stream):
        self._stream = stream

    def _guard(self, call, *args):
        try:
            return call(*args)
        except BrokenPipeError:
            self._stream = open(os.devnull, "w")
            return getattr(self._stream, call.__name__)(*args)

    def write(self, text):
        return self._guard(self._stream.write, text)

    def flush(self):
        return self._guard(self._stream.flush)

    def __getattr__(self, name):
        return getattr(self._stream, name)


ENDING_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")  # (a closing terminal sends SIGHUP, then SIGTERM)


def _on_signal(signum, frame):
    """Ctrl-C, SIGTERM (a scheduler, ``timeout``, ``docker stop``) and
    SIGHUP end a command alike: finished files kept, no partial one, a
    model saved, exit 130. Any second one while that runs is ignored, so
    it cannot cut the save short."""
    for name in ENDING_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    STATE["signal"] = signal.Signals(signum).name
    raise KeyboardInterrupt


def main():
    """The console script: Typer's parsing errors (a bad flag or value) as
    one line, exit 2, like every other bad input."""
    from .threads import configure
    configure()  # OpenMP threads for the kernels, before numba loads (this process never forks)
    for name in ENDING_SIGNALS:
        if hasattr(signal, name) and signal.getsignal(getattr(signal, name)) is not signal.SIG_IGN:  # (nohup)
            signal.signal(getattr(signal, name), _on_signal)
    if sys.stdout is not None:  # (None: started with standard output closed, >&-)
        sys.stdout = _Output(sys.stdout)
    try:
        rv = app(standalone_mode=False)
    except (KeyboardInterrupt, typer.Abort):
        sys.exit(130)
    except Exception as e:
        if not (hasattr(e, "format_message") and hasattr(e, "exit_code")):  # not Typer's (click's) own
            raise
        if type(e).__name__ != "NoArgsIsHelpError":  # its help was shown already
            ctx = getattr(e, "ctx", None)
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            print(f"error: {e.format_message()}{hint}", file=sys.stderr)
        sys.exit(e.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
