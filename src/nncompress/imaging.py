"""Images in and out: read any common format, write PNG and GIF atomically.

Images are float32 arrays (H, W, C) in [0, 1] with C = 1 (gray), 2 (gray +
alpha), 3 (RGB) or 4 (RGBA). ``bits`` (8 or 16) records the source depth so
outputs can be written back at the same precision.
"""

import os
import warnings

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from .atomic import atomic_write
from .errors import ImageError

MAX_PIXELS = 100_000_000  # refuse larger sources before decoding them


def read_image(path):
    """Returns (img (H, W, C) float32 in [0, 1], bits)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        if os.path.islink(path):
            raise ImageError(f"'{path}' is a link to '{os.readlink(path)}', which does not exist")
        raise ImageError(f"image '{path}' does not exist")
    if os.path.isdir(path):
        raise ImageError(f"'{path}' is a folder; give an image file (PNG, JPEG, GIF, ...)")
    if os.path.getsize(path) == 0:
        raise ImageError(f"'{path}' is an empty file, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # we check the size ourselves
            try:
                im = Image.open(path)  # reads the header only
            finally:
                Image.MAX_IMAGE_PIXELS = limit
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ImageError(f"'{path}' claims {w}x{h} pixels, over the limit of {MAX_PIXELS:,}; "
                                 "shrink it first")
            if getattr(im, "n_frames", 1) > 1:
                warnings.warn(f"'{os.path.basename(path)}' has {im.n_frames} frames; using the first", stacklevel=2)
                im.seek(0)
            im.load()
            im = ImageOps.exif_transpose(im)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"'{path}' is not an image Pillow can read (is it really a PNG/JPEG?)") from None
    except PermissionError:
        raise ImageError(f"'{path}' cannot be read: no permission (check its permissions, e.g. chmod +r)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"'{path}' is damaged or truncated: {e}") from None
    return pil_to_array(im)


def pil_to_array(im):
    """Pillow image -> ((H, W, C) float32 in [0, 1], bits)."""
    if im.mode == "F":  # 32-bit float (TIFF): Pillow's convert would clip [0, 1] to black
        a = np.asarray(im, dtype=np.float64)
        top = float(a.max()) if a.size else 0.0
        if not np.all(np.isfinite(a)) or a.min() < -0.05 or top > 65535:
            raise ImageError(f"a 32-bit float image must hold values in 0..1 (or 0..255, 0..65535), got "
                             f"{np.nanmin(a):g} to {np.nanmax(a):g}; convert it to 8 or 16 bits first")
        # (a resampled [0, 1] image overshoots a little: 1.001 is still 0..1, not 0..255)
        span = 1.0 if top <= 1.05 else 255.0 if top <= 255 * 1.05 else 65535.0
        return np.clip(a / span, 0, 1).astype(np.float32)[..., None], 16
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        if im.mode == "I" and a.max() <= 255:
            return (a / 255).astype(np.float32)[..., None], 8
        return (np.clip(a, 0, 65535) / 65535).astype(np.float32)[..., None], 16
    was_palette = im.mode in ("P", "PA")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode == "PA":
        im = im.convert("RGBA")
    elif im.mode == "1":
        im = im.convert("L")
    elif im.mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    a = np.asarray(im, dtype=np.float32) / 255
    if a.ndim == 2:
        a = a[..., None]
    elif was_palette and np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2]):
        a = a[..., [0] + ([3] if a.shape[2] == 4 else [])]  # a gray palette stays gray
    return np.ascontiguousarray(a), 8


def fill_transparent(img):
    """(H, W, C) with alpha last (C = 2 or 4) -> a copy whose colour under
    fully transparent pixels is spread in from the visible ones (pull-push:
    alpha-weighted 2x2 averages up a pyramid, then each level's holes
    filled from the one above). Any resampling mixes neighbouring colours,
    and the black (or any colour) an editor leaves under transparency
    would otherwise bleed into the edges as a dark fringe. Visible pixels,
    and alpha, are unchanged; other images are returned as they are."""
    if img.shape[2] not in (2, 4):
        return img
    hole = img[..., -1] <= 0
    if not hole.any() or hole.all():
        return img
    # float32 throughout (about 40 bytes a pixel at the peak; the levels above the first add a third)
    levels = [(img[..., :-1].astype(np.float32, copy=False), img[..., -1].astype(np.float32, copy=False))]  # (colour, weight)
    while max(levels[-1][1].shape) > 1:
        col, w = levels[-1]
        H, W = w.shape
        cw = col * w[..., None]
        ws = np.zeros(((H + 1) // 2, (W + 1) // 2), np.float32)  # odd sides: the missing pixel weighs 0
        cs = np.zeros(ws.shape + (col.shape[2],), np.float32)
        for dy in (0, 1):
            for dx in (0, 1):
                part = w[dy::2, dx::2]
                ws[:part.shape[0], :part.shape[1]] += part
                cs[:part.shape[0], :part.shape[1]] += cw[dy::2, dx::2]
        del cw
        cs /= np.maximum(ws, 1e-12)[..., None]
        levels.append((cs, np.minimum(ws, 1.0)))
    est = levels[-1][0]
    for col, w in reversed(levels[:-1]):
        up = np.repeat(np.repeat(est, 2, axis=0), 2, axis=1)[:w.shape[0], :w.shape[1]]
        diff = col - up
        diff *= w[..., None]
        up += diff  # w col + (1 - w) up
        est = up
        del diff
    out = img.copy()
    out[..., :-1][hole] = est[hole].astype(img.dtype)
    return out


def to_uint(img, bits=8):
    """(H, W, C) float in [0, 1] -> uint8/uint16, rounded."""
    top = 65535 if bits == 16 else 255
    return np.round(np.clip(img, 0, 1) * top).astype(np.uint16 if bits == 16 else np.uint8)


def array_to_pil(img, bits=8):
    """(H, W, C) float in [0, 1] (at ``bits``), uint8 or uint16 -> Pillow
    image: L, LA, RGB, RGBA, or I;16 for 16-bit gray. Pillow has no 16-bit
    colour modes, so colour is written at 8 bits."""
    c = img.shape[2]
    if img.dtype.kind == "f":
        q = to_uint(img, 16 if bits == 16 and c == 1 else 8)
    elif img.dtype == np.uint16 and c > 1:
        q = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    else:
        q = img
    return Image.fromarray(q[..., 0] if c == 1 else q)


def write_png(path, img, bits=8):
    """Write an (H, W, C) image array (see ``array_to_pil``) or a Pillow
    image as PNG, atomically."""
    pil = img if isinstance(img, Image.Image) else array_to_pil(img, bits)
    atomic_write(path, lambda f: pil.save(f, format="PNG"))


def write_gif(path, frames, fps=10):
    """Write a looping GIF of PIL images, atomically."""
    duration = int(round(1000 / fps))

    def write(f):
        frames[0].save(f, format="GIF", save_all=True, append_images=frames[1:], duration=duration,
                       loop=0, optimize=False, disposal=1)
    atomic_write(path, write)


def label_frame(pil, text, height=18):
    """A copy of ``pil`` (RGB) with a caption strip underneath."""
    pil = pil.convert("RGB")
    out = Image.new("RGB", (pil.width, pil.height + height), "white")
    out.paste(pil, (0, 0))
    ImageDraw.Draw(out).text((4, pil.height + 3), text, fill="black")
    return out

