"""``nncompress pretrain``: train a prior on folders of images (see
``prior.py`` for the data). One loop, after nanoGPT's train.py: settings
at the top, an epoch of ``steps`` minibatches, then validation on held-back
images, the prior and its checkpoint written (atomically), a line of
history. Ctrl-C keeps the last whole epoch; ``resume`` goes on exactly.
"""

import csv
import io
import os
import time

import numpy as np

from . import checkpoint as ckpt
from . import internal, prior
from .conv import upsampling
from .atomic import atomic_write
from .errors import SpecError, UserError
from .losses import get_residual_loss
from .modelfile import fits_half
from .optimizers import get_optimizer


def defaults(scale):
    """The settings the built-in priors were trained with (README
    "Pretrain"): an ESPCN-style network in low-resolution space, conv5 and
    conv3 layers with ReLU, then shuffle:S; at x2 thirteen conv3 layers of
    64 channels and 16 crops of 64x64 (the shipped x2 was grown to this from
    four layers in four runs with --init), above four of 48 channels and
    32 crops of 24S x 24S."""
    width, depth, crop, batch = (64, 13, 64, 16) if scale <= 2 else (48, 4, 24 * scale, 32)
    conv = f"conv3:{width}:relu,"
    return {
        "layers": f"conv5:{width}:relu," + conv * depth + f"conv3:out,shuffle:{scale}",
        "epochs": 50,       # of `steps` minibatches each
        "steps": 400,
        "batch_size": batch,
        "crop": crop,       # side of the high-resolution crops
        "lr": 0.001,
        "loss": "mse",      # of the residual
        "seed": 0,
    }


def history_path(out):
    return os.path.splitext(out)[0] + ".history.csv"


