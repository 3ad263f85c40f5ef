"""The fresh root a local training step runs in: an allow-list of what it may see.

The step gets an empty root (a small tmpfs, read-only once built) holding only:

- its own mounts under `/sandbox` (the same root the container uses),
- the running interpreter: its executable (and the symlinks that lead to it), its
  standard library without the documentation data (`pydoc_data`, which holds the
  built-in validation text; only `help()` reads it), tests and demos, its shared
  library and headers, the venv's `pyvenv.cfg` and site-packages,
- the system's programs and shared libraries: `/usr/bin`, `/usr/sbin`, the folders the
  dynamic loader searches (`/etc/ld.so.conf`, the multiarch folders), the loose files
  of `/usr/lib` and the compiler's folders (torch.compile builds kernels with them),
- a few files of `/etc` (the loader cache, users, hosts), the harmless device nodes
  (and NVIDIA's, if present), `/sys` read-only, `/proc` of its own pid namespace, and
  an empty private `/tmp` and `/dev/shm`.

Nothing else exists there: no workspace, no `.labwarden/` state (earlier runs, ledger,
audit), no home folders, no other Python installations (folders named `python*` or
`pypy*` at the top of a library folder are left out, and the base interpreter's own
site-packages too). Everything but `/sandbox`'s writable mounts, `/tmp` and `/dev/shm`
is read-only. `enter.py` builds it inside the step's user and mount namespaces; this
module only says what goes where, as data.
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import os
import site
import sys
import sysconfig
from pathlib import Path

from sandbox.backend import StepSpec

ROOT = "/sandbox"
"""Where a step's mounts appear, as in the container."""

Entry = list[object]
"""One instruction for `enter.py`: ["dir", path], ["symlink", value, path],
["bind", source, path, read_only], ["tmpfs", path, options], ["proc", path],
["hide", path]."""

# The standard library's folders a training step has no use for: the documentation data
# (the built-in validation text), the base interpreter's own packages (another
# installation), tests and demos.
STDLIB_LEFT_OUT = ("pydoc_data", "site-packages", "dist-packages", "test", "idlelib",
                   "turtledemo")
# At the top of a library folder: other interpreters' installations.
OTHER_PYTHONS = ("python*", "pypy*")
PROGRAM_DIRS = ("/usr/bin", "/usr/sbin", "/bin", "/sbin")
TOOLCHAIN_DIRS = ("/usr/include", "/usr/libexec", "/usr/lib/gcc")
LOOSE_LIB_DIRS = ("/lib", "/lib64", "/lib32", "/usr/lib", "/usr/lib64", "/usr/lib32")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf",
             "hosts", "localtime", "alternatives")
DEV_NODES = ("null", "zero", "full", "random", "urandom")
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"))


class _Plan:
    """Entries in order, each path made once; a path inside a folder bound whole is skipped
    (the folder already shows it)."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self._made: set[str] = set()
        self._whole: list[str] = []

    def _covered(self, path: str) -> bool:
        return path in self._made or any(path.startswith(w + "/") for w in self._whole)

    def symlink(self, value: str, path: str) -> None:
        if not self._covered(path):
            self._made.add(path)
            self.entries.append(["symlink", value, path])

    def bind(self, source: str, path: str, read_only: bool = True) -> None:
        if not self._covered(path):
            self._made.add(path)
            if os.path.isdir(source):
                self._whole.append(path)
            self.entries.append(["bind", source, path, read_only])

    def raw(self, entry: Entry) -> None:
        self.entries.append(entry)


def _resolve(path: str, plan: _Plan) -> str | None:
    """The real path behind `path`, with every symlink met on the way recreated in the plan
    (so the same name works inside); None if it does not exist."""
    parts = [p for p in path.split("/") if p]
    here = "/"
    hops = 0
    while parts:
        name = parts.pop(0)
        if name == ".":
            continue
        if name == "..":
            here = os.path.dirname(here)
            continue
        nxt = os.path.join(here, name)
        if os.path.islink(nxt):
            hops += 1
            if hops > 40:
                return None
            value = os.readlink(nxt)
            plan.symlink(value, nxt)
            if value.startswith("/"):
                here = "/"
            parts = [p for p in value.split("/") if p] + parts
        elif os.path.lexists(nxt):
            here = nxt
        else:
            return None
    return here


def _bind_path(path: str, plan: _Plan) -> None:
    """Show `path` (file or folder) under its own name, links on the way included."""
    real = _resolve(path, plan)
    if real is not None:
        plan.bind(real, real)


def _bind_children(folder: str, plan: _Plan, left_out: tuple[str, ...]) -> None:
    """Show a folder without the children whose names match `left_out`; whole when none do."""
    real = _resolve(folder, plan)
    if real is None or not os.path.isdir(real):
        return
    try:
        names = sorted(os.listdir(real))
    except OSError:
        return
    if not any(fnmatch.fnmatch(n, pat) for n in names for pat in left_out):
        plan.bind(real, real)
        return
    for name in names:
        if any(fnmatch.fnmatch(name, pat) for pat in left_out):
            continue
        child = os.path.join(real, name)
        if os.path.islink(child):
            plan.symlink(os.readlink(child), child)
        else:
            plan.bind(child, child)


def _loose_files(folder: str, plan: _Plan) -> None:
    """The files (not the folders) directly in a library folder."""
    real = _resolve(folder, plan)
    if real is None or not os.path.isdir(real):
        return
    for name in sorted(os.listdir(real)):
        child = os.path.join(real, name)
        if os.path.islink(child):
            plan.symlink(os.readlink(child), child)
        elif os.path.isfile(child):
            plan.bind(child, child)


def loader_dirs() -> list[str]:
    """The folders the dynamic loader searches: /etc/ld.so.conf (with its includes) and
    the multiarch defaults."""
    found: list[str] = []

    def read(conf: str, depth: int = 0) -> None:
        try:
            lines = Path(conf).read_text(errors="replace").splitlines()
        except OSError:
            return
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line.startswith("include") and depth < 4:
                pattern = line.split(None, 1)[1] if " " in line else ""
                if not pattern.startswith("/"):
                    pattern = os.path.join(os.path.dirname(conf), pattern)
                for inc in sorted(glob.glob(pattern)):
                    read(inc, depth + 1)
            elif line.startswith("/"):
                found.append(line)

    read("/etc/ld.so.conf")
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    if arch:
        found += [f"/lib/{arch}", f"/usr/lib/{arch}", f"/usr/local/lib/{arch}"]
    return list(dict.fromkeys(found))


def interpreter_paths() -> dict[str, object]:
    """Where the running interpreter's parts are (also what the doctor prints)."""
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix,
            "installed_base": sys.base_prefix, "installed_platbase": sys.base_exec_prefix}
    paths = sysconfig.get_paths(vars=base)
    return {
        "executable": sys.executable,
        "stdlib": sorted({paths["stdlib"], paths["platstdlib"]}),
        "include": paths["include"],
        "libdir": sysconfig.get_config_var("LIBDIR") or "",
        "venv": sys.prefix if sys.prefix != sys.base_prefix else "",
        "site_packages": sorted({*site.getsitepackages(), sysconfig.get_paths()["purelib"],
                                 sysconfig.get_paths()["platlib"]}),
    }


