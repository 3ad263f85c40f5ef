"""Sandbox fixtures: a Docker engine (started here if it can be), the image, and a copy of
the prepared tiny workspace with the conformance suite's small limits."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest


def _start_dockerd(log: Path) -> str | None:
    """Start dockerd in the background if we may; returns why not, or None."""
    if shutil.which("dockerd") is None:
        return "dockerd is not installed (apt-get install -y docker.io)"
    if os.geteuid() != 0:
        return "dockerd is not running and starting it needs root"
    with log.open("ab") as out:
        subprocess.Popen(["dockerd"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return None


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory):
    """A docker SDK client to a running engine, with the offline image built (cached by
    its inputs hash, so this is quick after the first build on a machine)."""
    from sandbox.docker import prereqs
    from sandbox.docker.images import build_offline
    from sandbox.errors import SandboxUnavailable

    try:
        client = prereqs.connect()
    except SandboxUnavailable as first:
        why = _start_dockerd(tmp_path_factory.mktemp("dockerd") / "dockerd.log")
        if why:
            pytest.skip(f"no Docker engine can be started here: {why} ({first})")
        deadline = time.monotonic() + 60
        while True:
            try:
                client = prereqs.connect()
                break
            except SandboxUnavailable as e:
                if time.monotonic() > deadline:
                    pytest.skip(f"no Docker engine can be started here: {e}")
                time.sleep(1)
    prereqs.engine_answers.cache_clear()
    build_offline(client, log=lambda _: None)
    return client


@pytest.fixture(scope="session")
def suite_config(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory):
    from sandbox.conformance import prepare_workspace

    return prepare_workspace(tiny_workspace, tmp_path_factory.mktemp("suite") / "ws")
