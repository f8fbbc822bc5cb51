"""Image files as a user keeps them: pixels plus what a viewer needs to show
them the same way (format, bit depth, ICC profile, EXIF).

Read: the EXIF orientation is applied to the pixels and the tag reset to 1,
so the file we write shows upright everywhere. 16-bit PNGs keep 16 bits
(``pngio``). Write: PNG (8 or 16 bit), JPEG or WebP, atomically, with the
ICC profile and EXIF copied.

JPEG has no alpha channel. An opaque alpha is dropped; a transparent one is
composited onto white and the caller is told (``SavedImage.notes``), so a
batch goes on; ``--format png`` or ``webp`` keeps it.
"""

import os
import zlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from . import imaging, pngio
from .atomic import atomic_write

FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}  # --format name -> Pillow format
SUFFIXES = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}
EXTENSION = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}
READABLE = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".tga", ".ppm", ".pgm", ".pnm"}
DEFAULT_QUALITY = 95
ORIENTATION = 0x0112  # EXIF tag


@dataclass
class Picture:
    """A decoded image file: pixels (H, W, C) float32 in [0, 1], upright."""
    pixels: np.ndarray
    bits: int                 # 8 or 16
    format: str | None        # "png", "jpg", "webp", or None for others (GIF, BMP, TIFF, ...)
    icc: bytes | None = None
    exif: bytes | None = None  # orientation already applied and reset to 1
    lossless: bool = False     # a lossless WebP (VP8L): its upscale as WebP stays lossless
    meta: dict = field(default_factory=dict)  # carried over where the format holds it: xmp (bytes),
                                              # text ({key: str}, PNG), comment (bytes, JPEG), dpi ((x, y))


@dataclass
class SavedImage:
    path: str
    bytes: int
    notes: list = field(default_factory=list)  # what the user should know, e.g. alpha flattened


def is_image_name(name):
    return os.path.splitext(name)[1].lower() in READABLE


def format_of_suffix(path):
    """'png', 'jpg', 'webp' from a file name's suffix, else None."""
    return SUFFIXES.get(os.path.splitext(path)[1].lower())


def load(path):
    """Read an image file -> Picture. Raises ``imaging.ImageError`` with a
    one-line reason for anything unreadable."""
    deep = pngio.is_deep_png(path)
    if deep:
        w, h = pngio.header(path)[:2]
        if w * h > imaging.MAX_PIXELS:
            raise imaging.ImageError(f"'{path}' claims {w}x{h} pixels, over the limit of {imaging.MAX_PIXELS:,}")
    else:
        pixels, bits = imaging.read_image(path)  # validates, applies the orientation
    try:
        with Image.open(path) as im:
            fmt = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}.get(im.format)
            icc = im.info.get("icc_profile") or None
            ex = Image.Exif()
            try:
                ex = im.getexif()  # (a PNG's decodes the pixels unless an eXIf comes before them)
                if im.format == "PNG":
                    im.load()  # text chunks after the pixels are read as they are decoded (0.26 s at 12 MP)
            except (SyntaxError, ValueError):  # a broken chunk after the pixels: the pixels are read already
                pass
            meta = _metadata(im)
    except OSError as e:
        raise imaging.ImageError(f"'{path}' is damaged or truncated: {e}") from None
    orientation = ex.get(ORIENTATION, 1)
    exif = None
    if len(ex):
        if ORIENTATION in ex:
            ex[ORIENTATION] = 1
        exif = ex.tobytes()
    if deep:  # Pillow would cut colour to 8 bits
        try:
            pixels = _transpose_array(pngio.read16(path), orientation).astype(np.float32) / 65535
        except (ValueError, OSError, zlib.error) as e:
            raise imaging.ImageError(f"'{path}' is damaged or truncated: {e}") from None
        bits = 16
    return Picture(pixels, bits, fmt, icc, exif, fmt == "webp" and _webp_lossless(path), meta)


XMP_KEY = "XML:com.adobe.xmp"  # PNG's iTXt keyword for an XMP packet
_NOT_TEXT = {XMP_KEY, "icc_profile", "exif", "xmp", "dpi", "gamma", "transparency", "aspect", "srgb", "chromaticity"}


def _metadata(im):
    """What a photo carries besides pixels, EXIF and ICC, that its upscale
    keeps: the XMP packet (ratings, keywords, captions from photo tools),
    PNG text chunks (those after the pixels too, once ``im`` is loaded; of
    two of one keyword, the later), a JPEG comment, and the DPI (kept as
    it is: the print grows with the pixels, as a resample in a photo editor
    does)."""
    info, meta = im.info, {}
    xmp = info.get("xmp") or info.get(XMP_KEY)
    if xmp:
        meta["xmp"] = xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)
    if im.format == "PNG":
        text = {k: str(v) for k, v in info.items() if isinstance(v, str) and k not in _NOT_TEXT}
        if text:
            meta["text"] = text
    if isinstance(info.get("comment"), bytes) and info["comment"]:
        meta["comment"] = info["comment"]
    dpi = info.get("dpi")
    if isinstance(dpi, tuple) and len(dpi) == 2 and all(isinstance(d, (int, float)) and d > 0 for d in dpi):
        meta["dpi"] = tuple(round(float(d), 2) for d in dpi)
    return meta


