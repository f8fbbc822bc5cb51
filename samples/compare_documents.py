"""Crops of a document page at x2: bicubic, the built-in prior, and the
built-in prior taught document pages (the README's Pretrain measurement).

    python benchmarks/make_documents.py docs
    nncompress pretrain docs/train -s 2 --init builtin -e 4 --steps 200 --lr 0.0003 -o docs_x2.npz
    python samples/compare_documents.py docs/test/test00.png docs_x2.npz samples/gallery
"""

import os
import sys

import numpy as np

from compare_crops import crop_sheet  # (beside this script)
from nncompress import upscaler
from nncompress.evaluate import degrade
from nncompress.imaging import read_image
from nncompress.metrics import psnr
from nncompress.resize import imresize

page, taught, out = sys.argv[1:4]
os.makedirs(out, exist_ok=True)
S = 2
hr, lr = degrade(read_image(page)[0], S)
bic = np.clip(imresize(lr, size=hr.shape[:2]), 0, 1)
ups = {name: upscaler.upscale_image(lr, 8, hr.shape[:2], upscaler.patch_settings(S, overrides={"prior": p}))[0] / 255
       for name, p in (("built-in prior", "builtin"), ("taught documents", taught))}
panels = [("input (nearest)", np.repeat(np.repeat(lr, S, 0), S, 1)), ("bicubic", bic), *ups.items(), ("original", hr)]
sheet = crop_sheet(panels, hr, S, (40, 0, 90, 160), ("bicubic", *ups))
sheet.save(os.path.join(out, "documents_x2_crops.png"))
print(", ".join(f"{n} {psnr(i, hr, S):.2f} dB" for n, i in panels[1:-1]))
