"""Convolution kernels. ``im2col`` lays the k x k neighbourhoods out as
rows for a float32 GEMM (cs231n's im2col + GEMM): ``conv_gemm`` and
``weight_grad_gemm`` run it in blocks on worker threads (the forward pass,
the input gradient and the weight gradient); ``conv_direct_narrow``
computes a convolution to a few channels straight from the image (a
network's last layer); ``fold_reflect`` is the reflect pad's adjoint.

Layout: images are NHWC float32, (B, H, W, C), C contiguous. An im2col row
holds the k x k x C neighbourhood of one output pixel in (dy, dx, c) order,
which matches a weight matrix W (k*k*C_in, C_out). Padding is *virtual*:
each side's pad width (0 or k//2) is an argument, and a source index outside
the image is reflected (``mode=REFLECT``, numpy's 'reflect': row -1 reads
row 1) or reads zero (``mode=ZERO``), so no padded copy is made.

Every kernel here has a plain-numpy oracle in ``tests/test_conv.py``.
"""

import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numba
import numpy as np
from numba import njit, prange

from .activations import FM

REFLECT, ZERO = 0, 1


@njit(cache=True, inline="always")
def _src(i, n, mode):
    """Source index of virtual index ``i`` in a dimension of size ``n``, or
    -1 for a zero pad."""
    if 0 <= i < n:
        return i
    if mode == ZERO:
        return -1
    if n == 1:
        return 0
    period = 2 * (n - 1)  # reflect as often as needed, as numpy does
    i = abs(i) % period
    return i if i < n else period - i


@njit(cache=True, nogil=True)
def _im2col_row(xf, cf, b, y, xa, xb, o_row, H, W, C, k, top, left, mode):
    """Output pixels (b, y, xa..xb-1) of im2col, written to rows o_row, ...
    of ``cf`` (flat). One call per row segment: as an inlined per-pixel
    function the same loop ran 1.6x slower (numba's IR inlining), and a
    division per pixel to find (b, y, x) cost more than the copy."""
    kc = k * C
    for x in range(xa, xb):
        x0 = x - left
        o_px = (o_row + x - xa) * k * kc
        for dy in range(k):
            sy = _src(y + dy - top, H, mode)
            rowbase = ((b * H + sy) * W) * C
            o = o_px + dy * kc
            # Copies run over slice views, indexed from 0: LLVM then vectorizes
            # them (an index that might be negative needs numba's wraparound
            # check; a slice assignment checks for overlap): 7x faster, measured.
            if sy >= 0 and x0 >= 0 and x0 + k <= W:  # interior: one contiguous run
                d = cf[o:o + kc]
                s = xf[rowbase + x0 * C:rowbase + x0 * C + kc]
                for j in range(kc):
                    d[j] = s[j]
                continue
            for dx in range(k):
                sx = _src(x0 + dx, W, mode)
                d = cf[o + dx * C:o + dx * C + C]
                if sy < 0 or sx < 0:
                    for c in range(C):
                        d[c] = 0.0
                else:
                    s = xf[rowbase + sx * C:rowbase + sx * C + C]
                    for c in range(C):
                        d[c] = s[c]


@njit(cache=True, nogil=True)
def _im2col_row_range(xf, cf, b, y, xa, xb, o_row, H, W, C, k, top, left, mode, c0, Cg):
    """``_im2col_row`` over input channels c0..c0+Cg-1 only (a grouped
    conv's group): k*k runs of Cg values a pixel. (One function for both,
    and wrappers whose c0, Cg had defaults, measured the whole-channel case
    1.5x slower: W6 38 -> 50 ms. The tap copy below repeats the edge case
    of ``_im2col_row`` on purpose: as a shared inlined helper it ran both
    1.4x slower and this one 5x.)"""
    kc = k * Cg
    for x in range(xa, xb):
        x0 = x - left
        o_px = (o_row + x - xa) * k * kc
        for dy in range(k):
            sy = _src(y + dy - top, H, mode)
            rowbase = ((b * H + sy) * W) * C + c0
            for dx in range(k):
                sx = _src(x0 + dx, W, mode)
                d = cf[o_px + dy * kc + dx * Cg:o_px + dy * kc + dx * Cg + Cg]
                if sy < 0 or sx < 0:
                    for c in range(Cg):
                        d[c] = 0.0
                else:
                    s = xf[rowbase + sx * C:rowbase + sx * C + Cg]
                    for c in range(Cg):
                        d[c] = s[c]


