"""``nncompress upscale INPUT...``, first half: what the user typed,
checked before any work, into jobs (source -> target). ``plan(request)``
lists them; bad input raises ``BatchError``. ``batch.run`` does them."""

import os
import re
import warnings
from dataclasses import dataclass, field

from . import imagefile, internal, upscaler
from .atomic import check_file_target, check_folder_target
from .errors import UserError
from .registry import lookup
from .spec import PRESET_NAMES

FORMAT_CHOICES = ("same",) + tuple(imagefile.FORMATS)


class BatchError(UserError):
    """Bad arguments or inputs, found before any work."""

@dataclass
class Request:
    """What the user asked for (the options of ``nncompress upscale``)."""
    inputs: list
    scale: float | None = None
    width: int | None = None
    height: int | None = None
    output: str | None = None
    recursive: bool = False
    skip_existing: bool = False
    format: str = "same"
    quality: int | None = None
    preset: str | None = None  # None: the config's, else patch mode's default
    save_model: bool = False
    input_image: str | None = None  # model inputs: upscale this image instead of the training image
    force: bool = False
    overrides: dict = field(default_factory=dict)  # training settings (tests, experiments)
    scale_given: bool | None = None  # (set by validate: whether the call chose the scale, for models' own)

    def validate(self):
        if not self.inputs:
            raise BatchError("give at least one INPUT: an image, a folder or a model.npz")
        if self.scale is not None and (self.width or self.height):
            raise BatchError("give --scale or --width/--height, not both")
        if self.overrides.get("mode", upscaler.MODE) != upscaler.MODE:
            raise BatchError(f"upscale's --config holds {upscaler.MODE} mode's settings, but this one says "
                             f"mode: {self.overrides['mode']}; drop that line (train IMAGE -c trains other modes)")
        if self.scale_given is None:
            self.scale_given = self.scale is not None or "scale" in self.overrides or bool(self.width or self.height)
        if self.scale is None and not (self.width or self.height):
            self.scale = self.overrides.get("scale", 4.0)  # a config's scale, under the flags
            if (isinstance(self.scale, bool) or not isinstance(self.scale, (int, float))
                    or not 0 < self.scale < float("inf")):
                raise BatchError(f"the config's scale must be a positive number, got {self.scale!r}")
            self.scale = float(self.scale)
        if self.scale is not None and not (self.scale == self.scale and 0 < self.scale < float("inf")):
            raise BatchError(f"--scale must be a positive number, got {self.scale}")
        for name, v in (("--width", self.width), ("--height", self.height)):
            if v is not None and v <= 0:
                raise BatchError(f"{name} must be a positive number of pixels, got {v}")
        fmt = str(self.format).lower()
        self.format = {"jpeg": "jpg"}.get(fmt, fmt)
        if self.format not in FORMAT_CHOICES and imagefile.is_image_name(f"x.{fmt}"):
            raise BatchError(f"--format {fmt}: {_not_written(fmt)}; valid: {', '.join(FORMAT_CHOICES)}")
        lookup(FORMAT_CHOICES, self.format, "--format", BatchError)
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise BatchError(f"--quality must be from 1 to 100, got {self.quality}")
        if self.preset is not None:
            lookup(PRESET_NAMES, self.preset, "--preset", BatchError)
        upscaler.patch_settings(2.0, self.preset, self.overrides)  # a bad config fails here, not once per file
        return self

    @property
    def tag(self):
        """What output names carry: 'x4', '1920x1080', 'w1920', 'h1080'."""
        if self.width and self.height:
            return f"{self.width}x{self.height}"
        if self.width or self.height:
            return f"w{self.width}" if self.width else f"h{self.height}"
        return f"x{self.scale:g}"


@dataclass
class Job:
    kind: str           # "image" or "model"
    source: str
    target: str | None  # None: a model's default name, known once it is loaded
    name: str           # what the user sees: the path below the input folder
    format: str         # png, jpg, webp
    size: tuple | None = None  # the output's (h, w) when known before the work (for --skip-existing)


# ------------------------------------------------------------------ plan

def classify(path):
    """'model', 'folder' or 'image' for an INPUT; BatchError if missing."""
    if path == "-" and not os.path.exists(path):
        raise BatchError("'-': reading standard input is not supported; give an image file, a folder or a model")
    if not os.path.exists(path):
        if os.path.islink(path):
            raise BatchError(f"'{path}' is a link to '{os.readlink(path)}', which does not exist")
        raise BatchError(f"'{path}' does not exist")
    if os.path.isdir(path):
        return "model" if os.path.isfile(os.path.join(path, "model.npz")) else "folder"
    return "model" if path.lower().endswith(".npz") else "image"


# the tag of an upscale's default folder name (``photos_x2``, ``photos_w1920``; not ``photos_1920x1080``,
# which is as likely a user's own folder)
OUTPUT_TAG = r"(x\d+(\.\d+)?|w\d+|h\d+)"


