"""Synthetic document pages, a kind of picture far from the photos the
built-in priors learned from: words in six sizes and a few inks on tinted
paper, with a little noise (320x240). Writes FOLDER/train (24 pages) and
FOLDER/test (8 others, another seed), for the README's measurement of a
prior taught such pictures (``nncompress pretrain ... --init builtin``).

    python benchmarks/make_documents.py docs
"""

import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WORDS = ("the quick brown fox jumps over lazy dog upscale network prior pixel image photo learn train "
         "convolution residual bicubic shuffle kernel gradient epoch tensor camera lens paper print").split()


def page(rng, w=320, h=240):
    paper = tuple(int(v) for v in rng.integers(225, 256, 3))
    im = Image.new("RGB", (w, h), paper)
    d = ImageDraw.Draw(im)
    y = int(rng.integers(2, 10))
    while y < h - 10:
        size = int(rng.choice([10, 12, 14, 16, 20, 26]))
        font = ImageFont.load_default(size=size)  # Pillow's own font (FreeType): the same on every machine
        ink = tuple(int(v) for v in rng.integers(0, 90, 3)) if rng.random() < 0.8 else (30, 60, 170)
        x = int(rng.integers(2, 20))
        while x < w - 20:
            word = str(rng.choice(WORDS))
            d.text((x, y), word, fill=ink, font=font)
            x += int(d.textlength(word + " ", font=font))
        y += int(size * rng.uniform(1.2, 1.6))
    a = np.asarray(im).astype(np.float32) + rng.normal(0, 2, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def main(folder):
    for split, n, seed in (("train", 24, 1), ("test", 8, 2)):
        os.makedirs(os.path.join(folder, split), exist_ok=True)
        rng = np.random.default_rng(seed)
        for i in range(n):
            page(rng).save(os.path.join(folder, split, f"{split}{i:02d}.png"))
    print(f"wrote {folder}/train (24 pages) and {folder}/test (8)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs")
