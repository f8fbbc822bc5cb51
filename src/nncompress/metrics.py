"""The standard super-resolution scores: PSNR and SSIM on the Y channel of
BT.601 YCbCr (as MATLAB's rgb2ycbcr), with ``border`` pixels shaved."""

import numpy as np


def rgb_to_y(img):
    """(H, W, 3) RGB in [0, 1] -> Y in [16, 235] on the 0..255 scale, as
    MATLAB's rgb2ycbcr. A one-channel image is returned on the 0..255 scale."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 3 and img.shape[2] >= 3:
        return 16 + 65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]
    return (img[..., 0] if img.ndim == 3 else img) * 255


def _prepare(a, b, border):
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    if ya.shape != yb.shape:
        raise ValueError(f"images differ in size: {ya.shape} vs {yb.shape}")
    if border:
        ya, yb = ya[border:-border, border:-border], yb[border:-border, border:-border]
    return ya, yb


def psnr(a, b, border=0):
    """PSNR in dB on Y (peak 255); inf for identical images."""
    ya, yb = _prepare(a, b, border)
    mse = np.mean((ya - yb) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def psnr_rgb(a, b):
    """PSNR in dB over all channels of [0, 1] images (for training progress)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def _gaussian(size=11, sigma=1.5):
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-x * x / (2 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img, g):
    """Separable 'valid' correlation with the 1-D kernel g on both axes."""
    k = len(g)
    rows = sum(g[i] * img[i:img.shape[0] - k + 1 + i] for i in range(k))
    return sum(g[i] * rows[:, i:rows.shape[1] - k + 1 + i] for i in range(k))


def ssim(a, b, border=0):
    """Mean SSIM on Y (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5,
    K1 0.01, K2 0.03, L 255, 'valid' window positions)."""
    x, y = _prepare(a, b, border)
    C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = _gaussian()
    mx, my = _filter_valid(x, g), _filter_valid(y, g)
    sxx = _filter_valid(x * x, g) - mx * mx
    syy = _filter_valid(y * y, g) - my * my
    sxy = _filter_valid(x * y, g) - mx * my
    m = ((2 * mx * my + C1) * (2 * sxy + C2)) / ((mx * mx + my * my + C1) * (sxx + syy + C2))
    return float(m.mean())
