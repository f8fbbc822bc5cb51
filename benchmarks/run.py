"""nncompress against PyTorch (CPU, 2 threads), plain numpy and the machine's
GEMM rate, side by side in one run (these machines are noisy: compare
ratios measured together, not numbers from different runs).

    pip install ".[bench]"          # torch==2.13.0, CPU build
    python benchmarks/run.py        # all workloads, 3 repeats, ~15 min
    python benchmarks/run.py --only W1,W2 --repeat 5
    python benchmarks/run.py --only W6,W7      # the convolutional network (conv_bench.py)
    python benchmarks/run.py --only W6,W7 --rounds 5   # their time ratio to PyTorch, 5 alternating rounds

Prints a table and writes benchmarks/results.json.
"""

import argparse
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, HERE)

from nncompress import threads  # noqa: E402

threads.configure()  # the command line's threads (before numba loads); PyTorch's processes get the user's

from nncompress import Network, fit  # noqa: E402
from nncompress.coords import render  # noqa: E402
from nncompress.imaging import write_png  # noqa: E402
from nncompress.spec import network_config, parse_layers  # noqa: E402

# PyTorch runs in processes of its own (``--side torch`` for W1-W3,
# conv_bench.torch_alone for W6-W8), with the user's OpenMP settings:
# nncompress's command line sets passive OpenMP waits (threads.py), and
# beside nncompress's threads PyTorch's times jump.
torch = None
HAVE_TORCH = importlib.util.find_spec("torch") is not None

W1_LAYERS = "20:leaky_relu,20:leaky_relu,1:sigmoid"
W2_LAYERS = "256:sine(30),256:sine(30),256:sine(30),3"


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def gemm_rate(repeat):
    A = np.random.default_rng(0).random((65536, 256), dtype=np.float32)
    W = np.random.default_rng(1).random((256, 256), dtype=np.float32)
    out = np.empty((65536, 256), np.float32)
    np.matmul(A, W, out=out)
    t = median_time(lambda: np.matmul(A, W, out=out), max(repeat, 5))
    return 2 * 65536 * 256 * 256 / t


# ------------------------------------------------------------------ W1

def w1_data():
    path = os.path.join(SHARED, "seed", "digit_3.png")
    a = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255
    a = a[::4, ::4][2:-2, 2:-2]  # the original's 109x109 digit
    h, w = a.shape
    ys, xs = np.mgrid[0:h, 0:w]
    X = np.stack([(ys + 0.5) / h * 2 - 1, (xs + 0.5) / w * 2 - 1], -1).reshape(-1, 2).astype(np.float32)
    return X, a.reshape(-1, 1)


def w1(repeat, steps, side="ours"):
    X, Y = w1_data()
    N, B = len(X), 16
    epochs = math.ceil(steps / math.ceil(N / B))
    n_steps = epochs * math.ceil(N / B)
    perms = [np.random.default_rng(e).permutation(N) for e in range(epochs)]
    res = {"rows": N, "epochs": epochs, "steps": n_steps}
    init = Network.from_config(network_config(parse_layers(W1_LAYERS), 2, 1, seed=0))
    if side == "torch":
        return _w1_torch(res, init, X, Y, perms, epochs, N, B, repeat)

    def ours():
        net = Network.from_config(network_config(parse_layers(W1_LAYERS), 2, 1, seed=0))
        h = fit(net, X, Y, epochs=epochs, batch_size=B, lr=0.05, optimizer="sgd", rng=_Perms(perms))
        return net, h.loss[-1]

    fit(Network.from_config(network_config(parse_layers(W1_LAYERS), 2, 1)), X, Y, epochs=1, batch_size=B)  # compile
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        net, loss = ours()
        t.append(time.perf_counter() - t0)
    res["nncompress"] = {"samples_per_s": epochs * N / statistics.median(t), "final_loss": float(loss)}

    def numpy_run():
        Ws = [l.params["W"].copy() for l in init.layers if "W" in l.params]
        bs = [l.params["b"].copy() for l in init.layers if "W" in l.params]
        total = 0.0
        for e in range(epochs):
            total = 0.0
            for s in range(0, N, B):
                idx = perms[e][s:s + B]
                x, y = X[idx], Y[idx]
                z1 = x @ Ws[0] + bs[0]; a1 = np.where(z1 > 0, z1, 0.01 * z1)
                z2 = a1 @ Ws[1] + bs[1]; a2 = np.where(z2 > 0, z2, 0.01 * z2)
                z3 = a2 @ Ws[2] + bs[2]; p = 1 / (1 + np.exp(-z3))
                err = p - y
                total += float(np.sum(err * err))
                d3 = 2 * err / err.size * p * (1 - p)
                d2 = (d3 @ Ws[2].T) * np.where(z2 > 0, 1, 0.01)
                d1 = (d2 @ Ws[1].T) * np.where(z1 > 0, 1, 0.01)
                for W_, b_, a_, d_ in ((Ws[2], bs[2], a2, d3), (Ws[1], bs[1], a1, d2), (Ws[0], bs[0], x, d1)):
                    W_ -= 0.05 * (a_.T @ d_)
                    b_ -= 0.05 * d_.sum(0)
        return total / N

    t0 = time.perf_counter()
    loss = numpy_run()
    res["numpy"] = {"samples_per_s": epochs * N / (time.perf_counter() - t0), "final_loss": loss}
    return res


