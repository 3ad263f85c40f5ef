"""Watch folders from outside a step with inotify, and stamp what the step did in them.

The sandbox uses it to learn when a training step first read its data (a watch on the
step's own folder of links to the train shards) and when it wrote its model (a watch on
its output folder), whatever the step did with its own clocks.

Why a folder watch sees the step: inotify reports an event on a file to the watches on
the folder the file was reached through (the parent dentry), and a bind mount (Docker's
mounts, the local backend's view) shares its dentries with the host folder. Another path
to the same inode (the shared shards, another experiment's links, the seal check) is
another parent, so it is not reported here. Measured for real on both backends by
`tests/sandbox/test_sb_budget_watch.py`.

Linux only: ctypes on libc's `inotify_init1` and `inotify_add_watch`. Where that is not
available, `FolderWatch.available` is False with the reason, and callers fall back to a
conservative answer (the step's start).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

IN_ACCESS = 0x00000001
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_OPEN = 0x00000020
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC

READS = IN_OPEN | IN_ACCESS
"""Any use of a file. An open is enough (a step inherits no descriptor to the data);
IN_ACCESS backs it up for open paths that skip the open hook on older kernels."""
WRITES = IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_ATTRIB
"""Anything that makes or changes a file's content or names it."""

_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name


@dataclass(frozen=True)
class Watch:
    label: str
    folder: Path
    mask: int
    first_only: bool = False
    """Stop watching after the first event on a file: the start is all that is wanted,
    and a step reading its data in small chunks would otherwise flood the queue."""


@dataclass
class Seen:
    """What one watch saw, stamped with `time.monotonic()` when the sandbox read it."""

    first_at: float | None = None
    """The first event on a file in the folder (not the folder itself)."""
    last_at: float | None = None
    events: int = 0
    files: dict[str, tuple[float, float]] = field(default_factory=dict)
    """File name -> (first, last) event stamps."""
    late: list[str] = field(default_factory=list)
    """Files with an event read after `FolderWatch.mark_end()`: done after the step ended."""


class FolderWatch:
    """One inotify instance over a few folders, read by a background thread.

    Use: `start()` before the step starts; `mark_end()` once the step's processes are
    dead (every event they caused is queued by then, so it drains the queue first and
    counts only later events as late); `stop()` to end the watch and get the record.
    """

    def __init__(self, watches: list[Watch]) -> None:
        self.watches = watches
        self.seen: dict[str, Seen] = {w.label: Seen() for w in watches}
        self.overflowed = False
        self.available = False
        """True once `start()` set up every watch (and still after `stop()`)."""
        self.why_unavailable = ""
        self._fd = -1
        self._wds: dict[int, Watch] = {}
        self._lock = threading.Lock()
        self._ended = False
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1

    def start(self) -> FolderWatch:
        libc, why = _libc()
        if libc is None:
            self.why_unavailable = why
            return self
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            self.why_unavailable = f"inotify_init1 failed: {os.strerror(ctypes.get_errno())}"
            return self
        for watch in self.watches:
            wd = libc.inotify_add_watch(fd, os.fsencode(watch.folder), watch.mask | IN_ONLYDIR)
            if wd < 0:
                err = ctypes.get_errno()
                os.close(fd)
                self._wds.clear()
                self.why_unavailable = (
                    f"inotify_add_watch({watch.folder}) failed: {os.strerror(err)}"
                )
                return self
            self._wds[wd] = watch
        self._fd = fd
        self._libc = libc
        self.available = True
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._loop, name="labwarden-watch", daemon=True)
        self._thread.start()
        return self

    def mark_end(self) -> None:
        """The step has ended: what is queued now happened during it; later events are late."""
        if self._fd < 0:
            return
        with self._lock:
            self._drain()
            self._ended = True

    def stop(self) -> dict[str, Seen]:
        if self._fd >= 0:
            os.write(self._wake_w, b"x")
            if self._thread is not None:
                self._thread.join(timeout=10)
            with self._lock:
                self._drain()
                os.close(self._fd)
                self._fd = -1
            os.close(self._wake_r)
            os.close(self._wake_w)
        return self.seen

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self._wake_r in ready:
                return
            with self._lock:
                if self._fd < 0:
                    return
                self._drain()

    def _drain(self) -> None:
        """Read every queued event (non-blocking). Caller holds the lock."""
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                return
            if not data:
                return
            self._record(data, time.monotonic())

    def _record(self, data: bytes, at: float) -> None:
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
            offset += _EVENT.size + length
            if mask & IN_Q_OVERFLOW:
                self.overflowed = True
                continue
            watch = self._wds.get(wd)
            if watch is None or mask & IN_IGNORED or mask & IN_ISDIR or not name:
                continue  # the folder itself (a listing reads no data), or a removed watch
            seen = self.seen[watch.label]
            text = os.fsdecode(name)
            seen.events += 1
            seen.first_at = at if seen.first_at is None else seen.first_at
            seen.last_at = at
            first, _ = seen.files.get(text, (at, at))
            seen.files[text] = (first, at)
            if self._ended and text not in seen.late:
                seen.late.append(text)
            if watch.first_only:
                self._libc.inotify_rm_watch(self._fd, wd)
                del self._wds[wd]


def _libc() -> tuple[ctypes.CDLL | None, str]:
    if not sys.platform.startswith("linux"):
        return None, f"inotify is Linux only (this is {sys.platform})"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        for name in ("inotify_init1", "inotify_add_watch", "inotify_rm_watch"):
            getattr(libc, name)
    except (OSError, AttributeError) as e:
        return None, f"no inotify in libc ({e})"
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    return libc, ""
