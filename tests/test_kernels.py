"""Numba kernels against plain-numpy oracles."""

import numpy as np
import pytest

from nncompress import Network, fit
from nncompress import kernels as K
from nncompress.layers import Activation, Connected, Input

ORACLE = {
    K.IDENTITY: (lambda z, a: z, lambda z, a: np.ones_like(z)),
    K.RELU: (lambda z, a: np.maximum(z, 0), lambda z, a: (z > 0).astype(z.dtype)),
    K.LEAKY_RELU: (lambda z, a: np.where(z > 0, z, a * z), lambda z, a: np.where(z > 0, 1, a)),
    K.SIGMOID: (lambda z, a: 1 / (1 + np.exp(-z)), lambda z, a: np.exp(-z) / (1 + np.exp(-z)) ** 2),
    K.TANH: (np.tanh and (lambda z, a: np.tanh(z)), lambda z, a: 1 - np.tanh(z) ** 2),
    K.SINE: (lambda z, a: np.sin(a * z), lambda z, a: a * np.cos(a * z)),
}


def test_fast_sin_matches_numpy_over_a_wide_range():
    """Accurate to float32 rounding for |x| <= 2000 (with 'reassoc', which
    undoes the range reduction's split, float32 errors reached 1.1e-4)."""
    x = np.linspace(-2000, 2000, 200001)
    out = np.empty((1, x.size))
    K.activation_forward(K.SINE, 1.0, x[None], out)
    assert np.max(np.abs(out[0] - np.sin(x))) < 3e-8
    x32 = x.astype(np.float32)[None]
    out32 = np.empty_like(x32)
    K.activation_forward(K.SINE, np.float32(1.0), x32, out32)
    assert np.max(np.abs(out32[0] - np.sin(x32[0].astype(np.float64)))) < 3e-7  # of the float32 argument itself
    X = x32[0, ::7, None] / np.float32(2 * np.pi)  # Fourier features: sin and cos of 2 pi X B, up to |2000|
    ff = np.empty((X.shape[0], 2), np.float32)
    K.fourier_features(X, np.ones((1, 1), np.float32), ff)
    arg = (np.float32(2 * np.pi) * X[:, 0]).astype(np.float64)
    assert np.abs(ff[:, 0] - np.sin(arg)).max() < 3e-7 and np.abs(ff[:, 1] - np.cos(arg)).max() < 5e-7


@pytest.mark.parametrize("code", list(ORACLE))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_kernels(code, dtype):
    rng = np.random.default_rng(0)
    a = dtype(0.1 if code == K.LEAKY_RELU else 3.0)
    Z = rng.uniform(-3, 3, (37, 11)).astype(dtype)
    b = rng.uniform(-1, 1, 11).astype(dtype)
    f, df = ORACLE[code]
    tol = 1e-5 if dtype == np.float32 or code == K.SINE else 1e-10  # fast_sin is float32-accurate
    Y = np.empty_like(Z)
    K.activation_forward(code, a, Z, Y)
    np.testing.assert_allclose(Y, f(Z, a), atol=tol * 10)
    dY = rng.standard_normal(Z.shape).astype(dtype)
    dZ = np.empty_like(Z)
    K.activation_backward(code, a, Z, Y, dY, dZ)
    np.testing.assert_allclose(dZ, dY * df(Z, a), atol=tol * 100, rtol=tol * 10)
    Zb, out = Z.copy(), np.empty_like(Z)
    K.bias_activation(Zb, b, code, a, out)
    np.testing.assert_allclose(Zb, Z + b, atol=tol)
    np.testing.assert_allclose(out, f(Z + b, a), atol=tol * 10)
    Zi = Z.copy()
    K.bias_activation_inference(Zi, b, code, a)
    np.testing.assert_allclose(Zi, f(Z + b, a), atol=tol * 10)