def find_images(folder, recursive, skip=()):
    """Image files in ``folder`` (sorted; hidden files and folders and any
    folder in ``skip``, e.g. the output, left out; so are the folder's own
    earlier upscales, ``FOLDER_x2`` inside it, where ``upscale .`` puts
    them, and a second name for a file already found, a link)."""
    names = {os.path.basename(os.path.normpath(os.path.abspath(folder))), os.path.basename(os.path.realpath(folder))}
    own = re.compile(rf"^({'|'.join(re.escape(n) for n in names)})_{OUTPUT_TAG}$")
    sized_like = re.compile(rf"^({'|'.join(re.escape(n) for n in names)})_\d+x\d+$")
    found = []
    for root, dirs, files in os.walk(folder):
        if not recursive:
            left = [d for d in sorted(dirs) if not d.startswith(".") and not own.match(d)  # (-r follows no link)
                    and not os.path.islink(os.path.join(root, d))
                    and os.path.realpath(os.path.join(root, d)) not in skip and _holds_images(os.path.join(root, d))]
            if left:
                warnings.warn(f"left out {len(left)} subfolder{'' if len(left) == 1 else 's'} of '{folder}' with "
                              f"images in {'it' if len(left) == 1 else 'them'} ({', '.join(left[:3])}"
                              f"{', ...' if len(left) > 3 else ''}); -r upscales them too")
            dirs[:] = []
        else:
            earlier = [d for d in dirs if root == folder and own.match(d)]
            if earlier:
                warnings.warn(f"left out {', '.join(repr(os.path.join(root, d)) for d in sorted(earlier))}: an "
                              f"earlier upscale of this folder")
            sized = [d for d in dirs if root == folder and sized_like.match(d) and d not in earlier
                     and os.path.realpath(os.path.join(root, d)) not in skip]
            if sized:
                warnings.warn(f"{', '.join(repr(os.path.join(root, d)) for d in sorted(sized))} may be an earlier "
                              f"--width/--height upscale of this folder; it is upscaled too (move it out if so)")
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in earlier
                             and os.path.realpath(os.path.join(root, d)) not in skip)
        found += [os.path.join(root, f) for f in sorted(files) if not f.startswith(".") and imagefile.is_image_name(f)]
    return imagefile.once_each(found, lambda p, first: warnings.warn(f"'{p}' is '{first}' again (a link); "
                                                                     f"upscaled once"))


def _holds_images(folder):
    """Whether ``folder`` itself (not below) holds an image file."""
    try:
        return any(not f.startswith(".") and imagefile.is_image_name(f) for f in os.listdir(folder))
    except OSError:
        return False


def _format_for(req, source):
    if req.format != "same":
        return req.format
    return imagefile.format_of_suffix(source) or "png"  # GIF, BMP, TIFF, ... -> PNG


def _named(path, fmt):
    """``path`` with the extension of ``fmt`` unless it is kept."""
    stem, ext = os.path.splitext(path)
    return path if imagefile.format_of_suffix(path) == fmt else stem + imagefile.EXTENSION[fmt]


