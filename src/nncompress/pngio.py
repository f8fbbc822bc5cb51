"""16-bit PNG pixels in and out, which Pillow cannot do for colour: it reads
a 48/64-bit PNG as 8-bit RGB(A) and has no 16-bit colour mode to write.

Only the pixel data lives here; Pillow still reads the metadata (ICC, EXIF)
of the same file. Arrays are uint16 (H, W, C), C = 1 gray, 2 gray + alpha,
3 RGB, 4 RGBA.
"""

import struct
import zlib

import numpy as np
from numba import njit

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}  # PNG colour type -> channels
COLOUR_TYPE = {c: t for t, c in CHANNELS.items()}


def _chunks(data):
    """(type, body) of each chunk of a PNG byte string."""
    if data[:8] != SIGNATURE:
        raise ValueError("not a PNG file")
    pos = 8
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        yield kind, data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IEND":
            return


def header(path):
    """(width, height, bit depth, colour type, interlace) of a PNG file."""
    with open(path, "rb") as f:
        head = f.read(33)
    if head[:8] != SIGNATURE or head[12:16] != b"IHDR":
        return None
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return w, h, depth, ctype, interlace


def is_deep_png(path):
    """True for a non-interlaced 16-bit PNG, which ``read16`` decodes."""
    try:
        h = header(path)
    except OSError:
        return False
    return bool(h) and h[2] == 16 and h[3] in CHANNELS and h[4] == 0


@njit(cache=True)
def _unfilter(raw, h, stride, bpp):
    """PNG scanline filters undone: raw (h * (stride + 1),) uint8 ->
    (h, stride) uint8."""
    out = np.zeros((h, stride), np.uint8)
    prev = np.zeros(stride, np.int32)
    for y in range(h):
        ftype = raw[y * (stride + 1)]
        base = y * (stride + 1) + 1
        for i in range(stride):
            x = np.int32(raw[base + i])
            a = np.int32(out[y, i - bpp]) if i >= bpp else np.int32(0)
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else np.int32(0)
            if ftype == 1:
                x += a
            elif ftype == 2:
                x += b
            elif ftype == 3:
                x += (a + b) >> 1
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                x += a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
            out[y, i] = x & 255
        for i in range(stride):
            prev[i] = out[y, i]
    return out


def read16(path):
    """Pixels of a 16-bit PNG (see ``is_deep_png``): uint16 (H, W, C)."""
    with open(path, "rb") as f:
        data = f.read()
    idat = []
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    if depth != 16 or ctype not in CHANNELS or interlace:
        raise ValueError("read16 reads non-interlaced 16-bit PNGs only")
    c = CHANNELS[ctype]
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    stride = w * c * 2
    if raw.size < h * (stride + 1):
        raise ValueError("truncated PNG data")
    rows = _unfilter(raw[:h * (stride + 1)], h, stride, c * 2)
    return rows.view(">u2").reshape(h, w, c).astype(np.uint16)


def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def encode16(img, icc=None, exif=None, level=6, text=None, dpi=None):
    """uint16 (H, W, C) -> PNG bytes at 16 bits per sample, with an ICC
    profile and EXIF (TIFF bytes, with or without the 'Exif\\0\\0' prefix)
    when given. Rows use the Sub filter (a vectorised difference), which
    compresses photos far better than no filter."""
    h, w, c = img.shape
    bpp = 2 * c
    rows = np.ascontiguousarray(img, dtype=">u2").view(np.uint8).reshape(h, w * bpp)
    filt = np.empty((h, w * bpp + 1), np.uint8)
    filt[:, 0] = 1  # Sub
    filt[:, 1:] = rows
    filt[:, 1 + bpp:] -= rows[:, :-bpp]  # wraps mod 256, as PNG wants
    parts = [SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, COLOUR_TYPE[c], 0, 0, 0))]
    if icc:
        parts.append(_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
    if exif:
        parts.append(_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    if dpi:  # pixels per metre
        parts.append(_chunk(b"pHYs", struct.pack(">IIB", round(dpi[0] / 0.0254), round(dpi[1] / 0.0254), 1)))
    for key, value in (text or {}).items():  # iTXt: UTF-8, uncompressed
        parts.append(_chunk(b"iTXt", key.encode("latin-1", "replace")[:79] + b"\x00\x00\x00\x00\x00" + value.encode("utf-8")))
    parts += [_chunk(b"IDAT", zlib.compress(filt.tobytes(), level)), _chunk(b"IEND", b"")]
    return b"".join(parts)
