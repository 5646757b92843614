"""Atomic file replacement: a reader never sees a half-written output."""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import stat
import threading
from pathlib import Path
from typing import BinaryIO, Iterator

# Paths that name an already open file: the shell's redirection, not a file to replace.
_DESCRIPTOR = re.compile(r"/dev/(stdin|stdout|stderr|fd/\d+)|/proc/[^/]+/fd/\d+")
_SYMLINK_HOPS = 40  # as the kernel's limit: a longer chain is a loop


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either its old content or all of ``data``.

    The bytes go to a hidden temporary file (``.dncli-XXXXXXXX.tmp``) in the same directory, which
    is fsynced and then renamed over ``path``; on any exception the temporary file is removed and
    ``path`` is left untouched.  A symbolic link is written through: its target is replaced,
    never the link.  A Ctrl-C during the write is delivered once the file is in place.  A pipe,
    socket, device or open descriptor (``/dev/null``, ``/dev/stdout``, a shell's ``>(...)``) has
    no content to keep and must not be replaced by a file: the data is written straight to it.
    Raises OSError when the directory is not writable or missing.
    """
    if is_stream(path):
        with open(path, "wb") as stream:
            write_all(stream, data)
        return
    target = Path(os.path.realpath(path))
    # A fixed-length name: one built from the target's would not fit beside a name near NAME_MAX.
    temporary = target.with_name(f".dncli-{secrets.token_hex(4)}.tmp")
    with _interrupt_deferred():
        # O_EXCL: never clobber a file of the same name; mode 0o666 lets the umask decide
        # permissions, as for any newly created file (mkstemp would force 0o600).
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:  # name the file asked for, not the temporary one
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        try:
            with open(fd, "wb") as stream:
                with contextlib.suppress(FileNotFoundError):
                    # Replacing must not change the permissions of an existing output.
                    os.fchmod(fd, stat.S_IMODE(os.stat(target).st_mode))
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    # The rename is only durable once the directory entry is on disk; not every filesystem
    # lets a directory be fsynced, and the data itself is already safe.
    with contextlib.suppress(OSError):
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def write_all(stream: BinaryIO, data: bytes) -> None:
    """Write all of ``data``: a buffered write to a pipe returns early when the reader goes away
    mid-write, and only the next write raises BrokenPipeError."""
    view = memoryview(data)
    while view:
        view = view[stream.write(view):]


def is_stream(path: str | Path) -> bool:
    """Whether ``path`` names a pipe, socket, character device or open descriptor (``/dev/stdout``,
    ``/dev/fd/N``, ``/proc/PID/fd/N``, or a link to one) rather than a file to replace."""
    if _names_descriptor(path):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


def _names_descriptor(path: str | Path) -> bool:
    # Link by link: the last link of /dev/stdout leads to whatever stdout is, a regular file too.
    current = os.path.abspath(path)
    for _ in range(_SYMLINK_HOPS):
        if _DESCRIPTOR.fullmatch(current):
            return True
        if not os.path.islink(current):
            return False
        current = os.path.abspath(os.path.join(os.path.dirname(current), os.readlink(current)))
    return False


@contextlib.contextmanager
def _interrupt_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) back until the block ends, then deliver it: an interrupt between
    creating the temporary file and renaming or removing it would leave the file behind."""
    previous = signal.getsignal(signal.SIGINT)
    # Python handles signals in the main thread only, and cannot reinstate a handler it did not set.
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield
        return
    received: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(signal.SIGINT, None)