@pytest.mark.parametrize("code", list(ORACLE))
def test_parallel_activation_kernels_match_the_serial_ones(code):
    """Arrays of PARALLEL_MIN elements and more take the parallel kernels
    (in place for inference): the same values as the serial ones, row by row."""
    rng = np.random.default_rng(2)
    a = np.float32(0.1 if code == K.LEAKY_RELU else 3.0)
    Z = rng.uniform(-3, 3, (K.PARALLEL_MIN // 256 + 3, 256)).astype(np.float32)
    b = rng.uniform(-1, 1, 256).astype(np.float32)
    small = Z[:5]  # below PARALLEL_MIN: the serial kernels
    Zi, want = Z.copy(), small.copy()
    K.bias_activation_inference(Zi, b, code, a)
    K.bias_activation_inference(want, b, code, a)
    np.testing.assert_array_equal(Zi[:5], want)
    np.testing.assert_allclose(Zi, ORACLE[code][0](Z + b, a), atol=1e-4)
    out, out_small = np.empty_like(Z), np.empty_like(small)
    K.activation_forward(code, a, Z, out)
    K.activation_forward(code, a, small, out_small)
    np.testing.assert_array_equal(out[:5], out_small)


def test_loss_output_grad():
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((9, 3))
    P, T = 1 / (1 + np.exp(-Z)), rng.uniform(0, 1, (9, 3))
    d = np.empty_like(P)
    total = K.loss_output_grad(K.MSE, Z, P, T, 0.5, d)
    np.testing.assert_allclose(total, np.sum((P - T) ** 2))
    np.testing.assert_allclose(d, (P - T))
    total = K.loss_output_grad(K.BCE, Z, P, T, 0.5, d)
    np.testing.assert_allclose(total, np.sum(-(T * np.log(P) + (1 - T) * np.log(1 - P))))
    np.testing.assert_allclose(d, 0.5 * (P - T))


@pytest.mark.parametrize("opt", [K.SGD, K.MOMENTUM, K.ADAM])
def test_optimizer_step(opt):
    rng = np.random.default_rng(2)
    p, g = rng.standard_normal(50), rng.standard_normal(50)
    m, v = rng.standard_normal(50) * 0.1, rng.uniform(0, 0.1, 50)
    lr, b1, b2, eps, t = 0.01, 0.9, 0.999, 1e-8, 3
    P, M, V = p.copy(), m.copy(), v.copy()
    K.optimizer_step(opt, P, g, M, V, lr, b1, b2, eps, t)
    if opt == K.SGD:
        want = p - lr * g
    elif opt == K.MOMENTUM:
        m2 = b1 * m + g
        want = p - lr * m2
        np.testing.assert_allclose(M, m2)
    else:
        m2, v2 = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        want = p - lr * (m2 / (1 - b1 ** t)) / (np.sqrt(v2 / (1 - b2 ** t)) + eps)
    np.testing.assert_allclose(P, want, rtol=1e-12)


def _net(dtype=np.float64, width=6, out="sigmoid"):
    return Network([Input(2), Connected(width), Activation("leaky_relu"), Connected(width), Activation("tanh"),
                    Connected(2), Activation(out)], seed=3, dtype=dtype)


@pytest.mark.parametrize("loss", ["mse", "bce"])
@pytest.mark.parametrize("batch", [0, 5, 9])  # the small kernel takes rows 8 at a time: 2 blocks + 7, 5 single, 1 + 1
@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
def test_engines_agree(loss, batch, opt):
    """The fused small kernel and the BLAS engine equal the layer-by-layer
    numpy path (the oracle) step for step."""
    rng = np.random.default_rng(4)
    X, Y = rng.uniform(-1, 1, (23, 2)), rng.uniform(0, 1, (23, 2))
    results = {}
    for engine in ("layers", "small", "blas"):
        net = _net()
        h = fit(net, X, Y, epochs=3, batch_size=batch, loss=loss, optimizer=opt, lr=0.05,
                rng=np.random.default_rng(9), engine=engine)
        results[engine] = (net.params.copy(), h.loss)
    for engine in ("small", "blas"):
        np.testing.assert_allclose(results[engine][0], results["layers"][0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(results[engine][1], results["layers"][1], rtol=1e-9)


def test_predict_paths_agree():
    rng = np.random.default_rng(5)
    X = rng.uniform(-1, 1, (300, 2)).astype(np.float32)
    for width in (6, 100):  # small kernel, then BLAS
        net = _net(np.float32, width)
        want = net.forward(X)
        np.testing.assert_allclose(net.predict(X, chunk=64), want, atol=1e-5)


def _threads_in_fresh_process(cli=False, **env):
    import os
    import subprocess
    import sys
    code = ("import os; from nncompress import threads; " + ("print(threads.configure()); " if cli else "") +
            "import numpy as np, numba; from nncompress.kernels import conv; "
            "G = np.zeros((1, 6, 6, 2), np.float32); o = np.zeros((1, 4, 4, 2), np.float32); "
            "conv.fold_reflect(G, 1, 1, 1, 1, o); "  # a parallel kernel: numba loads its threading layer
            "print(numba.threading_layer(), os.environ.get('OMP_WAIT_POLICY'))")
    drop = ("NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY", "OMP_WAIT_POLICY")
    base = {k: v for k, v in os.environ.items() if k not in drop}
    r = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True, check=True)
    return r.stdout.split()


def test_threads_workqueue_as_a_library_openmp_with_passive_waits_on_the_command_line():
    """A library import stays on numba's workqueue (fork-safe); the command
    line asks for OpenMP (where installed) with passive waits; a user's
    choice of layer or wait policy is kept."""
    assert _threads_in_fresh_process() == ["workqueue", "None"]
    asked, layer, policy = _threads_in_fresh_process(cli=True)
    assert asked == "omp" and layer in ("omp", "workqueue") and policy == "PASSIVE"
    assert _threads_in_fresh_process(cli=True, OMP_WAIT_POLICY="ACTIVE")[2] == "ACTIVE"
    assert _threads_in_fresh_process(cli=True, NUMBA_THREADING_LAYER="workqueue") == ["None", "workqueue", "None"]
    assert _threads_in_fresh_process(cli=True, NUMBA_THREADING_LAYER_PRIORITY="workqueue omp tbb") == \
        ["None", "workqueue", "None"]
