"""``nncompress upscale INPUT...``: images, folders and models in, upscaled
files out, in one call.

``plan(request)`` (``batchplan``) checks everything the user typed and
lists the jobs (source -> target) before any work; bad input raises
``BatchError``. ``run(request, jobs, ...)`` does them one by one: a file
that fails is recorded and the batch goes on; Ctrl-C raises
``BatchInterrupted`` with what was finished (each output is written
atomically, so the file being made leaves nothing behind). Progress goes
through callbacks.
"""

import os
import time
import warnings
from dataclasses import dataclass

from . import imagefile, upscaler
from .batchplan import (FORMAT_CHOICES, BatchError, Job, Request, _check_format_limit, _check_target,  # noqa: F401
                        _model_target, classify, find_images, model_path, plan)


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C: ``outcomes`` holds the files finished before it."""

    def __init__(self, outcomes):
        super().__init__("interrupted")
        self.outcomes = outcomes

@dataclass
class Outcome:
    job: Job
    status: str                 # "done", "skipped" or "failed"
    seconds: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    size_in: tuple = ()          # (w, h)
    size_out: tuple = ()
    message: str = ""           # what the user should know (e.g. alpha flattened)
    error: Exception | None = None  # why it failed


# ------------------------------------------------------------------- run

def single(req: Request):
    """True when the request names one file (an image or a model): its
    failure is the command's, raised as it is, not one line of a batch."""
    return len(req.inputs) == 1 and classify(req.inputs[0]) != "folder"


def run(req: Request, jobs, on_file=None, on_done=None, on_step=None, raise_errors=False):
    """Do ``jobs``. ``on_file(i, n, job)`` before each, ``on_done(i, n,
    outcome)`` after, ``on_step(phase, done, total, info)`` within (see
    ``upscaler``). Returns the outcomes; a file that fails is recorded and
    the rest go on, unless ``raise_errors``. Ctrl-C raises BatchInterrupted."""
    outcomes = []
    taken = {os.path.realpath(p) for j in jobs for p in (j.source, j.target) if p}  # a model's output is named late
    try:
        for i, job in enumerate(jobs):
            if on_file:
                on_file(i, len(jobs), job)
            t0 = time.perf_counter()
            try:
                if req.skip_existing and job.target and os.path.exists(job.target) and _finished(req, job):
                    outcome = Outcome(job, "skipped", message="exists")
                else:
                    outcome = (_model_job(req, job, on_step, taken) if job.kind == "model"
                               else _image_job(req, job, on_step))
            except KeyboardInterrupt:
                raise
            except Exception as e:  # one bad file must not stop the batch
                if raise_errors:
                    raise
                outcome = Outcome(job, "failed", error=e)
            outcome.seconds = time.perf_counter() - t0
            outcomes.append(outcome)
            if on_done:
                on_done(i, len(jobs), outcome)
    except KeyboardInterrupt:
        raise BatchInterrupted(outcomes) from None
    return outcomes


def _finished(req, job):
    """Whether ``job.target`` is this job's output already (for
    --skip-existing): it must be the size this call would make (an upscale
    at another scale into the same -o folder or file has the same name,
    and is redone), and whole (a file cut short by a copy or a full disk
    elsewhere keeps its header: redone). A size not known before the work:
    taken as done."""
    return imagefile.looks_whole(job.target) and (job.size is None or imagefile.size_of(job.target) == tuple(job.size))


def _image_job(req, job, on_step):
    pic = imagefile.load(job.source)
    h0, w0 = pic.pixels.shape[:2]
    size = upscaler.output_size(h0, w0, req.scale, req.width, req.height)
    settings = upscaler.patch_settings(max(1.0, upscaler.scale_for(h0, w0, size)), req.preset, req.overrides)
    _check_memory(size, pic.pixels.shape[2], pic.bits, req.force, h0 * w0,
                  whole=not upscaler.tiled_before_training(h0, w0, size, settings))
    pixels, comp = upscaler.upscale_image(pic.pixels, pic.bits, size, settings, on_step,
                                          name=os.path.basename(job.source))
    del pic.pixels
    folder = os.path.dirname(job.target)
    if folder:
        os.makedirs(folder, exist_ok=True)
    saved = imagefile.save(job.target, pixels, job.format, pic.bits, pic.icc, pic.exif, req.quality, pic.lossless,
                           pic.meta)
    if req.save_model and comp is not None:
        comp.save(model_path(job.target), checkpoint=False)  # a model to upscale with, not to resume
    return Outcome(job, "done", bytes_in=os.path.getsize(job.source), bytes_out=saved.bytes,
                   size_in=(w0, h0), size_out=(size[1], size[0]), message="; ".join(saved.notes))