def once_each(paths, said=None):
    """``paths`` with a file reached a second time (a link, or another name
    for it) left out; ``said(path, first)`` hears of each one left out."""
    seen = {}  # real path -> the name kept: the file's own name over a link to it, else the first
    for p in paths:
        real = os.path.realpath(p)
        if real not in seen or (os.path.islink(seen[real]) and not os.path.islink(p)):
            seen[real] = p
    kept, done = [], set()
    for p in paths:
        real = os.path.realpath(p)
        if seen[real] == p and real not in done:
            kept.append(p)
            done.add(real)
        elif said:
            said(p, seen[real])
    return kept


def short_names(paths):
    """{path: a short name}: as many of its last path parts as tell it from
    the other paths (``cc/rocket.jpg`` and ``mixed/rocket.jpg``; a file
    name alone when it is the only one). Paths to one place share a name."""
    parts = {p: os.path.abspath(p).split(os.sep) for p in paths}
    out = {}
    for p, mine in parts.items():
        others = [o for o in parts.values() if o != mine]
        n = next((n for n in range(1, len(mine) + 1) if all(o[-n:] != mine[-n:] for o in others)), len(mine))
        out[p] = "/".join(x for x in mine[-n:] if x)
    return out


def size_of(path):
    """(h, w) of an image file as ``load`` turns it upright, from its header
    (no pixels read); None when the file cannot be opened (``load`` says why)."""
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # the header of a big photo is no bomb
            try:
                with Image.open(path) as im:
                    w, h = im.size
                    if im.format == "TIFF":  # Pillow turns a TIFF upright as it opens it
                        orientation = 1
                    elif im.format == "PNG":  # PNG's getexif() would decode the pixels to look past them
                        orientation = Image.Image.getexif(im).get(ORIENTATION) or _late_png_orientation(path)
                    else:
                        orientation = im.getexif().get(ORIENTATION, 1)
                    turned = orientation in (5, 6, 7, 8)
            finally:
                Image.MAX_IMAGE_PIXELS = limit
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    return (w, h) if turned else (h, w)


def _late_png_orientation(path):
    """The EXIF orientation of an eXIf chunk after a PNG's pixels (which
    ``read_image`` honours), found by walking the chunks; 1 if none."""
    import struct
    with open(path, "rb") as f:
        f.seek(8)
        while len(head := f.read(8)) == 8:
            size, kind = struct.unpack(">I", head[:4])[0], head[4:]
            if kind == b"eXIf":
                ex = Image.Exif()
                ex.load(b"Exif\x00\x00" + f.read(size))
                return ex.get(ORIENTATION, 1)
            if kind == b"IEND":
                break
            f.seek(size + 4, 1)
    return 1


TAIL = 1 << 16  # the last bytes ``looks_whole`` reads


def looks_whole(path):
    """Whether an image file ends as its format says a whole file ends
    (PNG: its IEND chunk; JPEG: the end-of-image marker; WebP: the length
    its RIFF header gives), read from its last bytes, not decoded. Other
    formats: taken as whole."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL))
            tail = f.read()
    except OSError:
        return False
    # (cameras and phones append data after the end marker: a marker near the end will do)
    if head.startswith(b"\x89PNG"):
        return b"IEND\xaeB`\x82" in tail
    if head.startswith(b"\xff\xd8"):
        return b"\xff\xd9" in tail
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return int.from_bytes(head[4:8], "little") + 8 <= size
    return True


def _webp_lossless(path):
    """Whether a WebP file's image is VP8L (lossless), from its RIFF chunks."""
    with open(path, "rb") as f:
        if f.read(12)[8:] != b"WEBP":
            return False
        while len(head := f.read(8)) == 8:
            kind, size = head[:4], int.from_bytes(head[4:], "little")
            if kind in (b"VP8L", b"VP8 "):
                return kind == b"VP8L"
            f.seek(size + size % 2, 1)
    return False


def _transpose_array(a, orientation):
    """Apply an EXIF orientation (1..8) to an (H, W, C) array."""
    ops = {2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1], 4: lambda x: x[::-1],
           5: lambda x: np.swapaxes(x, 0, 1), 6: lambda x: np.rot90(x, -1), 7: lambda x: np.swapaxes(x, 0, 1)[::-1, ::-1],
           8: lambda x: np.rot90(x, 1)}
    return np.ascontiguousarray(ops.get(orientation, lambda x: x)(a))


