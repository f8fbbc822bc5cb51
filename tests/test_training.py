import re

import numpy as np
import pytest

from nncompress import Network, TrainingDiverged, fit
from nncompress.layers import Activation, Connected, Input

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
XOR_Y = np.array([[0], [1], [1], [0]], np.float32)


@pytest.mark.parametrize("opt,lr,epochs", [("sgd", 0.5, 3000), ("momentum", 0.1, 1500), ("adam", 0.02, 1500)])
def test_xor(opt, lr, epochs):
    net = Network([Input(2), Connected(8), Activation("tanh"), Connected(1), Activation("sigmoid")], seed=1)
    h = fit(net, XOR_X, XOR_Y, epochs=epochs, batch_size=0, loss="bce", optimizer=opt, lr=lr)
    assert h.loss[-1] < 0.05
    np.testing.assert_array_equal(net.predict(XOR_X) > 0.5, XOR_Y > 0.5)


@pytest.mark.parametrize("opt,lr,batch", [("sgd", 0.05, 8), ("momentum", 0.02, 8), ("adam", 0.003, 16)])
def test_smooth_1d_function(opt, lr, batch):
    x = np.linspace(-1, 1, 256, dtype=np.float32)[:, None]
    y = 0.5 + 0.4 * np.sin(3 * x)
    net = Network([Input(1), Connected(32), Activation("tanh"), Connected(32), Activation("tanh"), Connected(1)], seed=2)
    h = fit(net, x, y, epochs=300, batch_size=batch, optimizer=opt, lr=lr, rng=np.random.default_rng(0))
    assert h.loss[-1] < 2e-4, h.loss[-1]
    assert np.max(np.abs(net.predict(x) - y)) < 0.05


def test_wide_network_learns_through_blas_engine():
    x = np.linspace(-1, 1, 512, dtype=np.float32)[:, None]
    y = np.concatenate([np.sin(4 * x), np.cos(4 * x)], axis=1)
    net = Network([Input(1), Connected(128), Activation("sine", 1.0), Connected(128), Activation("sine", 1.0),
                   Connected(2)], seed=0)
    h = fit(net, x, y, epochs=300, batch_size=0, optimizer="adam", lr=1e-3)
    assert h.loss[-1] < 1e-3 < h.loss[0]


def test_same_seed_same_weights():
    rng = np.random.default_rng(0)
    X, Y = rng.uniform(-1, 1, (200, 2)).astype(np.float32), rng.uniform(0, 1, (200, 1)).astype(np.float32)
    runs = []
    for _ in range(2):
        net = Network([Input(2), Connected(10), Activation("relu"), Connected(1)], seed=5)
        fit(net, X, Y, epochs=5, batch_size=7, lr=0.1, optimizer="adam", rng=np.random.default_rng(11))
        runs.append(net.params.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    other = Network([Input(2), Connected(10), Activation("relu"), Connected(1)], seed=6)
    assert not np.array_equal(other.params, runs[0][: other.n_params])


def test_divergence_restores_last_good_weights():
    X = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]
    net = Network([Input(1), Connected(16), Activation("relu"), Connected(1)], seed=0)
    fit(net, X, 3 * X, epochs=2, lr=0.01)
    with pytest.raises(TrainingDiverged, match="smaller learning rate"):
        fit(net, X, 3 * X, epochs=50, lr=1e12)
    assert np.all(np.isfinite(net.params))
    assert np.isfinite(net.predict(X)).all()


def test_callback_can_stop():
    X = np.zeros((4, 1), np.float32)
    seen = []
    net = Network([Input(1), Connected(1)])
    h = fit(net, X, X, epochs=10, callback=lambda e, loss, dt: seen.append(e) or e == 2)
    assert seen == [0, 1, 2] and len(h.loss) == 3


def test_bce_needs_sigmoid_output():
    net = Network([Input(1), Connected(1)])
    with pytest.raises(ValueError, match="sigmoid"):
        fit(net, np.zeros((2, 1)), np.zeros((2, 1)), epochs=1, loss="bce")


def test_an_optimizer_objects_rate_is_used_and_bad_arguments_say_what_is_wrong():
    """fit(optimizer=Adam(lr=1e-6)) trained at fit's default 0.01 (the loss
    fell from 2.9 to 0.09 in 50 epochs); arguments fit cannot honour failed
    deep inside (KeyError: 'fast') or quietly did nothing."""
    from nncompress.optimizers import Adam
    net = lambda: Network([Input(2), Connected(8), Activation("tanh"), Connected(1), Activation("sigmoid")], seed=1)
    slow, fast = net(), net()
    h_slow = fit(slow, XOR_X, XOR_Y, epochs=50, optimizer=Adam(lr=1e-6))
    h_fast = fit(fast, XOR_X, XOR_Y, epochs=50, optimizer=Adam(lr=1e-6), lr=0.05)  # a given lr wins
    assert abs(h_slow.loss[-1] - h_slow.loss[0]) < 1e-3 < h_fast.loss[0] - h_fast.loss[-1]
    for kw, said in [(dict(engine="fast"), "unknown engine 'fast'"), (dict(epochs=0), "epochs must be"),
                     (dict(lr=-0.1), "lr must be a positive number"), (dict(batch_size=-1), "batch_size must be"),
                     (dict(loss="bce", Y=XOR_Y * 2), "bce targets must lie in [0, 1]"),
                     (dict(X=XOR_X[:0], Y=XOR_Y[:0]), "with N >= 1")]:
        args = dict(X=XOR_X, Y=XOR_Y, epochs=5)
        args.update(kw)
        with pytest.raises(ValueError, match=re.escape(said)):
            fit(net(), args.pop("X"), args.pop("Y"), **args)
