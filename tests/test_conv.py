"""Conv2D: numpy oracles for the kernels, gradient checks, tiled inference."""

import numpy as np
import pytest

from nncompress.kernels import conv as KC
from nncompress.layers import Conv2D

from gradcheck import check_layer


# ------------------------------------------------------------------ oracles

def naive_conv(X, W, b, k, pads, mode="reflect"):
    """The definition, with loops: X (B, H, W, C) padded by np.pad, then
    Y[b, y, x, o] = b[o] + sum_{dy, dx, c} Xp[b, y+dy, x+dx, c] W[(dy, dx, c), o]."""
    top, bottom, left, right = pads
    Xp = np.pad(X, ((0, 0), (top, bottom), (left, right), (0, 0)), mode=mode)
    B, Hp, Wp, C = Xp.shape
    Ho, Wo = Hp - k + 1, Wp - k + 1
    Wk = W.reshape(k, k, C, -1)
    Y = np.zeros((B, Ho, Wo, W.shape[1])) + b
    for dy in range(k):
        for dx in range(k):
            Y += np.einsum("bhwc,co->bhwo", Xp[:, dy:dy + Ho, dx:dx + Wo], Wk[dy, dx])
    return Y


def naive_im2col(X, k, pads, mode):
    top, bottom, left, right = pads
    Xp = np.pad(X, ((0, 0), (top, bottom), (left, right), (0, 0)), mode=mode)
    win = np.lib.stride_tricks.sliding_window_view(Xp, (k, k), axis=(1, 2))  # (B, Ho, Wo, C, k, k)
    return win.transpose(0, 1, 2, 4, 5, 3).reshape(-1, k * k * X.shape[3])


@pytest.mark.parametrize("k,pads", [(3, (1, 1, 1, 1)), (3, (0, 1, 1, 0)), (5, (2, 0, 0, 2)), (1, (0, 0, 0, 0)),
                                    (3, (0, 0, 0, 0))])
@pytest.mark.parametrize("mode", ["reflect", "constant"])
@pytest.mark.parametrize("C", [1, 3])
def test_im2col_matches_numpy(k, pads, mode, C):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2, 6, 7, C)).astype(np.float32)
    ref = naive_im2col(X, k, pads, mode)
    B, H, W, _ = X.shape
    Ho, Wo = H + pads[0] + pads[1] - k + 1, W + pads[2] + pads[3] - k + 1
    cols = np.full((B * Ho * Wo, k * k * C), np.nan, np.float32)
    KC.im2col(X, k, pads[0], pads[2], Ho, Wo, KC.REFLECT if mode == "reflect" else KC.ZERO, cols)
    np.testing.assert_array_equal(cols, ref)


def test_im2col_zero_pad_wider_than_kernel_radius():
    """The backward pass pads dY with zeros by k-1 on every side."""
    X = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2)
    k = 3
    cols = np.empty((2 * 5 * 6, 9 * 2), np.float32)
    KC.im2col(X, k, 2, 2, 5, 6, KC.ZERO, cols)
    np.testing.assert_array_equal(cols, naive_im2col(X, k, (2, 2, 2, 2), "constant"))