def _w1_torch(res, init, X, Y, perms, epochs, N, B, repeat):
    def torch_run():
        model = _torch_mlp(init, [torch.nn.LeakyReLU(0.01), torch.nn.LeakyReLU(0.01), torch.nn.Sigmoid()])
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
        total = 0.0
        for e in range(epochs):
            total = 0.0
            pt = torch.from_numpy(perms[e])
            for s in range(0, N, B):
                idx = pt[s:s + B]
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(Xt[idx]), Yt[idx])
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
        return total / N
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        loss = torch_run()
        t.append(time.perf_counter() - t0)
    res["torch"] = {"samples_per_s": epochs * N / statistics.median(t), "final_loss": loss}
    return res


class _Perms:
    """A stand-in Generator that replays fixed epoch orders, so every
    implementation sees the same minibatches."""

    def __init__(self, perms):
        self.perms, self.i = perms, 0
        self.bit_generator = self  # the epoch loop's checkpoint saves and restores rng.bit_generator.state

    @property
    def state(self):
        return {"i": self.i}

    @state.setter
    def state(self, value):
        self.i = value["i"]

    def permutation(self, n):
        p = self.perms[self.i]
        self.i += 1
        return p


def _torch_mlp(net, acts):
    layers = []
    for layer, act in zip([l for l in net.layers if "W" in l.params], acts):
        lin = torch.nn.Linear(*layer.params["W"].shape)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(layer.params["W"].T.copy()))
            lin.bias.copy_(torch.from_numpy(layer.params["b"].copy()))
        layers += [lin] + ([act] if act is not None else [])
    return torch.nn.Sequential(*layers)


def _sine(w0):
    class Sine(torch.nn.Module):
        def forward(self, x):
            return torch.sin(w0 * x)
    return Sine()


# ------------------------------------------------------------------ W2, W3

def w2_data():
    img = Image.open(os.path.join(SHARED, "images", "astronaut.png")).convert("RGB").resize((256, 256), Image.LANCZOS)
    Y = (np.asarray(img, np.float32) / 255).reshape(-1, 3)
    ys, xs = np.mgrid[0:256, 0:256]
    X = np.stack([(ys + 0.5) / 256 * 2 - 1, (xs + 0.5) / 256 * 2 - 1], -1).reshape(-1, 2).astype(np.float32)
    return X, Y


def w2_flops(n):
    fwd = 2 * n * (2 * 256 + 256 * 256 * 2 + 256 * 3)
    return fwd + 2 * fwd - 2 * n * 2 * 256  # backward: dW for all, dX for all but the first layer


