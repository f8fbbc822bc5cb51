"""W6 and W7: the convolutional network of patch mode (6 conv layers, 3x3,
32 channels, one channel in and out) against PyTorch on the CPU, each with
its FLOP rate as a share of the GEMM rate measured in the same run.

    W6  one training step: a batch of 16 crops of 48x48, forward, backward, Adam
    W7  whole-image inference at 512x512 (tiled, one pass)
    W8  the built-in x4 prior (two parts: convs in 2 groups, a pixel shuffle)
        on a 256x256 input, one pass to 1024x1024
"""

import numpy as np

LAYERS = "conv3:32:relu,conv3:32:relu,conv3:32:relu,conv3:32:relu,conv3:32:relu,conv3:out"
CHANNELS = [1, 32, 32, 32, 32, 32, 1]


def forward_flops_per_pixel():
    return sum(2 * 9 * a * b for a, b in zip(CHANNELS[:-1], CHANNELS[1:]))


def _ours():
    from nncompress.spec import build_network
    return build_network(LAYERS, 1, 1, 0)


def _torch_net(torch, net):
    """The same network and weights in PyTorch (NCHW, reflect padding;
    groups, ReLUs and a last pixel shuffle as in ``net``)."""
    from nncompress.layers import Activation, Conv2D, PixelShuffle
    mods = []
    for l in net.layers[1:]:
        if isinstance(l, Conv2D):
            g = l.groups
            c = torch.nn.Conv2d(l.in_channels, l.channels, l.kernel, padding=l.radius, padding_mode="reflect",
                                groups=g)
            # ours (k*k*C_in/g, C_out), rows (dy, dx, c); PyTorch's (C_out, C_in/g, k, k)
            W = l.params["W"].reshape(l.kernel, l.kernel, l.in_channels // g, l.channels).transpose(3, 2, 0, 1)
            c.weight.data = torch.from_numpy(np.ascontiguousarray(W))
            c.bias.data = torch.from_numpy(l.params["b"].copy())
            mods.append(c)
        elif isinstance(l, Activation):
            assert l.name == "relu"
            mods.append(torch.nn.ReLU())
        elif isinstance(l, PixelShuffle):
            mods.append(torch.nn.PixelShuffle(l.scale))
    return torch.nn.Sequential(*mods)


# Steps run before the timed ones, by both: a training step's first few
# are slower (fresh memory pages for its arrays, threads starting): with 1
# warm-up step W6 measured 48-67 ms for nncompress at --repeat 3, 39-43 at 20.
WARMUP = 5


def w6(repeat, gemm, median_time, torch=None, batch=16, crop=48, ours=True):
    from nncompress.optimizers import get_optimizer
    rng = np.random.default_rng(0)
    X = rng.standard_normal((batch, crop, crop, 1)).astype(np.float32)
    T = rng.standard_normal((batch, crop, crop, 1)).astype(np.float32)
    net = _ours()
    net.layers[1].input_grad = False
    opt = get_optimizer("adam", 1e-4)
    opt.init_state(net.n_params, net.dtype)

    def step():
        D = net.forward(X) - T
        net.backward(D * np.float32(2.0 / D.size))
        opt.step(net.params, net.grads)

    from threadpoolctl import threadpool_limits
    flops = 3 * forward_flops_per_pixel() * batch * crop * crop
    out = {}
    if ours:
        with threadpool_limits(1, user_api="blas"):  # as internal.train runs it
            for _ in range(WARMUP):
                step()
            out["nncompress"] = _rate(median_time(step, repeat), flops, gemm)
    if torch is not None:
        tnet = _torch_net(torch, _ours())
        topt = torch.optim.Adam(tnet.parameters(), 1e-4)
        Xt, Tt = torch.from_numpy(X.transpose(0, 3, 1, 2).copy()), torch.from_numpy(T.transpose(0, 3, 1, 2).copy())

        def tstep():
            topt.zero_grad()
            ((tnet(Xt) - Tt) ** 2).mean().backward()
            topt.step()

        for _ in range(WARMUP):
            tstep()
        out["torch"] = _rate(median_time(tstep, repeat), flops, gemm)
    return out


def w7(repeat, gemm, median_time, torch=None, size=512, ours=True):
    img = np.random.default_rng(1).random((size, size, 1), dtype=np.float32)
    return _inference(_ours(), img, forward_flops_per_pixel() * size * size, repeat, gemm, median_time, torch, ours)


def _inference(net, img, flops, repeat, gemm, median_time, torch, ours):
    """Whole-image inference of ``net`` on ``img`` (H, W, 1), ours and/or
    PyTorch's with the same weights; their outputs compared."""
    from nncompress.conv import predict_image
    out = {}
    if ours:
        predict_image(net, img)
        out["nncompress"] = _rate(median_time(lambda: predict_image(net, img), repeat), flops, gemm)
    if torch is not None:
        tnet = _torch_net(torch, net)
        Xt = torch.from_numpy(img.transpose(2, 0, 1)[None].copy())
        with torch.no_grad():
            ref = tnet(Xt).numpy()[0, 0]
            out["torch"] = _rate(median_time(lambda: tnet(Xt), repeat), flops, gemm)
            # the same outputs (nncompress's kernels run here untimed; PyTorch's process)
            out["torch"]["max_abs_diff_vs_nncompress"] = float(np.abs(ref - predict_image(net, img)[..., 0]).max())
    return out


def w8(repeat, gemm, median_time, torch=None, size=256, ours=True):
    from nncompress import internal, prior
    net, _ = prior.load("builtin", 4)
    img = np.random.default_rng(1).random((size, size, 1), dtype=np.float32)
    flops = internal.pass_flops(net, (size, size), (4 * size, 4 * size), 4)
    return _inference(net, img, flops, repeat, gemm, median_time, torch, ours)


def torch_env():
    """The environment for a PyTorch process: the user's OpenMP settings, not
    those nncompress's command line and this benchmark take (threads.py);
    nncompress imported there (for the networks' weights) stays on numba's
    workqueue and sets nothing."""
    import os
    from nncompress import threads
    env = {k: v for k, v in os.environ.items() if k not in threads.SET}
    env["NUMBA_THREADING_LAYER"] = "workqueue"
    return env


def torch_alone(name, repeat, gemm):
    """PyTorch's side of W6 or W7 in a fresh process, with its own OpenMP
    settings (``torch_env``): beside nncompress in one process its W6 jumped
    between 35 and 68 ms against 48 alone."""
    import json
    import os
    import subprocess
    import sys
    code = (f"import json, torch; torch.set_num_threads(2); import conv_bench, run; "
            f"print(json.dumps(conv_bench.{name.lower()}({repeat}, {gemm}, run.median_time, torch, ours=False)))")
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run([sys.executable, "-c", code], cwd=here, capture_output=True, text=True, env=torch_env())
    if r.returncode:  # keep the rest of the run's results
        return {"ms": float("nan"), "gemm_share": float("nan"), "error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])["torch"]


def _rate(seconds, flops, gemm):
    return {"ms": seconds * 1e3, "gflops": flops / seconds / 1e9, "gemm_share": flops / seconds / gemm}
