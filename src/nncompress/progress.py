"""Progress for the CLI: a rich live bar on a terminal, plain lines every few
seconds otherwise (logs, CI, pipes), nothing with --quiet."""

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class EpochProgress:
    def __init__(self, description, total, quiet=False, console=None, every=3.0):
        self.console = console or Console(stderr=False)
        self.quiet, self.total, self.every = quiet, total, every
        self.start = self.last = time.perf_counter()
        self.live = not quiet and self.console.is_terminal
        if self.live:
            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("eta"),
                                TimeRemainingColumn(), console=self.console, transient=False)
            self.task = self.bar.add_task(description, total=total, stats="")
            self.bar.start()
        elif not quiet:
            self.console.print(f"{description}: {total} epochs", highlight=False)

    def update(self, done, loss, psnr, seconds, rows):
        rate = rows / max(seconds, 1e-9)
        stats = f"loss {loss:.3g}" + (f"  {psnr:.2f} dB" if psnr is not None else "") + f"  {rate:,.0f} samples/s"
        if self.live:
            self.bar.update(self.task, completed=done, stats=stats)
            return
        now = time.perf_counter()
        if not self.quiet and (now - self.last >= self.every or done == self.total):
            self.last = now
            el = now - self.start
            eta = el / done * (self.total - done) if done else 0
            self.console.print(f"epoch {done}/{self.total}  {stats}  elapsed {el:.0f}s  eta {eta:.0f}s",
                               highlight=False)

    def close(self):
        if self.live:
            self.bar.stop()
