"""Draw samples/digit_3.png: a 28x28 handwritten-style 3 (MNIST-like: white
ink on black, anti-aliased). Run: python samples/make_digit.py"""

import os

from PIL import Image, ImageDraw, ImageFilter

S = 16  # supersampling factor
im = Image.new("L", (28 * S, 28 * S), 0)
d = ImageDraw.Draw(im)
w = int(2.6 * S)
# upper bowl, waist, lower bowl: arcs as a pen would draw them
d.arc((8 * S, 4 * S, 20 * S, 14 * S), start=200, end=80, fill=255, width=w)
d.line((13 * S, 13.6 * S, 17 * S, 13.2 * S), fill=255, width=w)
d.arc((7 * S, 12.5 * S, 21 * S, 24.5 * S), start=280, end=150, fill=255, width=w)
im = im.rotate(-8, resample=Image.BICUBIC, center=(14 * S, 14 * S))
im = im.filter(ImageFilter.GaussianBlur(S * 0.6)).resize((28, 28), Image.LANCZOS)
im.save(os.path.join(os.path.dirname(os.path.abspath(__file__)), "digit_3.png"))