def pretrain(folders, scale, out, resume=None, on_epoch=None, warn=None, command="", on_start=None, on_progress=None,
             **overrides):
    """Train (or go on training, ``resume``: a prior file) a prior for
    ``scale`` on the images under ``folders``; writes ``out``, its
    checkpoint sidecar and ``<out>.history.csv`` after every epoch.
    ``on_start(facts)`` hears how many images it finds to train on
    ("train"), holds back ("val"), leaves out as smaller than a crop with
    its margins ("small", "side") or unreadable ("bad") and, resuming, found
    before ("before");
    ``on_epoch(record)`` gets each epoch's history record;
    ``on_progress(what, done, total)`` hears of each step within an epoch."""
    from .spec import build_network
    paths = prior.find_images(folders)
    held = None  # the held-back images a prior this run goes on from recorded: they stay held back
    if resume:
        net, meta = prior.load(resume, scale)
        held = meta.get("val_images")
        if meta.get("averaged"):
            raise UserError(f"'{resume}' is an average of priors ({', '.join(m['file'] for m in meta['averaged'])}), "
                            f"not trained itself: resume those, then average them again")
        cfg = {**meta["settings"], **{k: v for k, v in overrides.items() if v is not None}}
        history = list(meta.get("history", []))
        ck = ckpt.load(ckpt.path_for(resume), net.params) or ckpt.Checkpoint(epoch=len(history))
        if int(meta["scale"]) != int(scale):
            raise UserError(f"'{resume}' is an x{meta['scale']} prior; pass --scale {meta['scale']}")
        if ck.epoch >= cfg["epochs"]:
            raise UserError(f"'{resume}' has trained {ck.epoch} epochs and --epochs is the total ({cfg['epochs']}); "
                            f"pass --epochs N with N > {ck.epoch} to train further")
        before = meta["settings"].get("epochs")
        if ck.epoch and before and cfg["epochs"] != before and warn:
            warn(f"the cosine schedule now spans {cfg['epochs']} epochs (it was {before}), so the learning rate "
                 f"changes at epoch {ck.epoch}")
    else:
        cfg = {**defaults(int(scale)), **{k: v for k, v in overrides.items() if v is not None}}
        if cfg.get("init"):
            start, start_meta = prior.load(cfg["init"], scale)
            other = int(start_meta["scale"]) != int(scale)  # then it gives its body only
            if overrides.get("layers") is None:
                from .spec import network_text
                items = network_text(start).split(",")
                if not other:  # its own network, trained on (the built-in x4's too)
                    cfg["layers"] = ",".join(items)
                elif items[-1].startswith("shuffle:"):  # its body, and a new last conv (its kernel) and shuffle
                    kernel = items[-2].split(":")[0]
                    cfg["layers"] = ",".join(items[:-2] + [f"{kernel}:out", f"shuffle:{int(scale)}"])
        net = build_network(cfg["layers"], 1, 1, cfg["seed"])
        if cfg.get("init"):  # grown from a prior: it starts where that prior ended
            if other and not (upsampling(start) == int(start_meta["scale"]) and upsampling(net) == int(scale)):
                raise UserError(f"--init '{cfg['init']}' is an x{start_meta['scale']} prior: a prior of another scale "
                                f"can start a network only when both end in a shuffle of their own scale "
                                f"(here shuffle:{scale} at the end of --layers)")
            try:
                prior.grow(net, start, new_head=other)
            except SpecError:
                if overrides.get("layers") is not None:
                    raise
                from .spec import network_text
                raise SpecError(f"--init '{cfg['init']}' is the network {network_text(start)}, which x{scale}'s "
                                f"default --layers ({cfg['layers']}) cannot grow from; give --layers that begin "
                                f"with its layers") from None
            held = start_meta.get("val_images")
        else:
            internal.zero_last(net)
        history, ck = [], ckpt.Checkpoint()
    train_paths, val_paths = prior.split(paths, held, warn, folders, own=bool(resume))
    if not train_paths:
        raise UserError("need at least two images: one to train on and one to hold back")
    val = [im for im in (prior.luma(p, warn) for p in val_paths) if im is not None]
    cfg.setdefault("loss", "mse")  # priors written before --loss
    get_residual_loss(cfg["loss"], SpecError)
    if cfg["crop"] < 2 * scale:
        raise UserError(f"--crop {cfg['crop']} is too small for x{scale}: give at least {2 * scale} "
                        f"(the shrunk crop needs 2 pixels a side)")
    f = upsampling(net)
    if f not in (1, scale):
        raise UserError(f"the network ends in shuffle:{f}, so it upscales by {f}; pass --scale {f}")
    rng = np.random.default_rng(cfg["seed"])
    crop, margin = cfg["crop"] - cfg["crop"] % scale, 2 * scale * scale  # (DatasetSampler's)
    side = crop + 2 * margin
    listed = train_paths
    train_paths, small, bad = prior.usable(train_paths, side, warn)
    if not train_paths:
        least = 2 * scale + 2 * margin  # the smallest crop, 2S, and its margins
        smaller = cfg["crop"] > 2 * scale and bool(prior.usable(listed, least)[0])
        raise UserError(f"no training image is at least {side}x{side} pixels (--crop {cfg['crop']} and a margin of "
                        f"{margin} a side for the bicubic); " + (f"use a smaller --crop (at least {2 * scale})" if
                        smaller else f"at x{scale} an image needs at least {least} pixels a side: give larger "
                        f"images"))
    sampler = prior.DatasetSampler(train_paths, scale, cfg["crop"], rng, warn, lowres=f > 1)
    usable = len(train_paths)  # what it trains on (and records), not what the folders hold
    if on_start:
        # a prior made before round 10 recorded the files listed, small and unreadable ones too
        now = usable if not resume or "train_listed" in meta else len(listed)
        on_start({"train": usable, "now": now, "val": len(val), "side": side, "small": small, "bad": bad,
                  "before": meta.get("train_images") if resume else None})
    opt = get_optimizer("adam", cfg["lr"])
    opt.init_state(net.n_params, net.dtype)
    K, total = cfg["steps"], cfg["epochs"] * cfg["steps"]

    def step_epoch(e):
        sampler.refresh()
        tick = (lambda done, steps: on_progress(f"epoch {e + 1}/{cfg['epochs']}", done, steps)) if on_progress else None
        return internal.train_epoch(net, sampler, e, K, cfg["batch_size"], cfg["lr"], total, opt, cfg["loss"], tick)

    def after_epoch(e, loss, dt):
        rec = {"epoch": e + 1, "loss": loss, "val_gain_db": prior.validation_gain(net, val, scale),
               "seconds": dt, "crops_per_s": K * cfg["batch_size"] / dt}
        history.append(rec)
        meta = {"kind": "prior", "scale": int(scale), "norm": {"mean": prior.NORM.mean, "spread": prior.NORM.spread},
                "settings": cfg, "epochs": e + 1, "history": history, "command": command,
                "train_images": usable, "train_listed": len(listed),
                "val_images": [prior.held_name(p, folders) for p in val_paths]}
        half = bool(cfg.get("half"))
        if half and not fits_half(net.params):
            from .training import TrainingDiverged
            raise TrainingDiverged(f"a weight reached {float(np.abs(net.params).max()):.3g}, beyond float16's range, "
                                   f"so epoch {e + 1} was not saved; go on with --resume {out} --no-half, or a smaller --lr")
        net.save(out, meta=meta, half=half)
        ckpt.save(ckpt.path_for(out), ck, net.params, half=half)
        _write_history(history_path(out), history)
        if on_epoch:
            on_epoch(rec, cfg["epochs"])

    from .training import run_epochs
    t0 = time.perf_counter()
    run_epochs(net, opt, rng, step_epoch, epochs=cfg["epochs"], checkpoint=ck, callback=after_epoch, lr=cfg["lr"])
    return {"epochs": cfg["epochs"], "seconds": time.perf_counter() - t0, "history": history, "out": out}


