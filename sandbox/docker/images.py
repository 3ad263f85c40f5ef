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
DEBOOTSTRAP = ("--variant=minbase", "--include=python3")

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
    _build(client, IMAGES_DIR, "Dockerfile.cuda", CUDA_TAG, {}, inputs, network=None)
    log(f"built {CUDA_TAG}")
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
    """The image to run steps in: built now if missing or stale (offline recipe)."""
    if tag == OFFLINE_TAG:
        return build_offline(client, log=log)
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
