"""The hand-run benchmarks are not timed here, but the code that feeds them
the same minibatches as PyTorch and numpy must keep working with the
training loop (its checkpoint saves and restores the generator's state)."""

import importlib.util
import os

import numpy as np

from nncompress import Network, fit
from nncompress.spec import network_config, parse_layers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_module():
    spec = importlib.util.spec_from_file_location("bench_run", os.path.join(ROOT, "benchmarks", "run.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_w1_replays_its_epoch_orders_through_fit():
    run = _run_module()
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (40, 2)).astype(np.float32)
    Y = rng.uniform(0, 1, (40, 1)).astype(np.float32)
    perms = [np.random.default_rng(e).permutation(40) for e in range(3)]
    layers = parse_layers(run.W1_LAYERS)
    losses = []
    for _ in range(2):
        net = Network.from_config(network_config(layers, 2, 1, seed=0))
        replay = run._Perms(perms)
        h = fit(net, X, Y, epochs=3, batch_size=16, lr=0.05, optimizer="sgd", rng=replay)
        assert replay.i == 3  # one fixed order per epoch, each used once
        losses.append(h.loss)
    assert losses[0] == losses[1]


def test_w8_runs_the_builtin_x4_prior_and_torch_matches_it():
    """W8's PyTorch twin of the built-in x4 prior (grouped convs, a pixel
    shuffle, our weight layout turned into PyTorch's) gives the same
    output; checked where torch is installed (it is never a dependency)."""
    import sys
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import conv_bench
    finally:
        sys.path.pop(0)
    median_time = _run_module().median_time
    r = conv_bench.w8(1, 1e11, median_time, size=24)
    assert r["nncompress"]["ms"] > 0
    try:
        import torch
    except ImportError:
        return
    r = conv_bench.w8(1, 1e11, median_time, torch=torch, size=24, ours=False)
    assert r["torch"]["max_abs_diff_vs_nncompress"] < 1e-4
