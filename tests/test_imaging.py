import numpy as np
import pytest
from PIL import Image

from nncompress.coords import image_to_table, pixel_grid, render
from nncompress.imaging import read_image, write_png


@pytest.mark.parametrize("mode,channels", [("L", 1), ("LA", 2), ("RGB", 3), ("RGBA", 4)])
def test_round_trip_8_bit(tmp_path, mode, channels):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (7, 9, channels), dtype=np.uint8)
    p = tmp_path / "a.png"
    Image.fromarray(a[..., 0] if channels == 1 else a, mode).save(p)
    img, bits = read_image(p)
    assert bits == 8 and img.shape == (7, 9, channels) and img.dtype == np.float32
    np.testing.assert_array_equal(np.round(img * 255).astype(np.uint8), a)
    write_png(tmp_path / "b.png", img)
    again, _ = read_image(tmp_path / "b.png")
    np.testing.assert_array_equal(again, img)


def test_palette_images(tmp_path):
    rgb = Image.new("RGB", (6, 4), (250, 20, 10))
    rgb.convert("P").save(tmp_path / "p.png")
    img, _ = read_image(tmp_path / "p.png")
    assert img.shape == (4, 6, 3) and abs(img[0, 0, 0] - 250 / 255) < 0.02
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 255, 0, 0])
    pal.putpixel((0, 0), 0)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pt.png", transparency=0)
    img, _ = read_image(tmp_path / "pt.png")
    assert img.shape == (4, 4, 4) and img[0, 0, 3] == 0 and img[1, 1, 3] == 1  # transparency kept as alpha
    Image.new("L", (3, 3), 90).convert("P").save(tmp_path / "gray.png")
    assert read_image(tmp_path / "gray.png")[0].shape == (3, 3, 1)  # a gray palette stays one channel


def test_16_bit_round_trip(tmp_path):
    a = np.random.default_rng(1).integers(0, 65536, (5, 8), dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "a.png")
    img, bits = read_image(tmp_path / "a.png")
    assert bits == 16
    write_png(tmp_path / "b.png", img, 16)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "b.png")), a)


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (6, 3), "white")
    im.putpixel((0, 0), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(tmp_path / "o.jpg", exif=exif, quality=100)
    img, _ = read_image(tmp_path / "o.jpg")
    assert img.shape[:2] == (6, 3)


def test_table_is_pixel_centres_in_minus_one_to_one():
    img = np.arange(2 * 3 * 1, dtype=np.float32).reshape(2, 3, 1)
    X, Y = image_to_table(img)
    np.testing.assert_allclose(X[0], [-0.5, -2 / 3])
    np.testing.assert_allclose(X[-1], [0.5, 2 / 3])
    np.testing.assert_array_equal(Y[:, 0], img.ravel())


def test_render_in_tiles_matches_one_pass():
    f = lambda X: np.stack([0.5 + 0.5 * np.sin(3 * X[:, 0]) * X[:, 1]] * 2, axis=1)
    whole = render(f, 37, 23, 2, tile_pixels=10**9)
    tiled = render(f, 37, 23, 2, tile_pixels=50)  # 2 rows a tile
    np.testing.assert_array_equal(whole, tiled)
    np.testing.assert_allclose(whole.reshape(-1, 2), np.clip(f(pixel_grid(37, 23)), 0, 1))