@njit(cache=True, parallel=True)
def im2col(X, k, top, left, Ho, Wo, mode, cols):
    """X (B, H, W, C) -> cols (B*Ho*Wo, k*k*C): row (b, y, x) is the k x k
    neighbourhood whose top-left corner is virtual pixel (y - top, x - left).
    Rows run in parallel over (b, y)."""
    B, H, W, C = X.shape
    xf = X.reshape(-1)
    cf = cols.reshape(-1)
    for by in prange(B * Ho):
        b = by // Ho
        _im2col_row(xf, cf, b, by - b * Ho, 0, Wo, by * Wo, H, W, C, k, top, left, mode)


@njit(cache=True, nogil=True)
def im2col_block(X, k, top, left, Ho, Wo, mode, p0, p1, cols):
    """Output pixels [p0, p1) of ``im2col`` (pixel (b * Ho + y) * Wo + x
    of the batch) into the first rows of ``cols`` (n, k*k*C), the rows
    after p1 - p0 zeroed; on this thread alone and without the GIL (the
    GEMM convolution runs one block per worker)."""
    im2col_block_range(X, k, top, left, Ho, Wo, mode, p0, p1, cols, 0, X.shape[3])


@njit(cache=True, nogil=True)
def im2col_block_range(X, k, top, left, Ho, Wo, mode, p0, p1, cols, c0, Cg):
    """``im2col_block`` over input channels c0..c0+Cg-1 (cols (n, k*k*Cg))."""
    B, H, W, C = X.shape
    xf = X.reshape(-1)
    cf = cols.reshape(-1)
    n = p1 - p0
    p = p0
    while p < p1:  # row by row
        by = p // Wo
        x = p - by * Wo
        b = by // Ho
        xb = min(Wo, x + p1 - p)
        if Cg == C:
            _im2col_row(xf, cf, b, by - b * Ho, x, xb, p - p0, H, W, C, k, top, left, mode)
        else:
            _im2col_row_range(xf, cf, b, by - b * Ho, x, xb, p - p0, H, W, C, k, top, left, mode, c0, Cg)
        p += xb - x
    cf[n * cols.shape[1]:] = 0.0


@njit(cache=True, inline="always")
def _slot(s, nseg, first, x0, Wo, L):
    """Slot s of an aligned layout: (row b * Ho + y, first local column,
    end column, offset in the slot)."""
    by = s // nseg
    j = s - by * nseg + first
    g0 = max(x0, j * L)
    g1 = min(x0 + Wo, (j + 1) * L)
    return by, g0 - x0, g1 - x0, g0 - j * L


@njit(cache=True, nogil=True)
def im2col_slots(X, k, top, left, Ho, Wo, mode, x0, L, s0, s1, cols):
    """The aligned layout of ``im2col`` for tiled inference: each output
    row is cut where its global column (x0 + x) is a multiple of L, and
    each piece fills one slot of L rows of ``cols`` at the offset of its
    global column within the piece (the rest zero). Slots [s0, s1) go to
    cols, slot s0 first; the slots after s1 - s0 are zeroed. So a pixel
    sits at the same row modulo L in a tile as in the whole image."""
    im2col_slots_range(X, k, top, left, Ho, Wo, mode, x0, L, s0, s1, cols, 0, X.shape[3])


@njit(cache=True, nogil=True)
def im2col_slots_range(X, k, top, left, Ho, Wo, mode, x0, L, s0, s1, cols, c0, Cg):
    """``im2col_slots`` over input channels c0..c0+Cg-1 (cols (n, k*k*Cg))."""
    B, H, W, C = X.shape
    xf = X.reshape(-1)
    cf = cols.reshape(-1)
    K = cols.shape[1]
    first = x0 // L
    nseg = (x0 + Wo - 1) // L - first + 1
    for s in range(s0, s1):
        by, a, e, off = _slot(s, nseg, first, x0, Wo, L)
        base = (s - s0) * L
        cf[base * K:(base + off) * K] = 0.0
        b = by // Ho
        if Cg == C:
            _im2col_row(xf, cf, b, by - b * Ho, a, e, base + off, H, W, C, k, top, left, mode)
        else:
            _im2col_row_range(xf, cf, b, by - b * Ho, a, e, base + off, H, W, C, k, top, left, mode, c0, Cg)
        cf[(base + off + e - a) * K:(base + L) * K] = 0.0
    cf[(s1 - s0) * L * K:] = 0.0