def plan(req: Request) -> list:
    """Every job, with its target, checked before any work."""
    req.validate()
    if req.output == "-":
        raise BatchError("-o -: writing to standard output is not supported; give a file or a folder")
    kinds = [(p, classify(p)) for p in req.inputs]
    if req.input_image and any(k != "model" for _, k in kinds):
        raise BatchError("--input applies to model inputs only; give images as INPUT")
    unused = [flag for flag, given in (("--preset", req.preset), ("--prior (or a config's prior)", "prior" in req.overrides),
                                       ("--save-model", req.save_model)) if given]
    if unused and all(k == "model" for _, k in kinds):
        one = len(unused) == 1
        warnings.warn(f"{', '.join(unused)} {'applies' if one else 'apply'} to images only, and {'is' if one else 'are'} "
                      f"ignored: a model upscales as it was trained")
    one_file = len(kinds) == 1 and kinds[0][1] != "folder"
    out = req.output
    out_is_file = bool(out) and one_file and not os.path.isdir(out) and imagefile.format_of_suffix(out) is not None
    if out and one_file and not out_is_file and not os.path.isdir(out) and os.path.splitext(out)[1]:
        if imagefile.is_image_name(out):
            raise BatchError(f"-o '{out}': {_not_written(os.path.splitext(out)[1][1:])}; use .png, .jpg or .webp")
        raise BatchError(f"cannot tell the format of '{out}' from its suffix; use .png, .jpg or .webp")
    if out and not one_file and imagefile.format_of_suffix(out) and not os.path.isdir(out):
        what = "a folder input writes a folder" if len(kinds) == 1 else "several images will be written"
        raise BatchError(f"-o '{out}' looks like a file, but {what}; give a folder")
    if out_is_file and req.format != "same" and imagefile.format_of_suffix(out) != req.format:
        raise BatchError(f"-o '{out}' and --format {req.format} disagree; give one of them")
    if out_is_file:
        check_file_target(out)
    elif out:
        check_folder_target(out)
    skip = {os.path.realpath(out)} if out else set()
    jobs = []
    for path, kind in kinds:
        if kind == "folder":
            base = os.path.basename(os.path.normpath(os.path.abspath(path)))
            root = (os.path.join(out, base) if len(kinds) > 1 else out) if out else f"{base}_{req.tag}"
            skip.add(os.path.realpath(root))
            for src in find_images(path, req.recursive, skip):
                rel = os.path.relpath(src, path)
                fmt = _format_for(req, src)
                jobs.append(Job("image", src, _named(os.path.join(root, rel), fmt), rel, fmt))
        elif kind == "model":
            model = os.path.join(path, "model.npz") if os.path.isdir(path) else path
            fmt = imagefile.format_of_suffix(out) if out_is_file else (req.format if req.format != "same" else "png")
            target, size = _peek_target(req, model, fmt)
            jobs.append(Job("model", model, out if out_is_file else target, model, fmt, size))
        else:
            fmt = imagefile.format_of_suffix(out) if out_is_file else _format_for(req, path)
            stem, ext = os.path.splitext(os.path.basename(path))
            target = out if out_is_file else _named(os.path.join(out or "", f"{stem}_{req.tag}{ext}"), fmt)
            jobs.append(Job("image", path, target, os.path.basename(path), fmt))
    if not jobs:
        raise BatchError(_nothing_found(req, [p for p, k in kinds if k == "folder"], skip))
    _check_targets(jobs, req.save_model, req.input_image)
    stretched, images = 0, [j for j in jobs if j.kind == "image"]
    for j in images:
        hw = imagefile.size_of(j.source)
        if hw:
            j.size = upscaler.output_size(*hw, req.scale, req.width, req.height)
            _check_format_limit(j, j.size)
            stretched += bool(req.width and req.height and abs(j.size[1] / j.size[0] / (hw[1] / hw[0]) - 1) > 0.01)
    if stretched:
        warnings.warn(f"--width and --height together change the shape of {stretched} of {len(images)} image(s) "
                      f"(stretched to {req.width}x{req.height}); give one of them to keep each image's shape")
    if images and req.scale and req.scale > 1:
        settings = upscaler.patch_settings(req.scale, req.preset, req.overrides)
        if req.preset == "best":
            _say_if_best_is_balanced(req.scale, settings)
        _say_if_the_prior_is_larger(req.scale, settings)
    return jobs


def _say_if_the_prior_is_larger(scale, settings):
    """A prior file in low-resolution space of a larger scale than asked
    (an x4 prior ending in shuffle:4, at x2) upscales by its own scale and
    shrinks the result: said. (One on the bicubic upscale goes to any
    size in one pass.)"""
    if settings.prior in ("builtin", "none"):
        return
    from .modelfile import read_meta
    meta = read_meta(settings.prior) or {}
    own, layers = meta.get("scale"), str((meta.get("settings") or {}).get("layers", ""))
    if (isinstance(own, (int, float)) and layers.split(",")[-1].strip().startswith("shuffle:")
            and scale < own / internal.LOWRES_SLACK):
        warnings.warn(f"--prior '{settings.prior}' is an x{own:g} prior: at x{scale:g} it upscales x{own:g} and "
                      f"shrinks the result; a prior of x{scale:g} or less fits better (--prior builtin has x2)")


def _say_if_best_is_balanced(scale, settings):
    """--preset best trains longer than balanced, but where the built-in
    prior is used as trained (x4, x3) there is nothing to train longer."""
    if settings.prior != "builtin":
        return
    from . import patch, prior
    why = patch.not_fine_tuned(scale, prior.builtin_scale(scale))
    if why:
        warnings.warn(f"--preset best makes the same upscale as balanced at x{scale:g}, where the built-in "
                      f"prior is used as trained ({why}); best trains longer where it fine-tunes the prior (up to "
                      f"x2.14) and with --prior none")


# the largest side each written format holds (libwebp 16383; libjpeg 65500)
FORMAT_LIMITS = {"webp": 16383, "jpg": 65500}


def _check_format_limit(job, size):
    """Refuse, before any work, an output too large for its format."""
    limit = FORMAT_LIMITS.get(job.format)
    if limit and max(size) > limit:
        raise BatchError(f"the upscale of '{job.source}' would be {size[1]}x{size[0]}, but {job.format.upper()} "
                         f"holds at most {limit} pixels a side; use --format png, or a smaller --scale")


