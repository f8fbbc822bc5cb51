"""What ``nncompress upscale`` shows while it works: on a terminal, two live
bars (files done of the total with the ETA; the current file's training or
tiles); otherwise plain lines. At the end a table: file, size in -> size
out, seconds. Failures go to stderr as one line each, even with --quiet.
The library reports through ``batch.run``'s callbacks; rich lives here."""

import os
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

PLAIN_EVERY = 5.0  # seconds between plain progress lines within one file
NARROW = 90  # terminal columns below which the summary leaves out the bytes column
NARROWER = 70  # ... and the pixels column


def human_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _clock(seconds):
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{s}s"


class BatchView:
    def __init__(self, describe_error, out: Console, err: Console, quiet=False, single=False):
        self.describe_error = describe_error  # exception -> (exit code, message)
        self.out, self.err, self.quiet = out, err, quiet
        self.single = single  # one file: no per-file lines or files bar
        self.live = not quiet and out.is_terminal
        self.start = time.perf_counter()
        self.done = 0
        self.name = ""
        self.last_line = 0.0
        self.phase = None
        if self.live:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=out)
            self.files = self.bar.add_task("files", total=None, info="", visible=not single)
            self.step = self.bar.add_task("", total=None, info="")
            self.bar.start()

    def eta(self, n):
        el = time.perf_counter() - self.start
        return f"eta {_clock(el / self.done * (n - self.done))}" if self.done else "eta ?"

    # ------------------------------------------------------ callbacks
    def on_file(self, i, n, job):
        self.name = job.name
        self.phase = None  # ((phase, total), when first heard of, done then): a new file starts its own
        if self.live:
            self.bar.update(self.files, total=n, completed=i, info=self.eta(n))
            self.bar.update(self.step, description=f"  {job.name}", completed=0, total=None, info="")
        elif not self.quiet and not self.single:
            self.out.print(f"[{i + 1}/{n}] {job.name}", highlight=False, markup=False)
            self.last_line = time.perf_counter()

    def on_step(self, phase, done, total, info):
        what = {"train": "training", "upscale": "upscaling"}.get(phase, phase)
        detail = f"loss {info['loss']:.3g}" if "loss" in info else ""
        now = time.perf_counter()
        if self.phase is None or self.phase[0] != (phase, total) or done < self.phase[2]:
            self.phase = ((phase, total), now, done)  # first heard of at ``done``: the rate counts from there
        elif total and self.phase[2] < done < total:  # the phase's own rate so far
            (_, t0, d0) = self.phase
            left = (now - t0) / (done - d0) * (total - done)
            detail = " ".join(p for p in (detail, f"eta {_clock(left)}") if p)
        if self.live:
            self.bar.update(self.step, description=f"  {self.name}: {what}", completed=done, total=total,
                            info=detail)
            return
        if done == 0:  # a phase starting: nothing to report yet
            return
        if not self.quiet and (now - self.last_line >= PLAIN_EVERY or (done == total and phase == "train")):
            self.last_line = now
            unit = {"train": "epoch", "upscale": "tile"}.get(phase, "")
            line = " ".join(p for p in (what, unit, f"{done}/{total}", detail) if p)
            self.out.print(f"  {line}", highlight=False, markup=False)

    def on_done(self, i, n, outcome):
        self.done = i + 1
        if outcome.status == "failed":
            msg = self.message(outcome)
            named = f"'{outcome.job.source}'" in msg  # the message names the file already
            self.err.print(f"failed: {msg}" if named else f"failed: {outcome.job.source}: {msg}", highlight=False,
                           markup=False, soft_wrap=True)
        elif outcome.message and outcome.status != "skipped" and not self.quiet:
            self.err.print(f"note: {outcome.job.source}: {outcome.message}", highlight=False, markup=False,
                           soft_wrap=True)
        if self.live:
            self.bar.update(self.files, completed=i + 1, info=self.eta(n))
        elif not self.quiet and not self.single and outcome.status != "failed":
            what = (f"-> {outcome.job.target}  {outcome.seconds:.1f}s  {self.eta(n)}" if outcome.status == "done"
                    else f"skipped: {outcome.job.target} exists")
            self.out.print(f"  {what}", highlight=False, markup=False)

    def message(self, outcome):
        return self.describe_error(outcome.error)[1] if outcome.error else outcome.message

    def close(self):
        if self.live:
            self.bar.stop()
            self.live = False

    # ------------------------------------------------------ summary
    def summary(self, outcomes, total, interrupted=False):
        """The closing table and count line; returns the number that failed."""
        self.close()
        failed = sum(o.status == "failed" for o in outcomes)
        if self.quiet:
            return failed
        t = Table(show_header=True, header_style="bold")
        # a narrow terminal: the bytes go, then the pixels, so the file names and statuses keep their room
        dropped = {"bytes in -> out"} if self.out.width < NARROW else set()
        if self.out.width < NARROWER:
            dropped.add("pixels in -> out")
        cols = [c for c in (("file", "left"), ("pixels in -> out", "right"), ("bytes in -> out", "right"),
                            ("seconds", "right"), ("status", "left")) if c[0] not in dropped]
        for col, just in cols:
            t.add_column(col, justify=just, no_wrap=col != "file", overflow="fold", min_width=8 if col == "file" else None)
        for o in outcomes:
            cell = {"file": o.job.name,
                    "pixels in -> out": f"{o.size_in[0]}x{o.size_in[1]} -> {o.size_out[0]}x{o.size_out[1]}" if o.size_out else "",
                    "bytes in -> out": f"{human_bytes(o.bytes_in)} -> {human_bytes(o.bytes_out)}" if o.bytes_out else "",
                    "seconds": f"{o.seconds:.1f}" if o.status != "skipped" else "",
                    "status": {"done": "written", "skipped": "skipped (exists)", "failed": "[red]failed[/]"}[o.status]}
            t.add_row(*(cell[c] for c, _ in cols))
        self.out.print(t)
        counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
        left = total - len(outcomes)
        targets = [o.job.target for o in outcomes if o.status == "done" and o.job.target]
        where = ""
        if len(targets) == 1:
            where = f" (to {targets[0]})"
        elif targets:  # the folder that holds them all
            common = os.path.commonpath([os.path.abspath(t) for t in targets])
            where = f" (into {os.path.relpath(common) if not os.path.isabs(targets[0]) else common}{os.sep})"
        line = (f"{counts['done']} written{where}, {counts['skipped']} skipped, {counts['failed']} failed"
                + (f", {left} not finished" if interrupted and left else "")
                + f" in {_clock(time.perf_counter() - self.start)}")
        self.out.print(line, highlight=False)
        return failed
