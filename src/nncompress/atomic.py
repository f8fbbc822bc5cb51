"""Atomic file output: write a temporary file in the target's folder, flush it
to disk, then rename over the target. A crash or kill at any moment leaves
either the old file or the new one, never a partial one."""

import os
import stat
import sys
import tempfile

from .errors import UserError


def _blocking_file(path):
    """The first existing non-folder among ``path``'s parent folders, or None."""
    folder = os.path.dirname(os.path.abspath(path))
    while True:
        if os.path.exists(folder):
            return None if os.path.isdir(folder) else folder if os.path.isabs(path) else os.path.relpath(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _unwritable_folder(path):
    """The first existing folder among ``path``'s parents if this process
    may not create files in it (permissions, a read-only disk), else None."""
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        return None
    try:  # a real file, not os.access: root passes that check where writes still fail (sysfs, some mounts)
        fd, probe = tempfile.mkstemp(prefix=".nncompress-write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
        return None
    except OSError:
        return folder if os.path.isabs(path) else os.path.relpath(folder)


_FD_NAMES = {"/dev/stdout": 1, "/dev/stderr": 2}


def open_descriptor(path):
    """The file descriptor of this process that ``path`` names, else None:
    /dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N, or a file that is
    what standard output or error is redirected to (``>> log``): writing
    there goes through the descriptor, at its place (appending after a
    ``>>``), never by replacing the file behind the shell's back."""
    path = os.fspath(path)
    fd = _FD_NAMES.get(path)
    for prefix in ("/dev/fd/", "/proc/self/fd/"):
        if path.startswith(prefix) and path[len(prefix):].isdigit():
            fd = int(path[len(prefix):])
    try:
        st = os.stat(path)
    except OSError:
        return None
    if fd is None and os.path.isfile(path):
        fd = next((n for n in (1, 2) if _same_file(st, n)), None)
    return fd if fd is not None and _same_file(st, fd) else None


def _same_file(st, fd):
    try:
        other = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (other.st_dev, other.st_ino)


def _special(path):
    """Whether ``path`` exists and is neither a file nor a folder (a pipe,
    a terminal, /dev/null)."""
    return os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path)


def is_stream(path):
    """Whether ``path`` is written as a stream: one of this process's open
    descriptors (``open_descriptor``), or ``_special``."""
    return open_descriptor(path) is not None or _special(path)


def check_file_target(path, option="-o"):
    """Refuse now, before any work, an output file that could not be
    written at the end: ``path`` is a folder, one of its parent folders is
    a file, or the folder it goes in cannot be written to. Missing parent
    folders are fine: ``atomic_write`` makes them."""
    if os.path.isdir(path):
        raise UserError(f"{option} '{path}' is a folder; give a file name")
    if is_stream(path):
        if not os.access(path, os.W_OK):
            raise UserError(f"{option} '{path}' cannot be written: no permission")
        return
    if os.path.islink(path):  # written through: the folder that matters is its target's
        path = os.path.realpath(path)
    blocker = _blocking_file(path)
    if blocker:
        raise UserError(f"{option} '{path}' cannot be written: '{blocker}' is a file, not a folder")
    locked = _unwritable_folder(path)
    if locked:
        raise UserError(f"{option} '{path}' cannot be written: no permission to write in '{locked}'")


def check_folder_target(path, option="-o"):
    """Refuse now an output folder that is a file or lies below one."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{option} '{path}' is a file; give a folder")
    blocker = _blocking_file(os.path.join(path, "x"))
    if blocker:
        raise UserError(f"{option} '{path}' cannot be made: '{blocker}' is a file, not a folder")
    locked = _unwritable_folder(os.path.join(path, "x"))
    if locked:
        raise UserError(f"{option} '{path}' cannot be written: no permission to write in '{locked}'")


def _mode_for(path):
    """The permissions a new ``path`` gets: an existing file's own, else
    what the umask allows of rw-rw-rw-, as ``open`` would give."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode) & 0o777  # not its setuid/setgid/sticky bits
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def atomic_write(path, write):
    """Call ``write(f)`` with a binary file object, then move it to
    ``path``, making its missing parent folders. A link is written
    through (the file it points to is replaced, the link kept); a target
    that is not a regular file (a pipe, /dev/stdout, a device) is written
    to directly, as a stream: it cannot be replaced."""
    path = os.fspath(path)
    fd = open_descriptor(path)
    if fd is not None:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()  # what was printed before comes first
        with open(fd, "wb", closefd=False) as f:
            write(f)
        return
    if _special(path):
        with open(path, "wb") as f:
            write(f)
        return
    path = os.path.realpath(path)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    name = os.path.basename(path)
    short = len(os.fsencode(name)) <= 200  # the temporary name must fit the 255-byte limit too
    fd, tmp = tempfile.mkstemp(prefix=f".{name}." if short else ".nncompress-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except OSError as e:  # a full disk names no file: name the one being written
        _unlink(tmp)
        if not e.filename:
            e.filename = path
        raise
    except BaseException:
        _unlink(tmp)
        raise


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
