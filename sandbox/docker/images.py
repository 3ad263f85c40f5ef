"""Sandbox images: the offline recipe (debootstrap + local wheels) and the CUDA recipe.

Every image carries the label `labwarden.inputs`: a hash of what went into it (recipe,
pinned requirements, base). `ensure_image` rebuilds when the label does not match, so a
changed requirement never runs in a stale image. Downloads (the root file system
tarball, the wheels) are cached under `cache_dir()` so a second build takes seconds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxError, SandboxUnavailable

IMAGES_DIR = Path(__file__).resolve().parent.parent / "images"
INPUTS_LABEL = "labwarden.inputs"
OFFLINE_TAG = "labwarden-sandbox:offline"
CUDA_TAG = "labwarden-sandbox:cuda"
BASE_REPO = "labwarden-base"
SUITE = "bookworm"  # its python3 is 3.11, the ABI of the host wheels
# g++ and the Python headers: torch.compile on CPU builds its kernels (and their Python
# bindings) with them, as on a host with a compiler (the local backend); inductor hashes
# its precompiled headers with the openssl command.
DEBOOTSTRAP = ("--variant=minbase", "--include=python3,g++,libpython3.11-dev,openssl")

Log = Callable[[str], None]


def cache_dir() -> Path:
    path = Path(os.environ.get("LABWARDEN_CACHE") or Path.home() / ".cache" / "labwarden")
    path.mkdir(parents=True, exist_ok=True)
    return path


def debian_mirror() -> str:
    """The mirror apt already uses here (so debootstrap reaches what apt reaches)."""
    if os.environ.get("LABWARDEN_DEBIAN_MIRROR"):
        return os.environ["LABWARDEN_DEBIAN_MIRROR"]
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for match in re.finditer(r"^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, re.M):
            url = match.group(1)
            if url.startswith("http") and "security" not in url:
                return url
    return "http://deb.debian.org/debian"


def pinned_requirements() -> list[str]:
    """requirements.txt with each bare name pinned to the host's installed version."""
    out = []
    for line in (IMAGES_DIR / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if re.fullmatch(r"[A-Za-z0-9_.\-]+", line):
            try:
                line = f"{line}=={importlib.metadata.version(line)}"
            except importlib.metadata.PackageNotFoundError:
                pass
        out.append(line)
    return out


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def offline_inputs_hash() -> str:
    return _hash(
        (IMAGES_DIR / "Dockerfile.offline").read_text(), *pinned_requirements(), SUITE, *DEBOOTSTRAP
    )


def cuda_inputs_hash() -> str:
    return _hash(
        (IMAGES_DIR / "Dockerfile.cuda").read_text(),
        (IMAGES_DIR / "requirements-cuda.txt").read_text(),
    )


def image_label(client: Any, tag: str) -> str | None:
    import docker

    try:
        return (client.images.get(tag).labels or {}).get(INPUTS_LABEL)
    except docker.errors.ImageNotFound:
        return None


def _run(argv: list[str], what: str, log: Log) -> None:
    log(f"$ {' '.join(argv)}")
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SandboxError(f"{what} failed (exit {done.returncode}): {tail[0]}")


def rootfs_tarball(log: Log) -> Path:
    """A debootstrap root file system as a tarball, cached."""
    key = _hash(SUITE, *DEBOOTSTRAP)
    tar = cache_dir() / f"rootfs-{SUITE}-{key}.tar"
    if tar.is_file():
        return tar
    if shutil.which("debootstrap") is None:
        raise SandboxUnavailable(
            "debootstrap is not installed; the offline image recipe needs "
            "it (apt-get install -y debootstrap)."
        )
    if os.geteuid() != 0:
        raise SandboxUnavailable(
            "the offline image recipe runs debootstrap, which needs root; "
            "run 'labwarden sandbox build' as root once."
        )
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        root = Path(tmp) / "root"
        _run(["debootstrap", *DEBOOTSTRAP, SUITE, str(root), debian_mirror()], "debootstrap", log)
        partial = tar.with_suffix(".partial")
        _run(["tar", "-C", str(root), "-cf", str(partial), "."], "tar", log)
        partial.rename(tar)
    return tar


def base_image(client: Any, log: Log) -> str:
    """The imported Debian base, tagged by what made it."""
    import docker

    tag = f"{BASE_REPO}:{_hash(SUITE, *DEBOOTSTRAP)}"
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    tar = rootfs_tarball(log)
    repo, version = tag.split(":")
    log(f"importing {tar.name} as {tag}")
    client.api.import_image_from_file(str(tar), repository=repo, tag=version)
    return tag


def wheel_folder(requirements: list[str], log: Log) -> Path:
    """Every wheel the image needs, pip's own included, downloaded once and cached."""
    if sys.version_info[:2] != (3, 11):
        raise SandboxUnavailable(
            f"the offline recipe downloads wheels for the image's Python 3.11, but labwarden "
            f"runs on {sys.version_info[0]}.{sys.version_info[1]}; run the build with Python 3.11."
        )
    folder = cache_dir() / f"wheels-{_hash(*requirements)}"
    done = folder / ".complete"
    if done.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    pip = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--only-binary=:all:",
        "-d",
        str(folder),
    ]
    torch = [r for r in requirements if r.startswith("torch")]
    # torch alone and without dependencies first: the resolver must not trade the pinned
    # CPU wheel for another build while it solves for the rest.
    if torch:
        _run([*pip, "--no-deps", *torch], "pip download torch", log)
    _run([*pip, *requirements, "pip", "setuptools"], "pip download", log)
    done.write_text("\n".join(requirements) + "\n")
    return folder