def model_scale(req, meta):
    """The scale a model upscales by when the call gives none: a patch
    model's own (it learned that step), else the default (4)."""
    if not req.scale_given and isinstance(meta, dict) and meta.get("mode") == upscaler.MODE:
        own = (meta.get("settings") or {}).get("scale")
        if isinstance(own, (int, float)) and own > 0:
            return float(own)
    return req.scale


def _model_target(req, model, source, size, fmt):
    """A model's default output: ``STEM_WxH`` beside the model (or in -o's
    folder), STEM the image it upscales (--input's, else its training
    image's), ``size`` the output's (h, w)."""
    stem = os.path.splitext(os.path.basename(req.input_image or source["name"]))[0]
    folder = req.output or os.path.dirname(model)  # as the user gave it: relative stays relative
    return os.path.join(folder, f"{stem}_{size[1]}x{size[0]}{imagefile.EXTENSION[fmt]}")


def _peek_target(req, model, fmt):
    """(A model's default output, its (h, w)), named before any work from
    the model's record (and --input's header), so that it is checked with
    every other output of the call; (None, None) when the file cannot be
    read that far (its turn then says why)."""
    from .modelfile import read_meta
    try:
        meta = read_meta(model)
        source = meta["source"]
        hw = imagefile.size_of(req.input_image) if req.input_image else (source["height"], source["width"])
        size = upscaler.output_size(*hw, model_scale(req, meta), req.width, req.height)
        target = _model_target(req, model, source, size, fmt)
    except (TypeError, KeyError, ValueError):  # no record (or no --input size): its load says why, at its turn
        return None, None
    _check_format_limit(Job("model", model, target, model, fmt), size)
    return target, size


def _not_written(fmt):
    """For an image format nncompress reads but does not write (GIF, BMP, TIFF, ...)."""
    return f"upscales are written as PNG, JPEG or WebP, not {fmt.upper()}"


def _nothing_found(req, folders, skip):
    """Why an upscale of folders has nothing to do, and what to try
    (subfolders in ``skip``, the outputs, do not count)."""
    where = ", ".join(f"'{f}'" for f in folders)
    nested = not req.recursive and any(not e.name.startswith(".") and e.is_dir() and os.path.realpath(e.path) not in skip
                                       for f in folders for e in os.scandir(f))
    hint = ("; it has subfolders: add -r to include them" if nested else
            f"; images are {', '.join(sorted(imagefile.READABLE))} files")
    return f"no images found in {where}{hint}"


def model_path(target):
    """Where --save-model keeps the model of the upscale ``target``."""
    return os.path.splitext(target)[0] + ".npz"


def _check_targets(jobs, save_model=False, input_image=None):
    sources = {}
    for j in jobs:  # a model given as its run folder and as its model.npz, or a file given twice
        src = os.path.realpath(j.source)
        if src in sources:
            twice = (f"'{j.source}' is given twice (as a folder and as a file in it, or as a run folder and "
                     f"its model)" if sources[src] == j.source else f"'{sources[src]}' and '{j.source}' are one file")
            raise BatchError(f"{twice}; give each input once")
        sources[src] = j.source
    seen = {}
    for j in jobs:
        if j.target is None:
            continue
        t = os.path.realpath(j.target)
        if t == os.path.realpath(j.source):
            raise BatchError(f"the output '{j.target}' would overwrite its input; choose another -o")
        if t in sources or (input_image and t == os.path.realpath(input_image)):
            raise BatchError(f"the upscale of '{j.source}' would be written to '{j.target}', which is an input of "
                             f"this call; choose another -o")
        _check_target(j)
        if t in seen:
            raise BatchError(f"'{seen[t]}' and '{j.source}' would both be written to '{j.target}'; "
                             "upscale them in separate calls with -o, or rename one")
        seen[t] = j.source
    if save_model:
        models = {}
        for j in jobs:
            if j.target is None or j.kind != "image":
                continue
            m = os.path.realpath(model_path(j.target))
            if os.path.isdir(m):
                raise BatchError(f"a folder '{model_path(j.target)}' is where --save-model keeps the model of "
                                 f"'{j.source}'; move it, or write elsewhere with -o")
            if m in sources:
                raise BatchError(f"--save-model would keep the model of '{j.source}' as '{model_path(j.target)}', "
                                 f"which is an input; write elsewhere with -o")
            if m in models or m in seen:
                other = models.get(m) or seen[m]
                raise BatchError(f"--save-model would keep the models of '{other}' and '{j.source}' both as "
                                 f"'{model_path(j.target)}'; upscale them in separate calls with -o, or rename one")
            models[m] = j.source


def _check_target(job):
    """Refuse an output path that could not be written (before any work)."""
    if os.path.isdir(job.target):
        raise BatchError(f"a folder '{job.target}' is where the upscale of '{job.source}' goes; move it, "
                         f"or write elsewhere with -o")
    check_file_target(job.target, "the output")