def w2(repeat, gemm, side="ours"):
    X, Y = w2_data()
    flops = w2_flops(len(X))
    res = {"rows": len(X), "gflop_per_step": flops / 1e9}
    init = Network.from_config(network_config(parse_layers(W2_LAYERS), 2, 3, seed=0))
    if side == "torch":
        model = _torch_mlp(init, [_sine(30.0), _sine(30.0), _sine(30.0), None])
        opt_t = torch.optim.Adam(model.parameters(), lr=1e-4)
        Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

        def torch_step():
            opt_t.zero_grad()
            loss = torch.nn.functional.mse_loss(model(Xt), Yt)
            loss.backward()
            opt_t.step()
        torch_step()
        t = median_time(torch_step, repeat)
        res["torch"] = {"ms_per_step": t * 1e3, "gemm_share": flops / t / gemm}
        return res, None, model
    net = Network.from_config(network_config(parse_layers(W2_LAYERS), 2, 3, seed=0))
    from nncompress.optimizers import Adam
    opt = Adam(1e-4)
    fit(net, X, Y, epochs=1, batch_size=0, optimizer=opt, lr=1e-4)  # compile
    t = median_time(lambda: fit(net, X, Y, epochs=1, batch_size=0, optimizer=opt, lr=1e-4), repeat)
    res["nncompress"] = {"ms_per_step": t * 1e3, "gemm_share": flops / t / gemm}

    Ws = [l.params["W"].copy() for l in init.layers if "W" in l.params]
    bs = [l.params["b"].copy() for l in init.layers if "W" in l.params]

    def numpy_step():
        a, zs, As = X, [], [X]
        for i, (W_, b_) in enumerate(zip(Ws, bs)):
            z = a @ W_ + b_
            zs.append(z)
            a = np.sin(30 * z) if i < 3 else z
            As.append(a)
        d = 2 * (a - Y) / a.size
        for i in range(3, -1, -1):
            gW, gb = As[i].T @ d, d.sum(0)
            if i > 0:
                d = (d @ Ws[i].T) * 30 * np.cos(30 * zs[i - 1])
            Ws[i] -= 1e-4 * np.sign(gW)  # Adam's first step size; the cost is what counts
            bs[i] -= 1e-4 * np.sign(gb)
    numpy_step()
    t = median_time(numpy_step, repeat)
    res["numpy"] = {"ms_per_step": t * 1e3, "gemm_share": flops / t / gemm}
    return res, net, None


