"""Atomic file output: write a temporary file in the target's folder, flush it
to disk, then rename over the target. A crash or kill at any moment leaves
either the old file or the new one, never a partial one."""

import os
import tempfile


def atomic_write(path, write):
    """Call ``write(f)`` with a binary file object, then move it to ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
