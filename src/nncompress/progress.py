"""Progress for the CLI: one live line on a terminal, plain lines every few
seconds otherwise (logs, CI, pipes), nothing with --quiet. The library
reports through callbacks (``on_epoch``, ``on_progress(what, done,
total)``) and never knows about the terminal; this module is where they
meet it.

The live line fits the terminal: fields are dropped or shortened in order of
importance, never the counter or the ETA (``fit_line``). The ETA appears
once it means something (``Eta``)."""

import time

from rich.console import Console
from rich.live import Live
from rich.text import Text

MIN_ETA_SECONDS = 2.0  # no ETA before this much time has passed: the first steps pay compile and warm-up
SHOW_AFTER = 1.0       # a phase gets a live line only once it has taken this long
PLAIN_EVERY = 3.0      # seconds between plain progress lines


def clock_text(seconds):
    """0:07, 2:05, 1:02:05."""
    s = int(round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


class Eta:
    """Seconds left, from the pace since the first report (the first step,
    which pays numba's compile, is left out of the pace); None until at
    least MIN_ETA_SECONDS have passed and two reports have come."""

    def __init__(self, clock=time.perf_counter):
        self.clock, self.begin, self.first = clock, clock(), None

    def update(self, done, total):
        now = self.clock()
        if self.first is None:
            self.first = (now, done)
            return None
        if done >= total:
            return 0.0
        t0, d0 = self.first
        if done <= d0 or now - self.begin < MIN_ETA_SECONDS:
            return None
        return (now - t0) / (done - d0) * max(total - done, 0)


def fit_line(width, counter, eta, name="", fraction=None, fields=(), extras=()):
    """One status line of at most ``width`` characters:
    ``name bar  counter  field...  extra...  eta``. ``counter`` and ``eta``
    always stay; then, while they fit: ``fields`` (most important first), a
    bar of 10 and up to 20 characters of the name, ``extras``; then the name in
    full (else shortened with an ellipsis), and the bar grows to 30 in what
    is left."""
    def line(name, bar, kept):
        left = " ".join(p for p in (name, bar) if p)
        return "  ".join(([left] if left else []) + [counter] + kept + [eta])

    def fits(kept, reserve=0):
        return len(line("", "", kept)) + reserve <= width

    kept = []
    for f in fields:
        if fits(kept + [f]):
            kept.append(f)
    reserve = (12 if fraction is not None and fits(kept, 12) else 0)
    reserve += min(len(name), 20) + 2 if name and fits(kept, reserve + 14) else 0
    for f in extras:
        if fits(kept + [f], reserve):
            kept.append(f)
    bar = ""
    room = width - len(line("", "", kept)) - 2
    if fraction is not None and room >= 10:
        n = max(10, min(30, room - (len(name) + 1 if name else 0)))  # the whole name first, then a longer bar
        full = round(max(0.0, min(1.0, fraction)) * n)
        bar = "━" * full + "╺" * (n > full) + " " * max(0, n - full - 1)
    room = width - len(line("", bar, kept)) - (1 if bar else 2)
    if name and room >= 6:
        name = name if len(name) <= room else name[:room - 1] + "…"
    else:
        name = ""
    return line(name, bar, kept)


class Reporter:
    """Every progress callback of one command, on one console: epochs
    (``epoch``) and other phases (``__call__``, usable as ``on_progress``)."""

    def __init__(self, console=None, quiet=False, clock=time.perf_counter):
        self.console = console or Console()
        self.quiet, self.clock = quiet, clock
        self.tty = not quiet and self.console.is_terminal
        self.live = None
        self.what = None
        self.label = "training"
        self.unit = "rows"  # what an epoch's samples are (the mode's SAMPLES: table rows, crops)

    # ---------------------------------------------------------- output
    def _show(self, line):
        if self.live is None:
            self.live = Live(Text(line, no_wrap=True, overflow="crop"), console=self.console, auto_refresh=False,
                             transient=False)
            self.live.start()
        self.live.update(Text(line, no_wrap=True, overflow="crop"), refresh=True)

    def _commit(self):
        """Leave the current live line on screen and start a fresh one."""
        if self.live is not None:
            self.live.stop()
            self.live = None

    def print(self, line):
        if not self.quiet:
            self._commit()
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def _start(self, what, total):
        self._commit()
        self.what, self.total = what, total
        self.t0 = self.last = self.clock()
        self.eta = Eta(self.clock)
        self.shown = False

    # ---------------------------------------------------------- epochs
    def epochs(self, label, start, total, at_most=False):
        """Epochs ``start`` -> ``total`` of ``label`` begin (``at_most``:
        the run may stop sooner, or train none)."""
        self.label = label
        self._start(("epochs", label), total)
        if not self.quiet and not self.tty:
            more = f" (going on from epoch {start})" if start else ""
            self.print(f"{label}: {'up to ' if at_most else ''}{total} epoch{'s' if total != 1 else ''}{more}")

    def epoch(self, done, total, loss, psnr, seconds, rows):
        if self.quiet:
            return
        if self.what != ("epochs", self.label):  # back from another phase (calibration): no second header
            self._start(("epochs", self.label), total)
        eta = self.eta.update(done, total)
        fields = [f for f in (f"fit {psnr:.2f} dB" if psnr is not None else None, f"loss {loss:.3g}") if f]
        extras = [f"{rows / max(seconds, 1e-9):,.0f} {self.unit}/s", clock_text(self.clock() - self.t0)]
        eta_text = self._eta_text(eta)
        counter = f"epoch {done:>{len(str(total))}}/{total}"
        if self.tty:
            self._show(fit_line(self.console.width - 1, counter, eta_text, self.label, done / total, fields, extras))
        elif self._due(done == total):
            self.console.print("  ".join([counter] + fields + extras + [eta_text]), highlight=False, markup=False,
                               soft_wrap=True)

    # ---------------------------------------------------------- other phases
    def __call__(self, what, done, total):
        """on_progress: ``done`` of ``total`` units of ``what`` (a short
        phrase, e.g. 'rendering 1024x1024'). A phase shows only once it has
        taken SHOW_AFTER seconds (plain output: every PLAIN_EVERY)."""
        if self.quiet:
            return
        if self.what != what:
            self._start(what, total)
        eta = self.eta.update(done, total)
        elapsed = self.clock() - self.t0
        eta_text = self._eta_text(eta)
        counter = f"{done}/{total}"
        if self.tty:
            if elapsed >= SHOW_AFTER or self.shown:
                self.shown = True
                self._show(fit_line(self.console.width - 1, counter, eta_text, what, done / max(total, 1),
                                    extras=[clock_text(elapsed)]))
        elif (elapsed >= PLAIN_EVERY or self.shown) and self._due(done >= total):
            self.shown = True
            end = f"done in {elapsed:.1f}s" if done >= total else eta_text
            self.console.print(f"{what}: {counter}  {end}", highlight=False, markup=False, soft_wrap=True)

    def _eta_text(self, eta):
        """'eta 1:05'; before there is one, '…' on a terminal and plain ASCII when piped."""
        return "eta " + (clock_text(eta) if eta is not None else "…" if self.tty else "?")

    def _due(self, final):
        now = self.clock()
        if final or now - self.last >= PLAIN_EVERY:
            self.last = now
            return True
        return False

    def close(self):
        self._commit()
        self.what = None