@pytest.mark.parametrize("pads", [(1, 1, 1, 1), (0, 1, 0, 1), (2, 2, 2, 2)])
def test_fold_reflect_is_the_adjoint_of_reflect_padding(pads):
    """<pad(X), G> == <X, fold(G)> for every X and G."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((2, 5, 6, 3))
    top, bottom, left, right = pads
    Xp = np.pad(X, ((0, 0), (top, bottom), (left, right), (0, 0)), mode="reflect")
    G = rng.standard_normal(Xp.shape)
    out = np.empty_like(X)
    KC.fold_reflect(G, top, bottom, left, right, out)
    assert np.sum(Xp * G) == pytest.approx(np.sum(X * out), rel=1e-12)


@pytest.mark.parametrize("k,pads,mode", [(3, (1, 1, 1, 1), "reflect"), (5, (2, 0, 0, 2), "constant"),
                                         (3, (2, 2, 2, 2), "constant")])
@pytest.mark.parametrize("x0,L", [(0, 4), (3, 4), (5, 3), (11, 48)])
def test_im2col_slots_place_each_pixel_by_its_global_column(k, pads, mode, x0, L):
    """Slot s holds one piece of an output row, cut where x0 + x is a
    multiple of L, at offset (x0 + x) % L; all else zero; and slots_out
    puts a GEMM of that layout back where each pixel belongs."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2, 5, 7, 2)).astype(np.float32)
    ref = naive_im2col(X, k, pads, mode)
    B, H, W, C = X.shape
    Ho, Wo = H + pads[0] + pads[1] - k + 1, W + pads[2] + pads[3] - k + 1
    code = KC.REFLECT if mode == "reflect" else KC.ZERO
    want = {}  # slot row -> im2col row, from the definition
    segs = [(j * L, (j + 1) * L) for j in range(x0 // L, (x0 + Wo - 1) // L + 1)]
    for by in range(B * Ho):
        for i, (g0, g1) in enumerate(segs):
            for g in range(max(g0, x0), min(g1, x0 + Wo)):
                want[((by * len(segs) + i) * L) + g - g0] = by * Wo + g - x0
    n_slots = B * Ho * len(segs)
    for s0, s1 in [(0, n_slots), (1, n_slots - 1)]:
        cols = np.full(((s1 - s0 + 2) * L, k * k * C), np.nan, np.float32)  # two spare slots: zeroed
        KC.im2col_slots(X, k, pads[0], pads[2], Ho, Wo, code, x0, L, s0, s1, cols)
        expect = np.zeros_like(cols)
        for r, src in want.items():
            if s0 * L <= r < s1 * L:
                expect[r - s0 * L] = ref[src]
        np.testing.assert_array_equal(cols, expect)
        Z = np.full((B * Ho * Wo, 3), np.nan, np.float32)
        Wm = rng.standard_normal((k * k * C, 3)).astype(np.float32)
        KC.slots_out(cols @ Wm, np.ones(3, np.float32), Wo, x0, L, s0, s1, Z)
        done = [src for r, src in want.items() if s0 * L <= r < s1 * L]
        np.testing.assert_allclose(Z[done], ref[done] @ Wm + 1, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel,block", [("conv_direct_narrow", 0), ("conv_gemm", 4096),
                                          ("conv_gemm", 5), ("conv_gemm_aligned", 4096), ("conv_gemm_aligned", 5),
                                          ("conv_gemm_relu", 5), ("conv_gemm_aligned_relu", 5)])
@pytest.mark.parametrize("mode", ["reflect", "constant"])
@pytest.mark.parametrize("k,pads", [(3, (1, 1, 1, 1)), (3, (0, 1, 1, 0)), (5, (2, 0, 2, 1)), (3, (2, 2, 2, 2))])
def test_conv_kernels_match_the_definition(kernel, block, mode, k, pads, monkeypatch):
    """Every forward kernel against the definition; the GEMM ones also with
    blocks of 5 pixels (blocks that cut rows, and a padded last block)."""
    block = block or KC.BLOCK
    monkeypatch.setattr(KC, "BLOCK", block)
    monkeypatch.setattr(KC, "ALIGN", 4 if block == 5 else KC.ALIGN)
    rng = np.random.default_rng(6)
    C, O = 3, 7
    X = rng.standard_normal((2, 6, 8, C)).astype(np.float32)
    W = rng.standard_normal((k * k * C, O)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    ref = naive_conv(X.astype(np.float64), W.astype(np.float64), b, k, pads, mode)
    Z = np.full(ref.shape, np.nan, np.float32)
    code = KC.REFLECT if mode == "reflect" else KC.ZERO
    if kernel == "conv_direct_narrow":
        KC.conv_direct_narrow(X, np.ascontiguousarray(W.T), b, k, pads[0], pads[2], code, Z)
    else:
        relu = kernel.endswith("_relu")  # inference applies the ReLU that follows in the same pass
        KC.conv_gemm(X, W, b, k, pads[0], pads[2], code, Z, 7 if "aligned" in kernel else None, relu)
        ref = np.maximum(ref, 0) if relu else ref
    np.testing.assert_allclose(Z, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("block", [4096, 7])
def test_weight_gradient_blocks_match_one_gemm(block, monkeypatch):
    monkeypatch.setattr(KC, "BLOCK", block)
    rng = np.random.default_rng(8)
    X = rng.standard_normal((2, 5, 6, 3))
    dZ = rng.standard_normal((2, 5, 6, 4))
    dW = np.full((27, 4), np.nan)
    KC.weight_grad_gemm(X, dZ, 3, 1, 1, KC.REFLECT, dW)
    np.testing.assert_allclose(dW, naive_im2col(X, 3, (1, 1, 1, 1), "reflect").T @ dZ.reshape(-1, 4), rtol=1e-12)


def test_weight_gradient_sums_the_blocks_in_order(monkeypatch):
    """Block by block, in block order, on any number of threads: the same
    bits as the blocks' products summed in order one by one (a sum in the
    order blocks finish would differ in the last bits from run to run)."""
    import numba
    monkeypatch.setattr(KC, "BLOCK", 7)
    monkeypatch.setattr(KC, "ALIGN", 1)
    rng = np.random.default_rng(12)
    X = rng.standard_normal((2, 5, 6, 8)).astype(np.float32)
    dZ = rng.standard_normal((2, 5, 6, 8)).astype(np.float32)
    cols = naive_im2col(X, 3, (1, 1, 1, 1), "reflect").astype(np.float32)
    dZf = dZ.reshape(-1, 8)
    per = KC._per_block(len(dZf))
    parts = [cols[p:p + per].T @ dZf[p:p + per] for p in range(0, len(dZf), per)]
    want = parts[0].copy()
    for p in parts[1:]:
        want += p
    before = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            dW = np.full((72, 8), np.nan, np.float32)
            KC.weight_grad_gemm(X, dZ, 3, 1, 1, KC.REFLECT, dW)
            np.testing.assert_array_equal(dW, want)
    finally:
        numba.set_num_threads(before)


def test_blocks_stop_on_an_error_and_raise_it_once_all_have_stopped():
    import threading
    import time
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        ex = KC._workers()[0]
        for who in ("worker", "caller"):
            done = []

            def fn(b):
                time.sleep(0.002)
                main = threading.current_thread() is threading.main_thread()
                if b[0] >= 20 and main == (who == "caller"):
                    raise ValueError(who)
                done.append(b)
                return b

            with pytest.raises(ValueError, match=who):
                KC._run(ex, fn, 1000, 10)
            n = len(done)
            time.sleep(0.05)
            assert len(done) == n < 20  # nothing ran on after the raise, and the rest was not computed
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("k,cin,cout,pads,mode", [(3, 32, 1, (1, 1, 1, 1), "reflect"), (5, 1, 8, (2, 2, 2, 2), "reflect"),
                                                (3, 2, 3, (0, 1, 1, 0), "constant"), (3, 6, 6, (1, 1, 1, 1), "reflect"),
                                                (5, 3, 1, (2, 2, 2, 2), "reflect"), (3, 1, 5, (2, 0, 0, 2), "constant")])
@pytest.mark.parametrize("width", [9, 2])
def test_weight_gradient_of_few_channels_matches_im2col(k, cin, cout, pads, mode, width):
    """The direct sums for a layer with few channels in or out (and the GEMM
    blocks above that) against im2col(X)^T dZ in numpy; the same bits with
    one thread as with two."""
    import numba
    rng = np.random.default_rng(9)
    X = rng.standard_normal((3, 7, width, cin)).astype(np.float32)  # width 2: narrower than the kernel
    r = k // 2
    Ho, Wo = 7 + pads[0] + pads[1] - 2 * r, width + pads[2] + pads[3] - 2 * r
    dZ = rng.standard_normal((3, Ho, Wo, cout)).astype(np.float32)
    code = KC.REFLECT if mode == "reflect" else KC.ZERO
    ref = naive_im2col(X.astype(np.float64), k, pads, mode).T @ dZ.reshape(-1, cout).astype(np.float64)
    dW = np.full((k * k * cin, cout), np.nan, np.float32)
    KC.weight_grad(X, dZ, k, pads[0], pads[2], code, dW)
    np.testing.assert_allclose(dW, ref, rtol=1e-4, atol=1e-4)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = np.empty_like(dW)
        KC.weight_grad(X, dZ, k, pads[0], pads[2], code, one)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, dW)


@pytest.mark.parametrize("k,cin,cout", [(3, 1, 4), (3, 4, 2), (5, 2, 3), (1, 3, 2), (3, 3, 9)])
def test_conv_forward_matches_definition(k, cin, cout):
    rng = np.random.default_rng(2)
    layer = Conv2D(cout, k)
    layer.build(cin, rng, np.float64)
    layer.params["b"][...] = rng.standard_normal(cout)
    X = rng.standard_normal((3, 7, 6, cin))
    r = k // 2
    for pads in [(r, r, r, r), (0, r, r, 0), (0, 0, 0, 0)]:
        np.testing.assert_allclose(layer.forward(X, pads), naive_conv(X, layer.params["W"], layer.params["b"], k, pads),
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("k,pads,mode", [(3, (1, 1, 1, 1), "reflect"), (5, (2, 0, 1, 2), "constant")])
def test_im2col_of_a_channel_group_is_im2col_of_those_channels(k, pads, mode):
    """im2col_block and im2col_slots over channels c0..c0+Cg-1 (a grouped
    conv's GEMM) equal the whole im2col of that slice of X."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((2, 6, 7, 6)).astype(np.float32)
    code = KC.REFLECT if mode == "reflect" else KC.ZERO
    Ho, Wo = 6 + pads[0] + pads[1] - k + 1, 7 + pads[2] + pads[3] - k + 1
    for c0, cg in ((0, 3), (3, 3), (2, 2)):
        ref = naive_im2col(X[..., c0:c0 + cg], k, pads, mode)
        n = ref.shape[0]
        cols = np.full((n + 3, k * k * cg), 9.0, np.float32)
        KC.im2col_block_range(X, k, pads[0], pads[2], Ho, Wo, code, 0, n, cols, c0, cg)
        np.testing.assert_array_equal(cols[:n], ref)
        assert not cols[n:].any()
        L = 8  # the aligned layout, one slot per row segment, against the same pixels
        nseg = (Wo - 1) // L + 1
        slots = np.empty((2 * Ho * nseg * L, k * k * cg), np.float32)
        KC.im2col_slots_range(X, k, pads[0], pads[2], Ho, Wo, code, 0, L, 0, 2 * Ho * nseg, slots, c0, cg)
        rows = slots.reshape(2 * Ho, nseg * L, -1)[:, :Wo].reshape(n, -1)
        np.testing.assert_array_equal(rows, ref)


def block_diagonal(W, k, cin, cout, g):
    """A grouped conv's W (k*k*cin/g, cout) as the dense (k*k*cin, cout)
    whose group j's outputs see only group j's inputs."""
    ci, co = cin // g, cout // g
    Wk, D = W.reshape(k, k, ci, cout), np.zeros((k, k, cin, cout))
    for j in range(g):
        D[:, :, j * ci:(j + 1) * ci, j * co:(j + 1) * co] = Wk[:, :, :, j * co:(j + 1) * co]
    return D.reshape(k * k * cin, cout)


@pytest.mark.parametrize("k,cin,cout,g", [(3, 4, 6, 2), (5, 3, 6, 3), (1, 4, 4, 4), (3, 6, 2, 2), (3, 12, 12, 2),
                                         (5, 6, 15, 3)])
def test_grouped_conv_forward_matches_definition(k, cin, cout, g):
    """A conv in g groups is the definition with block-diagonal weights."""
    rng = np.random.default_rng(2)
    layer = Conv2D(cout, k, groups=g)
    layer.build(cin, rng, np.float64)
    assert layer.params["W"].shape == (k * k * cin // g, cout)
    layer.params["b"][...] = rng.standard_normal(cout)
    X = rng.standard_normal((2, 7, 6, cin))
    r = k // 2
    D = block_diagonal(layer.params["W"], k, cin, cout, g)
    for pads in [(r, r, r, r), (0, r, r, 0)]:
        np.testing.assert_allclose(layer.forward(X, pads), naive_conv(X, D, layer.params["b"], k, pads),
                                   rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="groups"):
        Conv2D(5, 3, groups=2)
    with pytest.raises(ValueError, match="split"):
        Conv2D(4, 3, groups=2).build(3, rng)


# ------------------------------------------------------------- gradients

@pytest.mark.parametrize("k,cin,cout,g,shape", [(3, 4, 6, 2, (2, 4, 5)), (3, 3, 3, 3, (1, 2, 2)),
                                                (5, 2, 4, 2, (1, 5, 4))])
def test_grouped_conv_gradients(k, cin, cout, g, shape):
    rng = np.random.default_rng(3)
    layer = Conv2D(cout, k, groups=g)
    layer.build(cin, rng, np.float64)
    layer.params["b"][...] = rng.standard_normal(cout)
    check_layer(layer, rng.standard_normal(shape + (cin,)), rng)

@pytest.mark.parametrize("k,cin,cout,shape", [(3, 1, 2, (2, 4, 5)), (3, 3, 2, (1, 5, 4)), (5, 2, 2, (2, 6, 6)),
                                              (1, 2, 3, (1, 3, 3)), (3, 2, 1, (1, 2, 2)), (3, 2, 2, (1, 1, 6)),
                                              (3, 6, 6, (1, 4, 3))])
def test_conv_gradients(k, cin, cout, shape):
    """Every gradient, including dX through the reflect padding at the
    edges (images as small as 1-2 pixels, where most pixels are edges)."""
    rng = np.random.default_rng(3)
    layer = Conv2D(cout, k)
    layer.build(cin, rng, np.float64)
    layer.params["b"][...] = rng.standard_normal(cout)
    check_layer(layer, rng.standard_normal(shape + (cin,)), rng)


# --------------------------------------------------------------- inference

def test_pixel_shuffle_matches_the_definition():
    """Y[b, y*s+i, x*s+j, c] = X[b, y, x, c*s*s + i*s + j] (PyTorch's order)."""
    from nncompress.layers import PixelShuffle
    s, C = 3, 2
    X = np.random.default_rng(0).standard_normal((2, 4, 5, C * s * s))
    layer = PixelShuffle(s)
    assert layer.build(C * s * s, None) == C
    Y = layer.forward(X)
    want = np.empty((2, 4 * s, 5 * s, C))
    for y in range(4):
        for x in range(5):
            for i in range(s):
                for j in range(s):
                    for c in range(C):
                        want[:, y * s + i, x * s + j, c] = X[:, y, x, c * s * s + i * s + j]
    np.testing.assert_array_equal(Y, want)


@pytest.mark.parametrize("s,C,shape", [(2, 1, (2, 3, 4)), (4, 1, (1, 2, 2)), (3, 2, (1, 1, 3))])
def test_pixel_shuffle_gradients(s, C, shape):
    from nncompress.layers import PixelShuffle
    rng = np.random.default_rng(2)
    layer = PixelShuffle(s)
    layer.build(C * s * s, rng, np.float64)
    check_layer(layer, rng.standard_normal(shape + (C * s * s,)), rng)


@pytest.mark.parametrize("spec", ["conv5:6:relu,conv3:4:relu,conv1:out", "conv3:3:tanh,conv3:2",
                                  "conv5:6:relu,conv3:out,shuffle:4", "conv3:4:relu,conv3:out,shuffle:2"])
def test_tiled_inference_equals_one_pass(spec):
    """Tiles with a halo of the receptive radius give the untiled result
    bit for bit (each pixel keeps its place modulo 48 in the GEMMs)."""
    from nncompress.conv import predict_image
    from nncompress.spec import build_network
    net = build_network(spec, 2, 2 if spec.endswith("conv3:2") else 1, seed=3)
    net.params[...] = np.random.default_rng(5).standard_normal(net.n_params)  # no zero layer hides a misplaced tile
    img = np.random.default_rng(4).random((37, 53, 2), dtype=np.float32)
    whole = predict_image(net, img, tile=10_000)
    for tile in (16, 7, 1):
        np.testing.assert_array_equal(predict_image(net, img, tile=tile), whole)
    # and one pass is the network's own forward on the whole image (whose
    # GEMM blocks lay the pixels out without the alignment: rounding apart)
    np.testing.assert_allclose(whole, net.forward(img[None])[0], rtol=1e-5, atol=1e-5)
    f = 4 if "shuffle:4" in spec else 2 if "shuffle:2" in spec else 1
    assert whole.shape == (37 * f, 53 * f, net.out_size)


def test_tiled_inference_of_convs_in_groups_equals_one_pass():
    """Each group is its own GEMM with the same alignment, so tiles give the
    untiled bits (groups of 6 outputs: the GEMM path; of 2: the direct
    kernels); and the result is the block-diagonal dense network's."""
    from nncompress.conv import predict_image
    from nncompress.spec import build_network
    net = build_network("conv5:12:relu,conv3:12/2:relu,conv3:12/6:relu,conv3:out,shuffle:2", 1, 1, seed=3)
    net.params[...] = np.random.default_rng(5).normal(0, 0.3, net.n_params)
    img = np.random.default_rng(4).random((37, 53, 1), dtype=np.float32)
    whole = predict_image(net, img, tile=10_000)
    for tile in (16, 7, 1):
        np.testing.assert_array_equal(predict_image(net, img, tile=tile), whole)
    dense = build_network("conv5:12:relu,conv3:12:relu,conv3:12:relu,conv3:out,shuffle:2", 1, 1, seed=3)
    for a, b in zip((l for l in dense.layers if l.has_weights), (l for l in net.layers if l.has_weights)):
        a.params["b"][...] = b.params["b"]
        a.params["W"][...] = block_diagonal(b.params["W"], a.kernel, a.in_channels, a.channels, b.groups)
    np.testing.assert_allclose(whole, predict_image(dense, img), rtol=1e-5, atol=1e-5)


def test_tiled_inference_of_a_wide_network_on_a_wide_image():
    """48 channels, an image wider than two slots of the aligned layout,
    tiles whose columns start off the 48-pixel grid."""
    from nncompress.conv import predict_image
    from nncompress.spec import build_network
    net = build_network("conv5:48:relu,conv3:48:relu,conv3:out,shuffle:2", 1, 1, seed=1)
    net.params[...] = np.random.default_rng(2).standard_normal(net.n_params) * 0.2
    img = np.random.default_rng(3).random((23, 157, 1), dtype=np.float32)
    whole = predict_image(net, img, tile=10_000)
    for tile in (17, 50, 64):
        np.testing.assert_array_equal(predict_image(net, img, tile=tile), whole)


def test_one_worker_and_several_give_the_same_bits(monkeypatch):
    """Blocks are the same GEMMs whichever thread runs them."""
    import numba
    from nncompress.conv import predict_image
    from nncompress.spec import build_network
    net = build_network("conv3:32:relu,conv3:32:relu,conv3:out", 1, 1, seed=1)
    net.params[...] = np.random.default_rng(2).standard_normal(net.n_params) * 0.2
    img = np.random.default_rng(3).random((70, 90, 1), dtype=np.float32)
    monkeypatch.setattr(KC, "BLOCK", 480)  # several blocks, so several workers have work
    many = predict_image(net, img)
    n = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = predict_image(net, img)
    finally:
        numba.set_num_threads(n)
    np.testing.assert_array_equal(one, many)


def test_network_gradient_through_a_conv_stack():
    """The layers compose: a whole conv network's parameter gradients match
    central differences (float64), with and without a pixel shuffle, and
    with ReLUs that the convs before them apply (Network.forward fuses them)."""
    from nncompress.network import Network
    from nncompress.spec import network_config, parse_layers
    for spec, f in [("conv3:3:tanh,conv3:2:sigmoid,conv1:out", 1), ("conv3:3:tanh,conv3:out,shuffle:2", 2),
                    ("conv3:6:relu,conv3:5:relu,conv3:out", 1), ("conv5:6:relu,conv3:6:relu,conv3:out,shuffle:2", 2)]:
        _check_network_gradient(Network.from_config(network_config(parse_layers(spec), 1, 1, 0), dtype=np.float64), f)


def _check_network_gradient(net, f):
    from gradcheck import assert_close, numeric_grad
    rng = np.random.default_rng(5)
    X = rng.standard_normal((2, 5, 4, 1))
    T = rng.standard_normal((2, 5 * f, 4 * f, 1))

    def loss():
        return float(np.sum((net.forward(X) - T) ** 2))

    D = net.forward(X) - T
    net.backward(2 * D)
    analytic = net.grads.copy()
    assert_close(analytic, numeric_grad(loss, net.params), what="conv network")
