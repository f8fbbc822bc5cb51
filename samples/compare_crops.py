"""Crops comparing bicubic with nncompress patch mode (x2 and x4) on a
photo from ../shared/images: python samples/compare_crops.py OUT_DIR"""

import os
import sys

import numpy as np
from PIL import Image, ImageDraw

from nncompress.compresser import Compresser
from nncompress.evaluate import degrade
from nncompress.imaging import array_to_pil, read_image
from nncompress.metrics import psnr
from nncompress.patch import DEFAULTS
from nncompress.resize import imresize
from nncompress.spec import make_settings


def crop_sheet(panels, hr, S, box, scored):
    """One image of ``panels`` [(name, image)] side by side, each cut to
    ``box`` (y0, x0, h, w), enlarged 2x with nearest neighbour, and named;
    those in ``scored`` with their PSNR (dB, on Y, S pixels shaved)."""
    y0, x0, h, w = box
    tiles = []
    for name, img in panels:
        crop = array_to_pil(np.clip(img[y0:y0 + h, x0:x0 + w], 0, 1)).resize((2 * w, 2 * h), Image.NEAREST)
        canvas = Image.new("RGB", (2 * w, 2 * h + 20), "white")
        canvas.paste(crop, (0, 20))
        score = f" {psnr(img, hr, S):.2f} dB" if name in scored else ""
        ImageDraw.Draw(canvas).text((4, 4), name + score, fill="black")
        tiles.append(canvas)
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + 6 * (len(tiles) - 1), tiles[0].height), "white")
    x = 0
    for t in tiles:
        sheet.paste(t, (x, 0))
        x += t.width + 6
    return sheet


def main(out):
    os.makedirs(out, exist_ok=True)  # before the minute of work, not after
    here = os.path.dirname(os.path.abspath(__file__))
    hr_full, _ = read_image(os.path.join(here, "..", "..", "shared", "images", "astronaut.png"))
    for S in (2, 4):
        hr, lr = degrade(hr_full, S)
        settings = make_settings(dict(DEFAULTS), scale=float(S), frames=0)
        comp, _ = Compresser.for_image(lr, 8, settings)
        comp.train(lr, settings)
        sr = comp.upscale(*hr.shape[:2])
        bic = np.clip(imresize(lr, size=hr.shape[:2]), 0, 1)
        panels = [("input (nearest)", np.repeat(np.repeat(lr, S, 0), S, 1)), ("bicubic", bic), ("nncompress", sr),
                  ("original", hr)]
        crop_sheet(panels, hr, S, (60, 180, 160, 160), ("bicubic", "nncompress")).save(  # the face and helmet
            os.path.join(out, f"astronaut_x{S}_crops.png"))
        print(f"x{S}: bicubic {psnr(bic, hr, S):.2f} dB, nncompress {psnr(sr, hr, S):.2f} dB")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