@njit(cache=True, nogil=True)
def slots_out(R, bias, Wo, x0, L, s0, s1, Zf, relu=False):
    """The valid rows of a slot block's GEMM result R, plus bias (then
    max(0, .) when ``relu``), into Zf (B*Ho*Wo, O)."""
    first = x0 // L
    nseg = (x0 + Wo - 1) // L - first + 1
    O = Zf.shape[1]
    for s in range(s0, s1):
        by, a, e, off = _slot(s, nseg, first, x0, Wo, L)
        r = (s - s0) * L + off
        for x in range(a, e):
            src = R[r + x - a]  # rows as slices: indices from 0 vectorize
            dst = Zf[by * Wo + x]
            for o in range(O):
                v = src[o] + bias[o]
                dst[o] = max(v, 0.0) if relu else v


@njit(cache=True, nogil=True)
def bias_rows_into(R, bias, relu, Z):
    """Z (n, O), a view with rows apart (a group's columns) <- R + bias,
    then max(0, .) when ``relu``."""
    O = R.shape[1]
    for r in range(R.shape[0]):
        src = R[r]
        dst = Z[r]
        for o in range(O):
            v = src[o] + bias[o]
            dst[o] = max(v, 0.0) if relu else v


@njit(cache=True, nogil=True)
def bias_rows(Z, bias, relu):
    """Z (n, O) += bias, then max(0, .) when ``relu``: one pass over a block
    in cache (two numpy passes cost 2.5x)."""
    O = Z.shape[1]
    zf = Z.reshape(-1)
    for r in range(Z.shape[0]):
        z = zf[r * O:r * O + O]
        for o in range(O):
            v = z[o] + bias[o]
            z[o] = max(v, 0.0) if relu else v


@njit(cache=True, parallel=True)
def fold_reflect(G, top, bottom, left, right, out):
    """Adjoint of reflect padding: G (B, H+top+bottom, W+left+right, C), the
    gradient on the padded grid -> out (B, H, W, C), each pad cell's
    gradient added to the pixel it copied."""
    B, H, W, C = out.shape
    for by in prange(B * H):
        b = by // H
        y = by - b * H
        for x in range(W):
            for c in range(C):
                out[b, y, x, c] = 0.0
        # the padded rows that read row y: itself, and its mirror images
        for py in range(G.shape[1]):
            if _src(py - top, H, REFLECT) != y:
                continue
            for px in range(G.shape[2]):
                sx = _src(px - left, W, REFLECT)
                for c in range(C):
                    out[b, y, sx, c] += G[b, py, px, c]


# ------------------------------------------------------------- direct kernel
# A convolution to a few channels without an im2col buffer: each thread owns
# output rows (a GEMM with one column measured 4x slower).


@njit(cache=True, inline="always")
def _col_table(k, left, Wo, W, mode):
    sx = np.empty((k, Wo), np.int64)
    for dx in range(k):
        for x in range(Wo):
            sx[dx, x] = _src(x + dx - left, W, mode)
    return sx


