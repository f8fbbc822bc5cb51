"""Wall time split by phase (training, rendering, writing, ...): what the end
of ``train`` prints and ``info`` records. A phase entered inside another
pauses the outer one, so the parts add up to the wall time they cover."""

import time
from contextlib import contextmanager


class Phases:
    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.start = clock()
        self.seconds: dict[str, float] = {}
        self._stack: list[list] = []  # [name, time it (re)started]

    @contextmanager
    def __call__(self, name):
        now = self.clock()
        if self._stack:
            self._add(self._stack[-1], now)
        self._stack.append([name, now])
        try:
            yield
        finally:
            now = self.clock()
            self._add(self._stack.pop(), now)
            if self._stack:
                self._stack[-1][1] = now

    def _add(self, entry, now):
        self.seconds[entry[0]] = self.seconds.get(entry[0], 0.0) + now - entry[1]

    @property
    def wall(self):
        return self.clock() - self.start

    def record(self, earlier: dict | None = None) -> dict:
        """{"wall", phase...} in seconds, added to an ``earlier`` record (a
        resumed run's time so far)."""
        out = dict(earlier or {})
        for k, v in [("wall", self.wall), *self.seconds.items()]:
            out[k] = round(out.get(k, 0.0) + v, 3)
        return out