def save(path, pixels, fmt, bits=8, icc=None, exif=None, quality=None, lossless=False, meta=None):
    """Write (H, W, C) pixels (float in [0, 1], uint8 or uint16) as ``fmt``
    ('png', 'jpg', 'webp') at ``path``, atomically. PNG keeps 16 bits when
    ``bits`` is 16; JPEG and WebP are 8-bit formats; ``lossless`` WebP
    (when no quality is given). ``meta`` (``Picture.meta``) goes where the
    format holds it. Returns SavedImage."""
    meta = meta or {}
    if fmt not in FORMATS:
        raise ValueError(f"unknown format '{fmt}'; valid: {', '.join(FORMATS)}")
    c = pixels.shape[2]
    notes = []
    if fmt == "png" and quality is not None:
        notes.append("--quality ignored (PNG is lossless)")
    if fmt != "png" and bits == 16:
        notes.append(f"16-bit depth written as 8-bit ({fmt.upper()} has 8 bits a channel; --format png keeps 16)")
    if fmt == "png" and bits == 16:
        deep = pixels if pixels.dtype == np.uint16 else imaging.to_uint(pixels, 16)
        data = pngio.encode16(deep, icc=icc, exif=_exif_sized(exif, deep.shape[1], deep.shape[0]) if exif else None,
                              text=_png_text(meta), dpi=meta.get("dpi"))
        atomic_write(path, lambda f: f.write(data))
        return SavedImage(os.fspath(path), len(data), notes)
    q8 = _to_uint8(pixels)
    if fmt == "jpg" and c in (2, 4):
        q8, flattened = _drop_alpha(q8)
        if flattened:
            notes.append("transparency flattened onto white (JPEG has no alpha; --format png or webp keeps it)")
    pil = Image.fromarray(q8[..., 0] if q8.shape[2] == 1 else q8)
    if fmt == "webp" and pil.mode == "LA":
        pil = pil.convert("RGBA")
    kw = {}
    if icc:
        kw["icc_profile"] = icc
    if exif:
        kw["exif"] = _exif_sized(exif, pil.width, pil.height)
    if meta.get("xmp") and fmt in ("jpg", "webp"):
        kw["xmp"] = meta["xmp"]
    if meta.get("dpi") and fmt in ("jpg", "png"):
        kw["dpi"] = meta["dpi"]
    if fmt == "jpg" and meta.get("comment"):
        kw["comment"] = meta["comment"]
    if fmt == "png" and _png_text(meta):
        from PIL import PngImagePlugin
        kw["pnginfo"] = PngImagePlugin.PngInfo()
        for k, v in _png_text(meta).items():
            kw["pnginfo"].add_itxt(k, v)
    if fmt == "webp" and lossless and quality is None:
        kw["lossless"] = True
    elif fmt in ("jpg", "webp"):
        kw["quality"] = DEFAULT_QUALITY if quality is None else int(quality)
    if fmt == "jpg":
        kw["subsampling"] = 0 if kw["quality"] >= 90 else 2  # 4:4:4 for high quality, as photo tools do
    atomic_write(path, lambda f: pil.save(f, format=FORMATS[fmt], **kw))  # encoded straight into the file
    return SavedImage(os.fspath(path), os.path.getsize(path), notes)


def _png_text(meta):
    """PNG text chunks for ``meta``: its own, the XMP packet under PNG's
    keyword, a JPEG comment as 'Comment'."""
    text = dict(meta.get("text") or {})
    if meta.get("xmp"):
        text[XMP_KEY] = meta["xmp"].decode("utf-8", "replace")
    if meta.get("comment") and "Comment" not in text:
        text["Comment"] = meta["comment"].decode("utf-8", "replace")
    return text


EXIF_IFD, PIXEL_X, PIXEL_Y = 0x8769, 0xA002, 0xA003  # the Exif sub-IFD and its image-size tags


def _exif_sized(exif, width, height):
    """EXIF bytes with PixelXDimension/PixelYDimension, where present, set
    to the size written (they kept the input's)."""
    ex = Image.Exif()
    try:
        ex.load(exif)
        ifd = ex.get_ifd(EXIF_IFD)
        if PIXEL_X not in ifd and PIXEL_Y not in ifd:
            return exif
        ifd.update({PIXEL_X: width, PIXEL_Y: height})
        return ex.tobytes()
    except Exception:  # a maker's odd EXIF: kept as it came, not lost
        return exif


def _to_uint8(pixels):
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return imaging.to_uint(pixels, 8)


def _drop_alpha(q8):
    """uint8 (H, W, 2|4) -> (H, W, 1|3) composited on white, and whether any
    pixel was transparent."""
    colour, alpha = q8[..., :-1], q8[..., -1:]
    if alpha.min() == 255:
        return np.ascontiguousarray(colour), False
    a = alpha.astype(np.float32) / 255
    flat = colour.astype(np.float32) * a + 255 * (1 - a)
    return np.round(flat).astype(np.uint8), True