@njit(cache=True, parallel=True, fastmath=FM)
def conv_direct_narrow(X, Wt, bias, k, top, left, mode, Z):
    """Z (B, Ho, Wo, O) = conv(X (B, H, W, C), Wm) + bias for few output
    channels (a network's last layer), given the weights transposed,
    Wt (O, k*k*C) = Wm.T: each output is a dot
    product over its neighbourhood, whose k*C values per row are contiguous
    in X away from the left and right edges."""
    B, H, W, C = X.shape
    Ho, Wo, O = Z.shape[1], Z.shape[2], Z.shape[3]
    sxt = _col_table(k, left, Wo, W, mode)
    kc = k * C
    xf = X.reshape(-1)
    for by in prange(B * Ho):
        b = by // Ho
        y = by - b * Ho
        rows = np.empty(k, np.int64)  # offset of each source row in xf, or -1
        for dy in range(k):
            sy = _src(y + dy - top, H, mode)
            rows[dy] = -1 if sy < 0 else (b * H + sy) * W * C
        for x in range(Wo):
            x0 = x - left
            inside = x0 >= 0 and x0 + k <= W
            for o in range(O):
                s = bias[o]
                w = Wt[o]
                for dy in range(k):
                    r0 = rows[dy]
                    if r0 < 0:
                        continue
                    if inside:
                        a = xf[r0 + x0 * C:r0 + x0 * C + kc]  # slice views indexed from 0 vectorize
                        q = w[dy * kc:dy * kc + kc]             # (4.4x an offset index, measured)
                        for j in range(kc):
                            s += a[j] * q[j]
                    else:
                        for dx in range(k):
                            sx = sxt[dx, x]
                            if sx < 0:
                                continue
                            a = xf[r0 + sx * C:r0 + sx * C + C]
                            q = w[(dy * k + dx) * C:(dy * k + dx) * C + C]
                            for c in range(C):
                                s += a[c] * q[c]
                Z[b, y, x, o] = s


# ---------------------------------------------- weight gradient, few channels
# dW = im2col(X)^T dZ summed pixel by pixel without the im2col matrix, for a
# layer with few channels in (a network's first) or out (its last): the GEMM
# would stream k*k*C values per pixel for a handful of outputs. Rows of the
# batch are summed in CHUNKS fixed groups (whatever the thread count), then
# the groups in order: the same bits on any number of threads.

CHUNKS = 32


