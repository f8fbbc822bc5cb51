"""Progress that tells the truth: the ETA waits until it means something and
never jumps by orders of magnitude; the live line fits the terminal without
cutting the counter or the ETA; plain output is one whole line per report."""

import pytest
from rich.console import Console

from nncompress.progress import Eta, Reporter, fit_line


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_eta_skips_the_compile_epoch_and_never_jumps():
    clock = Clock()
    eta = Eta(clock)
    shown = []
    for done in range(1, 101):
        clock.t += 9.0 if done == 1 else 0.1  # the first epoch pays numba's compile
        shown.append(eta.update(done, 100))
    assert shown[0] is None  # one epoch tells nothing
    values = [v for v in shown if v is not None]
    assert values and values[-1] == 0.0
    truth = [0.1 * (100 - d) for d in range(1, 101)]
    for d, v in enumerate(shown, start=1):
        if v is not None and d < 100:
            assert 0.5 * truth[d - 1] <= v <= 2 * truth[d - 1] + 0.2, (d, v)
    rises = [b / a for a, b in zip(values, values[1:]) if a > 0]
    assert max(rises) < 2


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_the_line_fits_and_keeps_counter_and_eta(width):
    line = fit_line(width - 1, "epoch  12/150", "eta 0:41", "training a_very_long_photo_name_indeed.png",
                    12 / 150, ["28.77 dB", "loss 0.00133"], ["686,294 rows/s", "0:07"])
    assert len(line) <= width - 1
    assert "epoch  12/150" in line and line.endswith("eta 0:41")
    if width >= 80:
        assert "28.77 dB" in line and "loss 0.00133" in line and "━" in line


def test_plain_output_is_one_whole_line_per_report():
    import io
    buf = io.StringIO()
    console = Console(file=buf, width=40, force_terminal=False)  # narrow: a wrap would show
    clock = Clock()
    r = Reporter(console, clock=clock)
    r.epochs("training some_photo_with_a_long_name.png", 0, 50)
    for done in range(1, 51):
        clock.t += 1.0
        r.epoch(done, 50, 0.0123, 19.1, 1.0, 5000)
    r("rendering 4096x4096", 0, 8)
    for i in range(1, 9):
        clock.t += 1.0
        r("rendering 4096x4096", i, 8)
    r.close()
    lines = buf.getvalue().splitlines()
    assert lines[0] == "training some_photo_with_a_long_name.png: 50 epochs"
    epochs = [l for l in lines if l.startswith("epoch ")]
    assert 10 <= len(epochs) <= 20 and epochs[-1].startswith("epoch 50/50") and epochs[-1].endswith("eta 0:00")
    assert all(l.startswith(("epoch ", "training ", "rendering ")) for l in lines)  # no wrapped pieces
    assert lines[-1].startswith("rendering 4096x4096: 8/8  done in 8.0s")


def test_quiet_reporter_prints_nothing():
    import io
    buf = io.StringIO()
    r = Reporter(Console(file=buf), quiet=True)
    r.epochs("x", 0, 3)
    r.epoch(1, 3, 0.1, 10.0, 0.1, 10)
    r("rendering", 1, 2)
    r.print("hello")
    r.close()
    assert buf.getvalue() == ""