@functools.cache
def system_entries() -> tuple[tuple[object, ...], ...]:
    """The part of every step's root that comes from this machine (computed once)."""
    plan = _Plan()
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        if os.path.islink(f"/{name}"):
            plan.symlink(os.readlink(f"/{name}"), f"/{name}")
    for folder in PROGRAM_DIRS + TOOLCHAIN_DIRS:
        _bind_path(folder, plan)
    # Shortest first: a folder comes before the folders inside it, which it then covers.
    for folder in sorted(loader_dirs(), key=lambda f: len(os.path.realpath(f))):
        _bind_children(folder, plan, OTHER_PYTHONS)
    for folder in LOOSE_LIB_DIRS:
        _loose_files(folder, plan)
    for name in ETC_FILES:
        _bind_path(f"/etc/{name}", plan)

    where = interpreter_paths()
    _bind_path(str(where["executable"]), plan)
    for folder in where["stdlib"]:  # type: ignore[union-attr]
        _bind_children(str(folder), plan, STDLIB_LEFT_OUT)
    libdir = str(where["libdir"])
    if libdir and os.path.isdir(libdir):
        for lib in sorted(glob.glob(os.path.join(libdir, "libpython*"))):
            _bind_path(lib, plan)
    _bind_path(str(where["include"]), plan)
    if where["venv"]:
        _bind_path(os.path.join(str(where["venv"]), "pyvenv.cfg"), plan)
    for folder in where["site_packages"]:  # type: ignore[union-attr]
        _bind_path(str(folder), plan)
    return tuple(tuple(e) for e in plan.entries)


def device_entries() -> list[Entry]:
    entries: list[Entry] = [["dir", "/dev"]]
    for name in DEV_NODES:
        if os.path.exists(f"/dev/{name}"):
            entries.append(["bind", f"/dev/{name}", f"/dev/{name}", False])
    # GPUs: every NVIDIA node, as before (a selection is CUDA_VISIBLE_DEVICES, not isolation).
    for node in sorted(glob.glob("/dev/nvidia*")):
        entries.append(["bind", node, node, False])
    for name, value in DEV_LINKS:
        entries.append(["symlink", value, f"/dev/{name}"])
    return entries


def step_plan(step: StepSpec, mount_point: Path) -> dict[str, object]:
    """Everything `enter.py` needs to build this step's root at `mount_point`, as JSON data."""
    # The scratch folders first: an interpreter or venv that lives under /tmp (a CI clone)
    # is then bound on top of the empty /tmp instead of being covered by it.
    entries: list[Entry] = [["tmpfs", "/tmp", f"size={step.limits.tmpfs_mb}m,mode=1777"]]
    entries += [list(e) for e in system_entries()]
    entries += device_entries()
    if os.path.isdir("/sys"):
        entries.append(["bind", "/sys", "/sys", True])
    entries.append(["proc", "/proc"])
    entries.append(["tmpfs", "/dev/shm", f"size={step.limits.shm_mb}m,mode=1777"])
    entries.append(["dir", ROOT])
    hidden = [h.resolve() for h in step.hide]
    for mount in step.mounts:
        source = mount.source.resolve()
        target = f"{ROOT}/{mount.target}"
        entries.append(["bind", str(source), target, mount.read_only])
        # A hidden folder inside a mounted one (a mount of a whole data folder) stays empty.
        for h in hidden:
            if h != source and source in h.parents and h.is_dir():
                entries.append(["hide", f"{target}/{h.relative_to(source).as_posix()}"])
    return {
        "root": str(mount_point),
        "root_size": "size=16m,mode=0755",
        "cwd": f"{ROOT}/{step.workdir}",
        "entries": entries,
    }
