"""`labwarden sandbox build|doctor`: build the image; say which backend runs and what it
guarantees here (measured by trying, not read from a list: namespaces and the fresh root
probed, then a quick probe step per backend that tries to read the built-in validation
text, a marker in the state folder and one in the host's /dev/shm)."""

from __future__ import annotations

import argparse

from labwarden.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    build = sub.add_parser("build", help="build the sandbox image (cached by a hash of its inputs)")
    build.add_argument(
        "--recipe",
        choices=("offline", "cuda"),
        default="offline",
        help="offline: debootstrap + local wheels, no registry (default); "
        "cuda: PyTorch's CUDA image, needs a registry",
    )
    build.add_argument("--force", action="store_true", help="rebuild even if up to date")
    build.add_argument("--workspace", default=None, help="unused; accepted like every command")
    doctor = sub.add_parser("doctor", help="which backend runs, and what each guarantees here")
    doctor.add_argument("--workspace", default=None, help="workspace folder (for [sandbox])")


def run(args: argparse.Namespace) -> int:
    if args.action == "build":
        return _build(args)
    return _doctor(args)


def _build(args: argparse.Namespace) -> int:
    import sys

    from sandbox.docker.images import build_cuda, build_offline
    from sandbox.docker.prereqs import connect
    from sandbox.errors import SandboxError

    client = connect()
    build = build_offline if args.recipe == "offline" else build_cuda
    try:
        tag = build(client, force=args.force, log=print)
    except SandboxError as e:
        if isinstance(e, InputError):
            raise
        print(f"labwarden sandbox build: error: {e}", file=sys.stderr)
        return 1
    print(f"image: {tag}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from sandbox.docker.prereqs import connect
    from sandbox.errors import SandboxUnavailable
    from sandbox.local import LocalBackend

    backend_name: str | None = None
    state_dir = None
    try:
        from labwarden.config import load_config
        from sandbox.settings import SandboxSettings

        config = load_config(args.workspace)
        settings = SandboxSettings.from_config(config)
        backend_name = settings.backend
        # The probe steps look for a marker left in the workspace's state folder.
        state_dir = config.state_path
    except InputError:
        if args.workspace:  # a workspace named and broken: say so, never the default
            raise
        settings = None
    columns: dict[str, list[tuple[str, bool, str]]] = {
        "local": LocalBackend().guarantees(state_dir)
    }
    why_not_docker = ""
    try:
        connect().close()
    except SandboxUnavailable as e:
        why_not_docker = str(e)
    if not why_not_docker:
        from sandbox.docker import DockerBackend

        image = settings.image if settings else None
        docker_backend = DockerBackend(image=image) if image else DockerBackend()
        from sandbox.docker.diagnostics import measured_guarantees

        try:
            columns["docker"] = measured_guarantees(docker_backend, state_dir)
        except InputError as e:
            why_not_docker = str(e)
    chosen = backend_name or ("docker" if "docker" in columns else "local")
    source = ("[sandbox] backend" if backend_name
              else "default: Docker when an engine answers, else local")
    print(f"backend: {chosen}  ({source})"
          + (f"  (docker: {why_not_docker})" if why_not_docker else ""))
    print(_table(columns))
    return 0


def _table(columns: dict[str, list[tuple[str, bool, str]]]) -> str:
    names = list(dict.fromkeys(name for rows in columns.values() for name, _, _ in rows))
    width = max(len(n) for n in names)
    lines = [
        f"{'guarantee':<{width}}  " + "  ".join(f"{c:<6}" for c in columns) + "  how (measured)"
    ]
    for name in names:
        cells, hows = [], []
        for column, rows in columns.items():
            found = {n: (ok, how) for n, ok, how in rows}.get(name)
            cells.append(f"{('yes' if found[0] else 'NO') if found else '-':<6}")
            if found:
                hows.append(f"{column}: {found[1]}")
        lines.append(f"{name:<{width}}  " + "  ".join(cells) + "  " + "; ".join(hows))
    return "\n".join(lines)
