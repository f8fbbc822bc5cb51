import numpy as np
import pytest

from nncompress import Network
from nncompress.layers import Activation, Connected, FourierFeatures, Input
from nncompress.losses import bce, l1, mse

from gradcheck import assert_close, check_layer, numeric_grad

SHAPES = [(1, 1, 1), (5, 3, 4), (7, 2, 9)]


def off_kinks(rng, shape, lo=0.05):
    """Values away from 0, where relu-type activations have a kink."""
    x = rng.uniform(lo, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    return x


@pytest.mark.parametrize("n,i,o", SHAPES)
@pytest.mark.parametrize("init", ["he", "xavier", "siren", "siren_first"])
def test_connected(n, i, o, init):
    rng = np.random.default_rng(1)
    layer = Connected(o, init=init)
    layer.build(i, rng, np.float64)
    layer.params["b"][...] = rng.standard_normal(o)
    check_layer(layer, rng.standard_normal((n, i)), rng)


@pytest.mark.parametrize("name,arg", [("identity", None), ("relu", None), ("leaky_relu", None),
                                      ("leaky_relu", 0.2), ("sigmoid", None), ("tanh", None),
                                      ("sine", 30.0), ("sine", 1.0)])
@pytest.mark.parametrize("shape", [(1, 1), (4, 3), (6, 17)])
def test_activation(name, arg, shape):
    rng = np.random.default_rng(2)
    X = off_kinks(rng, shape) / (30.0 if name == "sine" else 1.0)
    check_layer(Activation(name, arg), X, rng)


@pytest.mark.parametrize("n,i,f", [(1, 1, 1), (5, 2, 4), (3, 3, 8)])
def test_fourier(n, i, f):
    rng = np.random.default_rng(3)
    layer = FourierFeatures(f, sigma=2.0, seed=4)
    layer.build(i, rng, np.float64)
    check_layer(layer, rng.uniform(-1, 1, (n, i)), rng)


@pytest.mark.parametrize("loss", [mse, bce, l1])
@pytest.mark.parametrize("shape", [(1, 1), (5, 3)])
def test_loss(loss, shape):
    rng = np.random.default_rng(5)
    P = rng.uniform(0.1, 0.9, shape)
    T = rng.uniform(0, 1, shape)
    _, g = loss(P, T)
    assert_close(g, numeric_grad(lambda: loss(P, T)[0], P), what=loss.__name__)


def test_network_backward_matches_numeric():
    rng = np.random.default_rng(6)
    net = Network([Input(3), FourierFeatures(4, 1.0), Connected(5), Activation("tanh"),
                   Connected(4), Activation("sine", 2.0), Connected(2), Activation("sigmoid")],
                  dtype=np.float64)
    X, T = rng.uniform(-1, 1, (6, 3)), rng.uniform(0, 1, (6, 2))
    value, dP = mse(net.forward(X), T)
    net.backward(dP)
    analytic = net.grads.copy()
    assert_close(analytic, numeric_grad(lambda: mse(net.forward(X), T)[0], net.params), what="network")


class _WrongLayer(Connected):
    def backward(self, dY):
        dX = super().backward(dY)
        self.grads["W"] *= 1.01  # a 1% error the checker must catch
        return dX


class _WrongInputGradient(Connected):
    def backward(self, dY):
        return super().backward(dY) * 1.01  # dX 1% off: the checker must catch it too


@pytest.mark.parametrize("wrong,said", [(_WrongLayer, "dW mismatch"), (_WrongInputGradient, "dX mismatch")])
def test_checker_catches_a_wrong_gradient(wrong, said):
    rng = np.random.default_rng(7)
    layer = wrong(3)
    layer.build(2, rng, np.float64)
    with pytest.raises(AssertionError, match=said):
        check_layer(layer, rng.standard_normal((4, 2)), rng)


@pytest.mark.parametrize("engine", ["small", "blas", "layers"])
def test_bce_through_the_logits_matches_numeric_in_every_engine(engine):
    """All three training loops take BCE's gradient through the logits
    (dL/dz = (p - t) / n, skipping the sigmoid's slope): checked here
    against central differences of the loss itself, mean(softplus(z) - t z),
    recovered from one plain gradient step (params -= lr * grad)."""
    from nncompress import fit
    rng = np.random.default_rng(8)
    net = Network([Input(3), Connected(5), Activation("tanh"), Connected(2), Activation("sigmoid")], seed=2,
                  dtype=np.float64)
    X, T = rng.uniform(-1, 1, (7, 3)), rng.uniform(0, 1, (7, 2))

    def loss():
        net.forward(X)
        z = net.layers[-1]._X
        return float(np.mean(np.logaddexp(0, z) - T * z))
    numeric = numeric_grad(loss, net.params)
    before, lr = net.params.copy(), 1e-3
    fit(net, X, T, epochs=1, batch_size=0, loss="bce", optimizer="sgd", lr=lr, engine=engine)
    assert_close((before - net.params) / lr, numeric, rtol=1e-6, what=f"bce through the logits ({engine})")