def average_priors(folders, scale, out, parts, warn=None, command="", half=False):
    """Write ``out``: one prior whose output is the mean of the priors
    ``parts`` (``prior.average``), with its validation gain on the held-back
    images of ``folders`` (the same ones training holds back). Nothing is
    trained; each part's meta is kept under "averaged"."""
    nets, metas, held = [], [], None
    for path in parts:
        net, meta = prior.load(path, scale)
        held = meta.get("val_images") if held is None else held  # the first part's (the parts' own, if they agree)
        if int(meta["scale"]) != int(scale):
            raise UserError(f"'{path}' is an x{meta['scale']} prior; average priors of one scale (--scale {meta['scale']})")
        nets.append(net)
        metas.append({"file": os.path.basename(path), **{k: meta.get(k) for k in
                                                          ("settings", "epochs", "history", "command", "train_images",
                                                           "val_images")}})
    recorded = {tuple(sorted(m["val_images"])) for m in metas if m.get("val_images")}
    if len(recorded) > 1 and warn:
        warn("the priors held back different images; the mean is validated on the first one's, which the others "
             "may have trained on")
    val_paths = prior.split(prior.find_images(folders), held, warn, folders, own=False)[1]
    val = [im for im in (prior.luma(p, warn) for p in val_paths) if im is not None]
    t0 = time.perf_counter()
    net = prior.average(nets)
    gain = prior.validation_gain(net, val, scale)
    rec = {"epoch": 0, "loss": float("nan"), "val_gain_db": gain, "seconds": time.perf_counter() - t0,
           "crops_per_s": float("nan")}
    from .spec import network_text
    meta = {"kind": "prior", "scale": int(scale), "norm": {"mean": prior.NORM.mean, "spread": prior.NORM.spread},
            "settings": {"layers": network_text(net), "average": [m["file"] for m in metas]}, "epochs": 0,
            "history": [rec], "command": command, "train_images": max(m["train_images"] or 0 for m in metas),
            "val_images": [prior.held_name(p, folders) for p in val_paths], "averaged": metas}
    if half and not fits_half(net.params):
        raise UserError("a weight is beyond float16's range; write the average without --half")
    net.save(out, meta=meta, half=bool(half))
    _write_history(history_path(out), [rec])
    return {"val_gain_db": gain, "parts": [(m["file"], (m["history"] or [{}])[-1].get("val_gain_db")) for m in metas],
            "out": out}


def _write_history(path, rows):
    def write(f):
        text = io.StringIO()
        w = csv.DictWriter(text, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        f.write(text.getvalue().encode())
    atomic_write(path, write)