def build_offline(client: Any, *, force: bool = False, log: Log = print) -> str:
    """Build (or reuse) the offline image; returns its tag."""
    inputs = offline_inputs_hash()
    if not force and image_label(client, OFFLINE_TAG) == inputs:
        log(f"{OFFLINE_TAG} is up to date ({INPUTS_LABEL}={inputs})")
        return OFFLINE_TAG
    started = time.monotonic()
    requirements = pinned_requirements()
    base = base_image(client, log)
    wheels = wheel_folder(requirements, log)
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        context = Path(tmp)
        shutil.copyfile(IMAGES_DIR / "Dockerfile.offline", context / "Dockerfile")
        (context / "wheels").mkdir()
        for wheel in wheels.glob("*.whl"):
            os.link(wheel, context / "wheels" / wheel.name)  # same file system: no copy
        (context / "wheels" / "requirements.txt").write_text("\n".join(requirements) + "\n")
        log(f"building {OFFLINE_TAG} from {base} with {len(list(wheels.glob('*.whl')))} wheels")
        _build(client, context, "Dockerfile", OFFLINE_TAG, {"BASE": base}, inputs, network="none")
    log(f"built {OFFLINE_TAG} in {time.monotonic() - started:.0f} s")
    return OFFLINE_TAG


def build_cuda(client: Any, *, force: bool = False, log: Log = print) -> str:
    """Build the CUDA image from PyTorch's base; needs a registry."""
    inputs = cuda_inputs_hash()
    if not force and image_label(client, CUDA_TAG) == inputs:
        log(f"{CUDA_TAG} is up to date ({INPUTS_LABEL}={inputs})")
        return CUDA_TAG
    started = time.monotonic()
    log(f"building {CUDA_TAG} from {IMAGES_DIR / 'Dockerfile.cuda'} (pulls its base once)")
    try:
        _build(client, IMAGES_DIR, "Dockerfile.cuda", CUDA_TAG, {}, inputs, network=None)
    except SandboxError as e:
        raise SandboxUnavailable(
            f"{e} (the CUDA image needs its base from a registry once: build it with "
            f"'labwarden sandbox build --recipe cuda' where one is reachable)") from None
    log(f"built {CUDA_TAG} in {time.monotonic() - started:.0f} s")
    return CUDA_TAG


def _build(
    client: Any,
    context: Path,
    dockerfile: str,
    tag: str,
    args: dict[str, str],
    inputs: str,
    network: str | None,
) -> None:
    import docker

    try:
        client.images.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tag,
            buildargs=args,
            labels={INPUTS_LABEL: inputs},
            network_mode=network,
            rm=True,
            forcerm=True,
            pull=False,
        )
    except docker.errors.BuildError as e:
        lines = [str(c.get("stream") or c.get("error") or "").strip() for c in e.build_log]
        last = [line for line in lines if line][-1:] or [str(e)]
        raise SandboxError(f"docker build of {tag} failed: {last[0]}") from None
    except docker.errors.APIError as e:
        raise SandboxError(f"docker build of {tag} failed: {e.explanation or e}") from None