@njit(cache=True, parallel=True, fastmath=FM)
def weight_grad_direct(X, dZ, k, top, left, mode, over_c, parts):
    """parts (CHUNKS, k, ., .) <- per chunk of rows, the sum over its
    pixels of dZ[p, o] * X[p's tap, c], tap row dy by tap row dy: laid out
    (O, k*C) per dy and vectorised over the k*C values when ``over_c`` (few
    outputs), else (k*C, O) over O. Away from the left and right edges a tap
    row's k*C values are one contiguous run of X (one long loop, 2x the
    loop over single taps, measured)."""
    B, H, W, C = X.shape
    Ho, Wo, O = dZ.shape[1], dZ.shape[2], dZ.shape[3]
    sxt = _col_table(k, left, Wo, W, mode)
    kc = k * C
    xa = min(max(0, left), Wo)  # interior output columns: every tap inside the row
    xb = max(xa, min(Wo, W - k + 1 + left))
    n = B * Ho
    nch = parts.shape[0]
    xf = X.reshape(-1)
    for ch in prange(nch):
        acc = parts[ch]
        acc[...] = 0.0
        for by in range(ch * n // nch, (ch + 1) * n // nch):
            b = by // Ho
            y = by - b * Ho
            for dy in range(k):
                sy = _src(y + dy - top, H, mode)
                if sy < 0:
                    continue
                rowbase = (b * H + sy) * W * C
                a = acc[dy]
                for x in range(xa, xb):
                    dz = dZ[b, y, x]
                    seg = xf[rowbase + (x - left) * C:rowbase + (x - left) * C + kc]
                    if over_c:
                        for o in range(O):
                            v = dz[o]
                            row = a[o]
                            for j in range(kc):
                                row[j] += v * seg[j]
                    else:
                        for j in range(kc):
                            v = seg[j]
                            row = a[j]
                            for o in range(O):
                                row[o] += v * dz[o]
                for x in range(Wo):  # the edge columns, tap by tap
                    if xa <= x < xb:
                        continue
                    dz = dZ[b, y, x]
                    for dx in range(k):
                        sx = sxt[dx, x]
                        if sx < 0:
                            continue
                        xs = xf[rowbase + sx * C:rowbase + sx * C + C]
                        if over_c:
                            for o in range(O):
                                v = dz[o]
                                row = a[o]
                                for c in range(C):
                                    row[dx * C + c] += v * xs[c]
                        else:
                            for c in range(C):
                                v = xs[c]
                                row = a[dx * C + c]
                                for o in range(O):
                                    row[o] += v * dz[o]


def weight_grad(X, dZ, k, top, left, mode, dW, few=4):
    """dW (k*k*C, O) = im2col(X)^T dZ: summed directly when C or O is at
    most ``few`` (the GEMM's im2col would dominate), else by GEMM blocks."""
    B, H, W, C = X.shape
    O = dZ.shape[3]
    if min(C, O) > few:
        return weight_grad_gemm(X, dZ, k, top, left, mode, dW)
    nch = max(1, min(CHUNKS, dZ.shape[0] * dZ.shape[1]))
    over_c = O <= C
    parts = np.empty((nch, k) + ((O, k * C) if over_c else (k * C, O)), X.dtype)
    weight_grad_direct(X, dZ, k, top, left, mode, over_c, parts)
    total = parts[0].copy()
    for p in parts[1:]:
        total += p
    dW[...] = (total.transpose(0, 2, 1) if over_c else total).reshape(k * k * C, O)


# ------------------------------------------------------- im2col + GEMM, in blocks
# A convolution as im2col + GEMM, block by block: each block of BLOCK
# output pixels is laid out (im2col_block, in cache) and multiplied (float32
# BLAS on one thread) by one worker, as many blocks at a time as numba has
# threads. On 2 cores a 3x3 32 -> 32 conv of a 512x512 image takes 38 ms
# this way against 82 for the direct numba kernel it replaced (numba kept
# that kernel's accumulators in memory, not registers). Every block is a GEMM of the same
# shape (the last one padded with zero rows). BLAS computes a row's dot
# products in an order that depends on the row's place in the matrix (on
# this CPU, its place modulo 12; and a tail of rows differs again), so tiled
# inference uses an aligned layout (im2col_slots): every pixel keeps the
# place modulo ALIGN of its global column, and a tile gives the same bits
# as the whole image (tests/test_conv.py).

BLOCK = 4096  # output pixels per block: its im2col rows stay in cache (4.7 MB at 3x3x32)
ALIGN = 48    # slot length of the aligned layout: a multiple of every GEMM kernel's unroll (this CPU's: 12)

_pool = {"n": 0, "ex": None, "bufs": None}


def _workers():
    n = max(1, numba.get_num_threads())  # NUMBA_NUM_THREADS holds for these workers too
    if _pool["n"] != n:
        if _pool["ex"] is not None:
            _pool["ex"].shutdown()
        # n - 1 helpers: the calling thread takes blocks too (``_run``)
        _pool.update(n=n, ex=ThreadPoolExecutor(n - 1) if n > 1 else None, bufs=threading.local())
    return _pool["ex"], _pool["bufs"]


def _buffer(bufs, name, shape, dtype):
    """A per-thread scratch array, reused (no fresh pages for every block)."""
    buf = getattr(bufs, name, None)
    n = shape[0] * shape[1]
    if buf is None or buf.size < n or buf.dtype != dtype:
        buf = np.empty(n, dtype)
        setattr(bufs, name, buf)
    return buf[:n].reshape(shape)


def _per_block(n):
    """Pixels per block for ``n``: an even number of blocks of at most
    BLOCK (rounded up to ALIGN rows), so two workers share them evenly. The
    split depends on ``n`` alone, never on the thread count (the weight
    gradient's blocks are summed in order: the same bits on any)."""
    nb = -(-n // BLOCK)
    nb += nb % 2
    per = -(-n // nb)
    return -(-per // ALIGN) * ALIGN


def _run(ex, fn, n, per=None):
    """[fn(block) for each block of ``n`` pixels], in block order. The
    calling thread takes blocks too, each thread the next one not yet taken:
    with the caller asleep while the workers ran, a conv pass took ~1.7x
    one thread's time on 2 cores instead of ~2x less. An exception (or
    Ctrl-C in the caller) stops every thread taking blocks; it is raised
    once all have stopped, so no block is still writing."""
    per = per or _per_block(n)
    blocks = [(p, min(n, p + per)) for p in range(0, n, per)]
    if ex is None:
        return [fn(b) for b in blocks]
    err = np.geterr()  # numpy's floating-point error settings are per thread: the caller's hold in the workers
    out = [None] * len(blocks)
    order = iter(range(len(blocks)))
    lock = threading.Lock()
    stop = []

    def take():
        with np.errstate(**err):
            while not stop:
                with lock:
                    i = next(order, None)
                if i is None:
                    return
                try:
                    out[i] = fn(blocks[i])
                except BaseException:
                    stop.append(True)
                    raise

    helpers = [ex.submit(take) for _ in range(min(_pool["n"], len(blocks)) - 1)]
    try:
        take()
    except BaseException:
        stop.append(True)
        wait(helpers)
        raise
    wait(helpers)
    for h in helpers:  # the first helper's error, once all have stopped
        h.result()
    return out


def conv_gemm(X, Wm, bias, k, top, left, mode, Z, x0=None, relu=False, groups=1):
    """Z (B, Ho, Wo, O) = conv(X (B, H, W, C), Wm (k*k*C, O)) + bias, the
    result of ``im2col`` then a GEMM, by blocks on the worker threads.
    ``x0``, the global column of Z's first column, asks for the aligned
    layout (tiled inference: the same bits in any tile); BLAS must then
    run on one thread, as the workers are the parallelism. ``relu``
    applies max(0, .) while the block is in cache (inference).
    ``groups`` g: Wm is (k*k*C/g, O) and output columns j*O/g.. see only
    input channels j*C/g..; each block does the g im2cols and GEMMs in
    turn, writing its share of Z's columns (no copies of X or Z)."""
    B, Ho, Wo, O = Z.shape
    C = X.shape[3]
    K = Wm.shape[0]
    Zf = Z.reshape(-1, O)
    ex, bufs = _workers()
    og, cg = O // groups, C // groups
    parts = ([(Wm, bias, Zf, 0, C)] if groups == 1 else  # (weights, bias, output columns, first channel, channels)
             [(np.ascontiguousarray(Wm[:, j * og:(j + 1) * og]), bias[j * og:(j + 1) * og],
               Zf[:, j * og:(j + 1) * og], j * cg, cg) for j in range(groups)])
    if x0 is not None:
        nseg = (x0 + Wo - 1) // ALIGN - x0 // ALIGN + 1
        per = BLOCK // ALIGN  # slots per block
        assert per >= 1, "BLOCK must hold at least one slot of ALIGN pixels"

        def slots(r):
            s0, s1 = r
            cols = _buffer(bufs, "cols", (per * ALIGN, K), X.dtype)
            R = _buffer(bufs, "out", (per * ALIGN, og), X.dtype)
            for Wj, bj, Zj, c0, cn in parts:
                im2col_slots_range(X, k, top, left, Ho, Wo, mode, x0, ALIGN, s0, s1, cols, c0, cn)
                np.matmul(cols, Wj, out=R)
                slots_out(R, bj, Wo, x0, ALIGN, s0, s1, Zj, relu)

        _run(ex, slots, B * Ho * nseg, per)
        return

    def block(r):
        p0, p1 = r
        cols = _buffer(bufs, "cols", (p1 - p0, K), X.dtype)
        if groups == 1:
            im2col_block(X, k, top, left, Ho, Wo, mode, p0, p1, cols)
            np.matmul(cols, Wm, out=Zf[p0:p1])
            bias_rows(Zf[p0:p1], bias, relu)
            return
        R = _buffer(bufs, "out", (p1 - p0, og), X.dtype)
        for Wj, bj, Zj, c0, cn in parts:
            im2col_block_range(X, k, top, left, Ho, Wo, mode, p0, p1, cols, c0, cn)
            np.matmul(cols, Wj, out=R)
            bias_rows_into(R, bj, relu, Zj[p0:p1])

    _run(ex, block, B * Ho * Wo)


def weight_grad_gemm(X, dZ, k, top, left, mode, dW):
    """dW (k*k*C, O) = im2col(X)^T dZ (B*Ho*Wo, O), the blocks' products
    summed in block order (the same bits for any thread count)."""
    B, Ho, Wo, O = dZ.shape
    dZf = dZ.reshape(-1, O)
    ex, bufs = _workers()

    def block(r):
        p0, p1 = r
        cols = _buffer(bufs, "cols", (p1 - p0, dW.shape[0]), X.dtype)
        im2col_block(X, k, top, left, Ho, Wo, mode, p0, p1, cols)
        return cols.T @ dZf[p0:p1]

    parts = _run(ex, block, B * Ho * Wo)
    dW[...] = parts[0]
    for p in parts[1:]:
        dW += p
