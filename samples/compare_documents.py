"""Crops of a document page at x2: bicubic, the built-in prior, and the
built-in prior taught document pages (the README's Pretrain measurement).

    python benchmarks/make_documents.py docs
    nncompress pretrain docs/train -s 2 --init builtin -e 4 --steps 200 --lr 0.0003 -o docs_x2.npz
    python samples/compare_documents.py docs/test/test00.png docs_x2.npz samples/gallery
"""

import os
import sys

import numpy as np
from PIL import Image, ImageDraw

from nncompress import upscaler
from nncompress.evaluate import degrade
from nncompress.imaging import array_to_pil, read_image
from nncompress.metrics import psnr
from nncompress.resize import imresize

page, taught, out = sys.argv[1:4]
os.makedirs(out, exist_ok=True)
S = 2
hr, lr = degrade(read_image(page)[0], S)
bic = np.clip(imresize(lr, size=hr.shape[:2]), 0, 1)
ups = {name: upscaler.upscale_image(lr, 8, hr.shape[:2], upscaler.patch_settings(S, overrides={"prior": p}))[0] / 255
       for name, p in (("built-in prior", "builtin"), ("taught documents", taught))}
y0, x0, h, w = 40, 0, 90, 160
panels = [("input (nearest)", np.repeat(np.repeat(lr, S, 0), S, 1)), ("bicubic", bic), *ups.items(), ("original", hr)]
tiles = []
for name, img in panels:
    crop = array_to_pil(np.clip(img[y0:y0 + h, x0:x0 + w], 0, 1)).resize((2 * w, 2 * h), Image.NEAREST)
    canvas = Image.new("RGB", (2 * w, 2 * h + 20), "white")
    canvas.paste(crop, (0, 20))
    score = f" {psnr(img, hr, S):.2f} dB" if name not in ("input (nearest)", "original") else ""
    ImageDraw.Draw(canvas).text((4, 4), name + score, fill="black")
    tiles.append(canvas)
sheet = Image.new("RGB", (sum(t.width for t in tiles) + 6 * (len(tiles) - 1), tiles[0].height), "white")
x = 0
for t in tiles:
    sheet.paste(t, (x, 0))
    x += t.width + 6
sheet.save(os.path.join(out, "documents_x2_crops.png"))
print(", ".join(f"{n} {psnr(i, hr, S):.2f} dB" for n, i in panels[1:-1]))
