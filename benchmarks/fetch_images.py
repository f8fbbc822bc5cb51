"""Write the six test photos the README's results tables use, from
scikit-image's sample data (public domain or CC0; see skimage.data), into a
folder (default ``images/``):

    pip install scikit-image
    python benchmarks/fetch_images.py            # -> images/astronaut.png ... images/rocket.jpg
    nncompress evaluate images/* --scale 2

rocket.jpg is copied as scikit-image ships it (a JPEG: re-encoding it would
change the pixels); the others are written as PNG from their arrays.
"""

import argparse
import os
import shutil
import sys

PHOTOS = ("astronaut", "brick", "camera", "chelsea", "coffee", "rocket")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default="images", help="where to write them (default: images/)")
    folder = ap.parse_args(argv).folder
    try:
        from skimage import data
    except ImportError:
        sys.exit("scikit-image is not installed: pip install scikit-image")
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for name in PHOTOS:
        shipped = os.path.join(data.data_dir, f"{name}.jpg")
        if name == "rocket" and os.path.exists(shipped):
            target = os.path.join(folder, "rocket.jpg")
            shutil.copyfile(shipped, target)
        else:
            target = os.path.join(folder, f"{name}.png")
            Image.fromarray(getattr(data, name)()).save(target)
        print(target)


if __name__ == "__main__":
    main()