def w3(repeat, net, model, size=1024):
    """nncompress and numpy render ``net``; given a PyTorch ``model``
    (``--side torch``), PyTorch renders it instead."""
    res = {"pixels": size * size}
    out = os.path.join(tempfile.mkdtemp(), "w3.png")
    if model is not None:
        return _w3_torch(res, model, size, out, repeat)

    def ours():
        write_png(out, render(net.predict, size, size, 3, bits=8))
    ours()
    res["nncompress"] = {"pixels_per_s": size * size / median_time(ours, repeat)}

    def numpy_run():
        ys, xs = np.mgrid[0:size, 0:size]
        Ws = [l.params["W"] for l in net.layers if "W" in l.params]
        bs = [l.params["b"] for l in net.layers if "W" in l.params]
        img = np.empty((size * size, 3), np.float32)
        for s in range(0, size * size, 65536):
            r = np.arange(s, s + 65536)
            a = np.stack([(r // size + 0.5) / size * 2 - 1, (r % size + 0.5) / size * 2 - 1], 1).astype(np.float32)
            for i, (W_, b_) in enumerate(zip(Ws, bs)):
                a = a @ W_ + b_
                if i < 3:
                    a = np.sin(30 * a)
            img[s:s + 65536] = a
        Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(size, size, 3)).save(out)
    res["numpy"] = {"pixels_per_s": size * size / median_time(numpy_run, 1)}
    return res


def _w3_torch(res, model, size, out, repeat):
    def torch_run():
        with torch.inference_mode():
            ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
            grid = torch.stack([(ys + 0.5) / size * 2 - 1, (xs + 0.5) / size * 2 - 1], -1).reshape(-1, 2).float()
            img = torch.cat([model(grid[s:s + 65536]) for s in range(0, size * size, 65536)])
            a = (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8).reshape(size, size, 3).numpy()
        Image.fromarray(a).save(out)
    torch_run()
    res["torch"] = {"pixels_per_s": size * size / median_time(torch_run, repeat)}
    return res


# ------------------------------------------------------------------ W4, W5

def _cli(*args, env=None):
    return [sys.executable, "-m", "nncompress", *map(str, args)]


def w4(repeat):
    env = dict(os.environ, NUMBA_CACHE_DIR=tempfile.mkdtemp(prefix="nbcache"))
    help_t = median_time(lambda: subprocess.run(_cli("--help"), capture_output=True, check=True, env=env), max(repeat, 5))
    digit = os.path.join(ROOT, "samples", "digit_3.png")
    runs, saves = [], []
    for _ in range(2):
        out = tempfile.mkdtemp()
        t0 = time.perf_counter()
        r = subprocess.run(_cli("train", digit, "-e", 3, "--frames", 0, "-q", "-o", out), check=True,
                           env=dict(env, NUMBA_DEBUG_CACHE="1"), capture_output=True, text=True)
        runs.append(time.perf_counter() - t0)
        saves.append(r.stdout.count("data saved"))  # numba prints this for each newly compiled function
    return {"help_s": help_t, "first_train_s": runs[0], "second_train_s": runs[1],
            "compiled_first": saves[0], "compiled_second": saves[1]}


def w5(size=8192):
    from nncompress.compresser import Compresser
    from nncompress.spec import Settings
    tmp = tempfile.mkdtemp()
    img = np.random.default_rng(0).random((256, 256, 3), dtype=np.float32)
    s = Settings(layers=W2_LAYERS, epochs=1, frames=0).validate()
    comp, _ = Compresser.for_image(img, 8, s)
    comp.save(os.path.join(tmp, "model.npz"))
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", probe, *_cli("upscale", os.path.join(tmp, "model.npz"), "--width", size,
                                                              "--height", size, "-q", "-o", os.path.join(tmp, "big.png"))],
                       capture_output=True, text=True, check=True)
    return {"size": size, "peak_rss_mb": int(r.stdout.split()[-1]) / 1024, "seconds": time.perf_counter() - t0}


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="W1,W2,W3,W4,W5,W6,W7,W8")
    ap.add_argument("--w1-steps", type=int, default=100_000)
    ap.add_argument("--w5-size", type=int, default=8192)
    ap.add_argument("--rounds", type=int, default=1,
                    help="W6-W8: this many alternating rounds of nncompress and PyTorch alone (median time ratio)")
    ap.add_argument("--out", default=os.path.join(HERE, "results.json"))
    ap.add_argument("--side", default="ours", choices=["ours", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--gemm", type=float, default=0.0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    only = set(a.only.upper().split(","))
    if a.side == "torch":  # PyTorch's side of W1-W3, in a process of its own: one JSON line
        return print(json.dumps(_torch_side(a, only)))
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                           "torch": _torch_version(), "date": time.strftime("%Y-%m-%d")}}
    gemm = gemm_rate(a.repeat)
    results["gemm_gflops"] = gemm / 1e9
    print(f"float32 GEMM (65536x256 @ 256x256): {gemm / 1e9:.1f} GFLOP/s")
    theirs = _torch_process(a, only & {"W1", "W2", "W3"}, gemm)
    if "W1" in only:
        r = results["W1"] = {**w1(a.repeat, a.w1_steps), **theirs.get("W1", {})}
        _row("W1 train samples/s", r, "samples_per_s", higher=True)
        print("   final loss: " + ", ".join(f"{k} {v['final_loss']:.5f}" for k, v in r.items() if isinstance(v, dict)))
    net = None
    if "W2" in only or "W3" in only:
        r, net, _ = w2(a.repeat, gemm)
        if "W2" in only:
            results["W2"] = r = {**r, **theirs.get("W2", {})}
            _row("W2 ms/step", r, "ms_per_step", higher=False)
            print("   share of GEMM rate: " + ", ".join(f"{k} {v['gemm_share']:.0%}" for k, v in r.items() if isinstance(v, dict)))
    if "W3" in only:
        r = results["W3"] = {**w3(a.repeat, net, None), **theirs.get("W3", {})}
        _row("W3 render pixels/s", r, "pixels_per_s", higher=True)
    if "W4" in only:
        r = results["W4"] = w4(a.repeat)
        print(f"W4 --help {r['help_s']:.2f}s; train with an empty cache {r['first_train_s']:.1f}s "
              f"({r['compiled_first']} compiled), again {r['second_train_s']:.1f}s ({r['compiled_second']} compiled)")
    if "W5" in only:
        r = results["W5"] = w5(a.w5_size)
        print(f"W5 upscale to {r['size']}x{r['size']}: peak RSS {r['peak_rss_mb']:.0f} MB in {r['seconds']:.0f}s")
    for name, fn in (("W6", "w6"), ("W7", "w7"), ("W8", "w8")):
        if name in only:
            import conv_bench
            r = results[name] = getattr(conv_bench, fn)(a.repeat, gemm, median_time)
            if HAVE_TORCH:
                r["torch"] = conv_bench.torch_alone(name, a.repeat, gemm)
            what = {"W6": "training step (16 crops of 48x48)", "W7": "inference at 512x512",
                    "W8": "x4 prior, 256x256 -> 1024x1024"}[name]
            _row(f"{name} conv {what}, ms", r, "ms", higher=False)
            print("   share of GEMM rate: " + ", ".join(f"{k} {v['gemm_share']:.0%}" for k, v in r.items()
                                                         if isinstance(v, dict) and "gemm_share" in v))
            if "max_abs_diff_vs_nncompress" in r.get("torch", {}):
                print(f"   outputs agree to {r['torch']['max_abs_diff_vs_nncompress']:.1e}")
            if HAVE_TORCH and a.rounds > 1:
                r["rounds"] = _rounds(name, a.rounds, a.repeat, gemm, r["nncompress"]["ms"] / r["torch"]["ms"])
    if os.path.exists(a.out):  # keep the workloads not run this time
        with open(a.out) as f:
            results = {**json.load(f), **results}
    with open(a.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {a.out}")


def _torch_version():
    if not HAVE_TORCH:
        return None
    from importlib.metadata import version
    return version("torch")


def _torch_process(a, names, gemm):
    """PyTorch's results for W1-W3, from ``run.py --side torch``."""
    if not (HAVE_TORCH and names):
        return {}
    cmd = [sys.executable, os.path.abspath(__file__), "--side", "torch", "--only", ",".join(sorted(names)),
           "--repeat", str(a.repeat), "--w1-steps", str(a.w1_steps), "--gemm", str(gemm)]
    import conv_bench
    r = subprocess.run(cmd, capture_output=True, text=True, env=conv_bench.torch_env())
    if r.returncode:
        print(f"   (PyTorch's side failed: {(r.stderr.strip().splitlines() or ['?'])[-1]})")
        return {}
    return json.loads(r.stdout.strip().splitlines()[-1])


def _torch_side(a, only):
    global torch
    import torch as _torch
    torch = _torch
    torch.set_num_threads(2)
    out = {}
    if "W1" in only:
        out["W1"] = {"torch": w1(a.repeat, a.w1_steps, side="torch")["torch"]}
    if "W2" in only or "W3" in only:
        r, _, model = w2(a.repeat, a.gemm, side="torch")
        if "W2" in only:
            out["W2"] = {"torch": r["torch"]}
        if "W3" in only:
            out["W3"] = {"torch": w3(a.repeat, None, model)["torch"]}
    return out


def _rounds(name, rounds, repeat, gemm, first):
    """The time ratio of W6, W7 or W8, nncompress over PyTorch alone, measured
    in alternating rounds (one in this process, one in a fresh process):
    the machine's speed drifts between minutes, so a ratio of two runs made
    together is the reliable figure, and its spread shows how far it moves."""
    import conv_bench
    ratios = [first]
    for _ in range(rounds - 1):
        ours = getattr(conv_bench, name.lower())(repeat, gemm, median_time)["nncompress"]["ms"]
        theirs = conv_bench.torch_alone(name, repeat, gemm)
        if "error" in theirs:
            print(f"   (a round's PyTorch process failed: {theirs['error']})")
            continue
        ratios.append(ours / theirs["ms"])
    ratios = [x for x in ratios if math.isfinite(x)]
    if not ratios:
        return {"ratios": [], "median": float("nan")}
    out = {"ratios": ratios, "median": statistics.median(ratios)}
    print(f"   time ratio over {len(ratios)} alternating rounds: median {out['median']:.2f}x "
          f"(from {min(ratios):.2f}x to {max(ratios):.2f}x)")
    return out


def _row(name, r, key, higher):
    ours = r["nncompress"][key]
    parts = [f"nncompress {ours:,.1f}"]
    for other in ("torch", "numpy"):
        if other in r and "error" in r[other]:
            parts.append(f"{other} failed: {r[other]['error']}")
        elif other in r:
            v = r[other][key]
            ratio = ours / v if higher else v / ours
            parts.append(f"{other} {v:,.1f} (" + (f"nncompress {ratio:.2f}x faster" if ratio >= 1 else
                                                  f"{other} {1 / ratio:.2f}x faster") + f"; time ratio {1 / ratio:.2f}x)")
    print(f"{name}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
