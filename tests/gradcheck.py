"""Central-difference gradient checking in float64."""

import numpy as np


def numeric_grad(f, x, h=1e-6):
    """d f / d x for scalar f(), perturbing x in place (float64)."""
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return g


def assert_close(analytic, numeric, rtol=1e-5, atol=1e-7, what="gradient"):
    err = np.max(np.abs(analytic - numeric) / (atol + rtol * np.abs(numeric) + rtol * np.abs(analytic)))
    assert err <= 1.0, f"{what} mismatch: max scaled error {err:.3g}\nanalytic={analytic}\nnumeric={numeric}"


def check_layer(layer, X, rng):
    """Check dX and every param gradient of ``layer`` for loss = sum(Y * G)."""
    Y = layer.forward(X)
    G = rng.standard_normal(Y.shape)
    dX = layer.backward(G)
    grads = {k: v.copy() for k, v in layer.grads.items()}

    def f():
        return float(np.sum(layer.forward(X) * G))

    assert_close(dX, numeric_grad(f, X), what=f"{layer!r} dX")
    for k, p in layer.params.items():
        assert_close(grads[k], numeric_grad(f, p), what=f"{layer!r} d{k}")