def _model_job(req, job, on_step, taken=None):
    from .compresser import Compresser
    comp = Compresser.load(job.source)
    image, icc, exif, lossless, meta = None, None, None, False, None
    if req.input_image:
        if not comp.impl.TAKES_IMAGE:
            raise BatchError(f"--input needs a model of a mode that upscales images; a {comp.mode} model is its own image")
        pic = imagefile.load(req.input_image)
        image, icc, exif, lossless, meta = pic.pixels, pic.icc, pic.exif, pic.lossless, pic.meta
    # the size the plan named the output for (from the model's record: its own scale unless the call gave one)
    h, w = job.size or comp.output_size(req.scale, req.width, req.height, image)
    comp.check_output_size(h, w, req.force)
    _check_format_limit(job, (h, w))
    src_h, src_w = (image if image is not None else comp.source).shape[:2] if comp.impl.TAKES_IMAGE else (h, w)
    said = getattr(comp.impl, "upscale_warning", lambda *a: None)(comp.settings, comp.state, max(h / src_h, w / src_w))
    if said:
        warnings.warn(said)
    if job.target is None:  # (a model file plan could not read: it fails on load, above, unless it was replaced since)
        job.target = _model_target(req, job.source, comp.meta["source"], (h, w), job.format)
        _check_target(job)  # named only now: checked only now, still before the work
        taken = set() if taken is None else taken
        if os.path.realpath(job.target) in taken:
            raise BatchError(f"the upscale of '{job.source}' would be written to '{job.target}', which is another "
                             f"input or output of this call; upscale it in a separate call, or give -o a file name")
        taken.add(os.path.realpath(job.target))
        if req.skip_existing and os.path.exists(job.target):
            return Outcome(job, "skipped", message="exists")
    if req.input_image and os.path.realpath(job.target) == os.path.realpath(req.input_image):
        raise BatchError("the output would overwrite the input image; choose another -o")
    bits = comp.meta["source"]["bits"]
    if comp.impl.TAKES_IMAGE:  # in tiles when large, as an image's upscale is
        pixels = upscaler.upscale_with(comp, comp.source if image is None else image, (h, w), bits, on_step,
                                       filled=image is None)  # (a model's source is filled as it loads)
    else:
        pixels = comp.upscale(h, w, image=image, bits=bits,
                              on_progress=(lambda what, done, total: on_step(what, done, total, {})) if on_step else None)
    if os.path.dirname(job.target):
        os.makedirs(os.path.dirname(job.target), exist_ok=True)
    saved = imagefile.save(job.target, pixels, job.format, bits, icc, exif, req.quality, lossless, meta)
    src = comp.meta["source"]
    return Outcome(job, "done", bytes_in=os.path.getsize(job.source), bytes_out=saved.bytes,
                   size_in=(src["width"], src["height"]), size_out=(w, h), message="; ".join(saved.notes))


# bytes an input pixel takes at the peak of filling the colour under its transparent pixels (imaging.fill_transparent)
FILL_BYTES = 56


# bytes an output pixel takes when an upscale is made in one piece (float64 stages, residual, back-projection;
# measured 3.4 GB for 7500x5000, x2.5); tiles bound it instead
WHOLE_BYTES = 90


def _check_memory(size, channels, bits, force, input_pixels=0, whole=False):
    """Refuse an output whose pixels alone would not fit in memory (with
    alpha, and the transparent colour's fill over the input, which is made
    for the whole image at once; and the working arrays of an upscale made
    in one piece, ``whole``)."""
    from .compresser import check_memory
    need = size[0] * size[1] * channels * (2 if bits == 16 else 1) * 3  # output + encoder copies
    if channels in (2, 4):
        need += input_pixels * FILL_BYTES
    if whole and size[0] * size[1] > upscaler.TILE_ABOVE:
        need += size[0] * size[1] * WHOLE_BYTES
    check_memory(need, size[0], size[1], force, BatchError)
