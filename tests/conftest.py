import os
import sys

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))  # gradcheck helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")


@pytest.fixture
def digit():
    return os.path.join(ROOT, "samples", "digit_3.png")


@pytest.fixture
def rgb_image(tmp_path):
    """A small smooth RGB test picture."""
    y, x = np.mgrid[0:24, 0:32] / 24.0
    img = np.stack([0.5 + 0.4 * np.sin(3 * x), 0.5 + 0.4 * np.cos(2 * y), 0.5 + 0.3 * np.sin(2 * x + y)], -1)
    path = tmp_path / "rgb.png"
    Image.fromarray((img * 255).astype(np.uint8)).save(path)
    return str(path)


def shared_image(name):
    """Path of a test photo in ../shared/images. Skipped where the photos
    are absent, except under CI (env CI set), where that is a failure: a
    quality test must not pass there by not running."""
    path = os.path.join(SHARED, "images", name)
    if not os.path.exists(path):
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI must provide ../shared/images (the test photos)", pytrace=False)
        pytest.skip(f"{path} not available")
    return path
