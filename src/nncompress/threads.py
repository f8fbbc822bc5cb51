"""Which threads run numba's parallel kernels, chosen before numba loads.

Imported as a library, nncompress leaves numba on its own workqueue pool
(``kernels/__init__.py``): safe in a process that forks, as GNU OpenMP kills
a forked child that runs a parallel loop. On 2 cores, though, the workqueue
often ran a parallel loop at one core's speed (its two workers woke on one
core while the caller slept: a 0.5 ms loop took 0.5 to 1.0 ms from call to
call), where OpenMP's team, the caller included, ran it in a steady 0.5.
So the command line, which never forks, calls ``configure`` first: OpenMP
with passive waits where libgomp is installed (its default spinning waits
made a conv training step 3x slower when other processes shared the cores),
else the workqueue. A conv training step measured 7% faster over five
alternating rounds. A user's NUMBA_THREADING_LAYER(_PRIORITY) or
OMP_WAIT_POLICY wins; other OpenMP libraries in the process wait passively
too (the benchmarks time PyTorch in a process of its own).
"""

import os
import sys

SET = []  # the environment variables ``configure`` set (the benchmarks give PyTorch the user's own)


def _libgomp_loaded():
    try:
        with open("/proc/self/maps") as f:
            return "libgomp" in f.read()
    except OSError:
        return False


def configure():
    """Ask numba for OpenMP threads with passive waits. Call before any
    parallel kernel runs, in a process that will not fork; it imports
    nothing heavy (``--help`` stays fast). Returns the layer asked for, or
    None where the user chose one."""
    if "NUMBA_THREADING_LAYER" in os.environ or "NUMBA_THREADING_LAYER_PRIORITY" in os.environ:
        return None
    if "OMP_WAIT_POLICY" not in os.environ:
        if _libgomp_loaded():  # it read its (spinning) policy when it loaded: stay on the workqueue
            return "workqueue"
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        SET.append("OMP_WAIT_POLICY")
    os.environ["NUMBA_THREADING_LAYER_PRIORITY"] = "omp workqueue tbb"  # the first that loads
    os.environ["NUMBA_THREADING_LAYER"] = "default"
    SET.extend(["NUMBA_THREADING_LAYER_PRIORITY", "NUMBA_THREADING_LAYER"])
    if "numba" in sys.modules:  # numba read its settings when imported
        import numba
        numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]
        numba.config.THREADING_LAYER = "default"
    return "omp"