def ensure_image(client: Any, tag: str, log: Log = print) -> str:
    """The image to run steps in: built now if missing or stale (our two recipes)."""
    if tag == OFFLINE_TAG:
        return build_offline(client, log=log)
    if tag == CUDA_TAG:
        return build_cuda(client, log=log)
    if image_label(client, tag) is None:
        import docker

        try:
            client.images.get(tag)
        except docker.errors.ImageNotFound:
            raise SandboxUnavailable(
                f"Docker image {tag} is missing; build it "
                f"('labwarden sandbox build') or set [sandbox] image."
            ) from None
    return tag


def image_for(configured: str, gpus: str | list[int] | None) -> str:
    """The image a step runs in: with GPUs requested, the CUDA image in place of the offline
    one (its torch is a CPU build); an image named in `[sandbox] image` is kept."""
    if gpus and configured == OFFLINE_TAG:
        return CUDA_TAG
    return configured


# ---- per-image compile cache ---------------------------------------------------------------
#
# torch.compile's kernels (inductor and Triton caches) are kept between experiments, so a
# GPU step does not spend its budget recompiling what an earlier run compiled. It must not
# become a channel between experiments for anything else (weights trained in one run,
# read by the next), so:
# - it is keyed by the image's id: another torch or Triton never reads it;
# - a training step never sees the shared cache itself, only a private copy in its run
#   folder, whose files are read-only hard links (or copies); what a step writes there
#   dies with its run. The evaluation step gets no cache at all;
# - only a run of the workspace's own trainer (no patch, editable files as in the
#   workspace: code the user wrote, never an agent's) that ended "ok" adds to the shared
#   cache: new regular files only, under the two cache folders, none replaced, each and
#   all of them capped in size.

COMPILE_CACHE_MOUNT = "cache"
"""Mount target (under the sandbox root) of a training step's private compile cache."""
COMPILE_CACHE_ENV = {
    "TORCHINDUCTOR_CACHE_DIR": "{root}/cache/inductor",
    "TRITON_CACHE_DIR": "{root}/cache/triton",
}
CACHE_FOLDERS = ("inductor", "triton")
CACHE_FILE_MAX_MB = 256
CACHE_TOTAL_MAX_MB = 4096


def compile_cache_dir(image_id: str) -> Path:
    """The shared compile cache of the image with id `image_id` ("sha256:...")."""
    key = re.sub(r"[^0-9a-f]", "", image_id.split(":")[-1])[:16] or "unknown"
    return cache_dir() / "compile" / key


def seed_compile_cache(shared: Path, private: Path) -> int:
    """Fill `private` (a step's cache folder) from `shared`; returns the files given.

    Files are hard links where the file systems allow (copies otherwise) with mode 0444:
    the step's user (65534) can add and replace names in its own folders but cannot
    write to a shared file's content."""
    count = 0
    for name in CACHE_FOLDERS:
        (private / name).mkdir(parents=True, exist_ok=True)
    for src in _cache_files(shared):
        rel = src.relative_to(shared)
        dst = private / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
            dst.chmod(0o444)
        count += 1
    for folder in [private, *(p for p in private.rglob("*") if p.is_dir())]:
        folder.chmod(0o777)  # the step runs as 65534
    return count


def promote_compile_cache(private: Path, shared: Path) -> int:
    """Add the new kernel files of a trusted run's `private` cache to `shared`; returns
    how many were added. Never replaces a file, follows no link, stays under the caps."""
    total = sum(p.stat().st_size for p in _cache_files(shared))
    added = 0
    for src in _cache_files(private):
        rel = src.relative_to(private)
        dst = shared / rel
        size = src.stat().st_size
        if dst.exists() or size > CACHE_FILE_MAX_MB * 2**20:
            continue
        if total + size > CACHE_TOTAL_MAX_MB * 2**20:
            break
        dst.parent.mkdir(parents=True, exist_ok=True)
        partial = dst.with_name(f".{dst.name}.partial")
        shutil.copyfile(src, partial)
        partial.chmod(0o444)
        os.replace(partial, dst)
        total += size
        added += 1
    return added


def _cache_files(root: Path) -> list[Path]:
    """Regular files under root's cache folders: no links, no lock or temporary files."""
    found = []
    for name in CACHE_FOLDERS:
        top = root / name
        if top.is_symlink() or not top.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(top):  # does not follow links
            dirnames[:] = [d for d in dirnames if not Path(dirpath, d).is_symlink()]
            for f in filenames:
                path = Path(dirpath, f)
                if f.startswith(".") or f.endswith((".lock", ".tmp", ".partial")) or \
                        "tmp" in f.split(".")[0]:
                    continue
                if path.is_symlink() or not path.is_file():
                    continue
                found.append(path)
    return sorted(found)
