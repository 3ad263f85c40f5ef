"""What one experiment needs on a worker, as bytes: files of the workspace and the data.

A bundle holds the workspace's config, program.md, its frozen files and the editable
files of the base tree the patch applies to, plus the profile's prepared data folder
(tokenizer, train, val, seal), or the name of a shared data folder the worker reads in
place. Whatever the worker ends up using is checked against the seal the driver holds:
data re-prepared differently on another node is refused, not silently used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from labwarden.config import WorkspaceConfig
from labwarden.errors import InputError

_SKIP_PARTS = {"__pycache__", ".git"}


@dataclass(frozen=True)
class Bundle:
    files: dict[str, bytes]
    """Workspace-relative path -> content: config, program.md, frozen and base files."""
    data: dict[str, bytes]
    """Data-folder-relative path -> content; empty when `shared_data` names the folder."""
    profile: str
    seal_hash: str
    """The seal of the driver's data: the worker refuses any other."""
    shared_data: str | None = None
    """A data folder every node sees at the same path (`[scale] data_path`), read in place."""
    digest: str = field(default="", compare=False)

    @property
    def size(self) -> int:
        return sum(map(len, self.files.values())) + sum(map(len, self.data.values()))


def _walk(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and not p.is_symlink() and not _SKIP_PARTS & set(p.parts))


def pack(config: WorkspaceConfig, profile: str, *, base_dir: Path | None = None,
         shared_data: str | None = None) -> Bundle:
    """The bundle of `config`'s workspace for `profile`, with the editable files taken
    from `base_dir` (the research tree's current best) when given."""
    from eval_frozen.seal import read

    root = config.root
    data_dir = config.data_path(profile)
    state = config.state_path.resolve()
    files: dict[str, bytes] = {}
    for path in _walk(root):
        if path.resolve().is_relative_to(state):
            continue  # ledger, audit trail, runs, data: never shipped as workspace files
        rel = path.relative_to(root).as_posix()
        if rel in ("labwarden.toml", "program.md") or config.is_frozen(rel):
            files[rel] = path.read_bytes()
        elif config.is_editable(rel) and base_dir is None:
            files[rel] = path.read_bytes()
    if base_dir is not None:
        for path in _walk(base_dir):
            rel = path.relative_to(base_dir).as_posix()
            if config.is_editable(rel):
                files[rel] = path.read_bytes()
    seal_hash = read(data_dir)["seal_hash"]
    data: dict[str, bytes] = {}
    if shared_data is None:
        for path in _walk(data_dir):
            data[path.relative_to(data_dir).as_posix()] = path.read_bytes()
    h = hashlib.sha256()
    for name, blob in sorted({**files, **{f"data/{k}": v for k, v in data.items()}}.items()):
        h.update(name.encode() + b"\0" + hashlib.sha256(blob).digest())
    return Bundle(files, data, profile, seal_hash, shared_data, h.hexdigest()[:16])


def _write_under(root: Path, files: dict[str, bytes], what: str) -> None:
    """Write relative-path -> bytes under `root`; a path that would leave it is refused."""
    for rel, blob in files.items():
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise InputError(f"bundle path {rel!r} leaves the {what}")
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)


def unpack(bundle: Bundle, dest: Path) -> Path:
    """Write the bundle's workspace under `dest` and return the data folder it uses."""
    from labwarden.config import load_config

    _write_under(dest, bundle.files, "workspace")
    data_dir = load_config(dest).data_path(bundle.profile)
    if bundle.shared_data is not None:
        # The sandbox mounts the workspace's data folder: point it at the shared one.
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        data_dir.symlink_to(Path(bundle.shared_data).resolve(), target_is_directory=True)
        return data_dir
    _write_under(data_dir, bundle.data, "data folder")
    return data_dir


def check_seal(bundle: Bundle, root: Path, data_dir: Path) -> str:
    """Empty when the data and the frozen code at `root` match the driver's seal; else
    the reason the worker refuses to run."""
    from eval_frozen.errors import EvalInputError
    from eval_frozen.seal import verify

    try:
        check = verify(data_dir, code_root=root / "eval_frozen")
    except EvalInputError as e:
        return f"seal unreadable on the worker: {e}"
    if not check:
        return f"seal broken on the worker: {check.problem} (data {data_dir})"
    if check.seal_hash != bundle.seal_hash:
        return (f"the worker's data is sealed as {check.seal_hash[:12]}, the driver's as "
                f"{bundle.seal_hash[:12]}: prepared differently, not used")
    return ""


__all__ = ["Bundle", "check_seal", "pack", "unpack"]
