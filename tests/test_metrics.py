import numpy as np
import pytest

from nncompress.metrics import psnr, rgb_to_y, ssim
from nncompress.resize import imresize, weights


def test_imresize_antialiased_shrink_by_hand():
    """Worked by hand: shrinking 4 -> 2 uses the cubic widened x2 (8 taps),
    centre u = 1.5; normalised weights 0.43359375 (d=.5), 0.11328125
    (d=1.5), -0.03515625 (d=2.5), -0.01171875 (d=3.5), edges mirrored.
    For the row 0, 1, 2, 3 the first output is 0.4609375."""
    row = np.arange(4.0)
    np.testing.assert_allclose(imresize(row[None, :], size=(1, 2))[0, 0], 0.4609375)
    a = np.arange(16.0).reshape(4, 4)
    np.testing.assert_allclose(imresize(a, 0.5), [[2.3046875, 4.3828125], [10.6171875, 12.6953125]])


def test_imresize_upscale_by_hand():
    """Up x2, output 1: u = 0.75; taps at d = 1.75, 0.75, -0.25, -1.25 ->
    weights -0.0234375, 0.2265625, 0.8671875, -0.0703125; mirrored edge."""
    row = np.array([[1.0, 2.0, 4.0, 8.0]])
    want = -0.0234375 * 2 + 0.2265625 * 1 + 0.8671875 * 1 - 0.0703125 * 2
    np.testing.assert_allclose(imresize(row, size=(1, 8))[0, 0], want)


def test_imresize_properties():
    rng = np.random.default_rng(0)
    assert imresize(rng.random((9, 7)), 2.0).shape == (18, 14)
    assert imresize(rng.random((9, 7, 3)), 1 / 3).shape == (3, 3, 3)  # ceil
    c = np.full((10, 12), 0.3)
    np.testing.assert_allclose(imresize(c, 0.37), 0.3)  # constants are kept
    np.testing.assert_allclose(weights(10, 5, 0.5).sum(axis=1), 1.0)


@pytest.mark.parametrize("shape,size", [((9, 7), (18, 14)), ((40, 33, 3), (10, 11)), ((5, 30), (17, 7)),
                                        ((1, 12), (1, 5)), ((16, 16), (16, 48))])
def test_imresize_equals_the_weight_matrices(shape, size):
    """The tap sums give what the (out, in) matrices of the definition give."""
    img = np.random.default_rng(4).random(shape)
    sh, sw = size[0] / shape[0], size[1] / shape[1]
    want = img
    for axis in ((0, 1) if sh <= sw else (1, 0)):
        M = weights(want.shape[axis], size[axis], (sh, sw)[axis])
        want = np.moveaxis(np.tensordot(M, want, axes=([1], [axis])), 0, axis)
    np.testing.assert_allclose(imresize(img, size=size), want, rtol=0, atol=1e-13)


def test_y_channel_matches_matlab():
    white, black = np.ones((1, 1, 3)), np.zeros((1, 1, 3))
    np.testing.assert_allclose(rgb_to_y(white), 235.0)
    np.testing.assert_allclose(rgb_to_y(black), 16.0)


def test_psnr_known_cases():
    rng = np.random.default_rng(1)
    a = rng.random((20, 20, 3))
    assert psnr(a, a) == float("inf")
    g = rng.random((20, 20, 1))
    # a constant offset of 2/255 on gray: MSE = 4 -> 10 log10(255^2 / 4)
    assert psnr(g + 2 / 255, g) == pytest.approx(10 * np.log10(255 ** 2 / 4))
    # the border is shaved before scoring
    b = g.copy()
    b[0, :] += 0.5
    assert psnr(b, g, border=1) == float("inf")


def test_ssim_known_cases():
    rng = np.random.default_rng(2)
    a = rng.random((32, 32, 1))
    assert ssim(a, a) == pytest.approx(1.0)
    # constant images: SSIM = (2 mx my + C1) / (mx^2 + my^2 + C1)
    x, y = np.full((16, 16, 1), 100 / 255), np.full((16, 16, 1), 120 / 255)
    C1 = (0.01 * 255) ** 2
    assert ssim(x, y) == pytest.approx((2 * 100 * 120 + C1) / (100 ** 2 + 120 ** 2 + C1))
    noisy = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    assert 0 < ssim(noisy, a) < 0.95
