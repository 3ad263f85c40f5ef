"""Build a step's fresh root inside its new namespaces, then become the step.

Run as `python -I -S enter.py PLAN.json READY_FD -- ARGV...` by `unshare` (user, mount,
pid and network namespaces already made). READY_FD is the write end of a pipe from the
sandbox: one byte there, just before the exec, says the root was built. Standalone on
purpose: standard library only, no site, so nothing of the workspace or the venv runs
before the root is in place.

1. every mount private; a small tmpfs on the plan's mount point;
2. the plan's entries (folders, symlinks, binds, tmpfs, /proc), read-only binds made
   read-only recursively (`mount_setattr`, or a remount where the kernel lacks it);
3. `pivot_root` into it and detach the old root: the host's file system is no longer
   reachable by any path; the new root itself becomes read-only;
4. every capability dropped (bounding, inheritable and ambient sets) and no_new_privs,
   so the step, root of its user namespace only, cannot mount, unmount or remount;
5. exec the step with the environment it was given.

Any failure prints one line (`labwarden-root: ...`) and exits 125 before the step runs,
without the ready byte, so the sandbox raises instead of reporting a crashed step.
"""

import ctypes
import json
import os
import platform
import sys

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (added in 5.12)
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203,
                  "s390x": 217}
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
EXIT_SETUP = 125

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


class SetupError(Exception):
    pass


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)} (errno {err})")


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    _check(libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(),
                      ctypes.c_ulong(flags), data and data.encode()),
           f"mount {source or fstype} on {target}")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _set_read_only(path: str, flags: int) -> bool:
    """mount_setattr(2): only the read-only bit changes, so the flags the kernel locked on
    the host's mount (nosuid, nodev, atime) are kept. False where the kernel lacks it."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    done = libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD),
                        path.encode(), ctypes.c_uint(flags), ctypes.byref(attr),
                        ctypes.c_size_t(ctypes.sizeof(attr)))
    if done == 0:
        return True
    if ctypes.get_errno() != 38:  # ENOSYS: an older kernel
        _check(-1, f"mount_setattr read-only {path}")
    return False


def _make_read_only(path: str, recursive: bool = True) -> None:
    """Read-only, submounts included; a remount of the top mount before Linux 5.12."""
    if _set_read_only(path, AT_RECURSIVE if recursive else 0):
        return
    st = os.statvfs(path)
    kept = 0
    for flag, bit in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV),
                      (os.ST_NOEXEC, MS_NOEXEC)):
        if st.f_flag & flag:
            kept |= bit
    _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)


def _inside(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _mount_point(target: str, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.lexists(target):
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))


def build(plan: dict) -> None:
    root = plan["root"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("labwarden-root", root, "tmpfs", MS_NOSUID | MS_NODEV, plan["root_size"])
    for entry in plan["entries"]:
        kind, args = entry[0], entry[1:]
        if kind == "dir":
            os.makedirs(_inside(root, args[0]), exist_ok=True)
        elif kind == "symlink":
            value, path = args
            target = _inside(root, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.lexists(target):
                os.symlink(value, target)
        elif kind == "bind":
            source, path, read_only = args
            target = _inside(root, path)
            _mount_point(target, os.path.isdir(source))
            _mount(source, target, None, MS_BIND | MS_REC)
            if read_only:
                _make_read_only(target)
        elif kind == "tmpfs":
            path, options = args
            target = _inside(root, path)
            os.makedirs(target, exist_ok=True)
            _mount("labwarden-tmp", target, "tmpfs", MS_NOSUID | MS_NODEV, options)
        elif kind == "hide":
            target = _inside(root, args[0])
            _mount("labwarden-hidden", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY,
                   "size=4k")
        elif kind == "proc":
            target = _inside(root, args[0])
            os.makedirs(target, exist_ok=True)
            try:  # the pid namespace's own /proc; a bind of the one unshare made otherwise
                _mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            except SetupError:
                _mount("/proc", target, None, MS_BIND | MS_REC)
        else:
            raise SetupError(f"unknown plan entry {kind!r}")
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise SetupError(f"pivot_root: unknown architecture {platform.machine()}")
    os.chdir(root)
    _check(libc.syscall(ctypes.c_long(number), b".", b"."), "pivot_root")
    _check(libc.umount2(b".", ctypes.c_int(MNT_DETACH)), "detach the old root")
    os.chdir("/")
    _make_read_only("/", recursive=False)  # the root tmpfs only: /tmp stays writable
    os.chdir(plan["cwd"])


def drop_privileges() -> None:
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    for cap in range(last + 1):
        _check(libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0), f"drop capability {cap}")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)  # EINVAL before 4.3: none

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header = Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words
    data = (Data * 2)()
    _check(libc.capset(ctypes.byref(header), data), "clear capabilities")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def main(argv: list[str]) -> None:
    if len(argv) < 5 or argv[3] != "--" or not argv[2].isdigit():
        print("labwarden-root: usage: enter.py PLAN.json READY_FD -- ARGV...", file=sys.stderr)
        sys.exit(EXIT_SETUP)
    ready = int(argv[2])
    try:
        # Closed by the exec: only this prologue can say the root was built, never the step.
        os.set_inheritable(ready, False)
        with open(argv[1], encoding="utf-8") as f:
            plan = json.load(f)
        build(plan)
        drop_privileges()
        os.write(ready, b"1")
    except (SetupError, OSError, ValueError, KeyError) as e:
        print(f"labwarden-root: {e}", file=sys.stderr, flush=True)
        sys.exit(EXIT_SETUP)
    step = argv[4:]
    try:
        os.execve(step[0], step, dict(os.environ))
    except OSError as e:
        print(f"labwarden-root: cannot run {step[0]}: {e.strerror}", file=sys.stderr)
        sys.exit(127)


if __name__ == "__main__":
    main(sys.argv)
