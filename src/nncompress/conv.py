"""Whole-image inference of a convolutional network, in tiles; the
``Conv2D`` layer itself lives with the other layers (``layers.py``).

Layout: NHWC float32, X (B, H, W, C_in) -> Y (B, H, W, C_out): a batch of
crops in training, one image (B = 1) at inference. The channel axis is
last, so an Activation layer after a Conv2D applies per channel as it does
per unit after a Connected layer.

The convolutions themselves (``layers.Conv2D``, ``kernels/conv.py``):
    forward   Z = cols(X) W + b        im2col + float32 GEMM in blocks of
                                       4096 pixels, one block per worker
                                       thread (a direct kernel for <= 4
                                       outputs); in tiled inference each
                                       pixel keeps its place modulo 48 in
                                       the GEMM, so a tile gives the same
                                       bits as the whole image
    backward  dW = cols(X)^T dZ        the same blocks, summed in order
              dX = fold(conv0(dZ, W_flip))   the full correlation of dZ with
                                       the flipped kernel (the forward's
                                       kernels), then the reflect pad's
                                       gradient folded back onto the pixels
"""

import math

import numpy as np
from threadpoolctl import threadpool_limits

from .layers import Activation, Conv2D, PixelShuffle


# ------------------------------------------------------------------ inference

TILE_BYTES = 128 << 20  # activation bytes per tile (three arrays of the widest layer): bounds memory for any size


def receptive_radius(net):
    """Pixels on each side that one output pixel depends on."""
    return sum(l.radius for l in net.layers if isinstance(l, Conv2D))


def upsampling(net):
    """How many times larger the output is than the input, on each side:
    the scale of a last PixelShuffle (a network in low-resolution space),
    else 1."""
    return math.prod(l.scale for l in net.layers if isinstance(l, PixelShuffle))


def _forward_tile(net, X, edges, x0):
    """Forward pass over one tile (1, h, w, C) with halo, whose first
    column is the image's column ``x0``; ``edges`` (top, bottom, left,
    right) says which sides are the image's real edges: only those are
    padded, elsewhere each layer eats one ring of halo."""
    layers = net.layers[1:]
    fused = False
    for i, layer in enumerate(layers):
        if fused:  # a ReLU applied by the conv before it
            fused = False
        elif isinstance(layer, Conv2D):
            r = layer.radius
            pads = tuple(r if e else 0 for e in edges)
            x0 += r - pads[2]
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            fused = isinstance(nxt, Activation) and nxt.name == "relu"
            X = layer.forward(X, pads, x0, relu=fused)
        else:
            X = layer.forward(X)
        layer.forget()  # inference keeps nothing for a backward pass: one tile's memory is two activations
    return X


def predict_image(net, img, tile=None):
    """Whole-image inference: img (H, W, C_in) -> (H*f, W*f, C_out) float32
    (f: ``upsampling(net)``), in tiles with a halo of the receptive radius,
    so memory is bounded whatever the size and the result equals one
    untiled pass."""
    H, W, C = img.shape
    R, f = receptive_radius(net), upsampling(net)
    widest = max([l.channels for l in net.layers if isinstance(l, Conv2D)] + [C])
    if tile is None:  # a square tile whose activations fit TILE_BYTES (the im2col blocks are fixed: kernels/conv.py)
        # (each layer's input and output are alive at once; a shuffle's input is f*f channels)
        tile = max(16, int(math.sqrt(TILE_BYTES / (3 * 4 * widest))) - 2 * R)
    out = np.empty((H * f, W * f, net.out_size), np.float32)
    X = np.ascontiguousarray(img, dtype=np.float32)
    with threadpool_limits(1, user_api="blas"):  # the conv kernels' workers are the parallelism
        _tiles(net, X, tile, R, f, out)
    return out


def _tiles(net, X, tile, R, f, out):
    H, W = X.shape[:2]
    for y0 in range(0, H, tile):
        y1 = min(H, y0 + tile)
        for x0 in range(0, W, tile):
            x1 = min(W, x0 + tile)
            a, b, c, d = max(0, y0 - R), min(H, y1 + R), max(0, x0 - R), min(W, x1 + R)
            edges = (a == 0, b == H, c == 0, d == W)
            Y = _forward_tile(net, X[None, a:b, c:d], edges, c)[0]
            out[y0 * f:y1 * f, x0 * f:x1 * f] = _crop(Y, (y0 - a) * f, (x0 - c) * f, (y1 - y0) * f, (x1 - x0) * f,
                                                      R * f, edges)


def _crop(Y, oy, ox, h, w, R, edges):
    """The tile's own pixels from a tile output ``Y``: a side that was not a
    real edge lost R halo pixels (of the output) to the convolutions."""
    oy -= 0 if edges[0] else R
    ox -= 0 if edges[2] else R
    return Y[oy:oy + h, ox:ox + w]
