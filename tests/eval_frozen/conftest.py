"""Fixtures for the eval_frozen tests: exported models and private workspace copies."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for `import ef_helpers`

from ef_helpers import VOCAB, TinyAttention, export_model  # noqa: E402


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> dict[str, Path]:
    """model.pt2 files: causal, noncausal, batchmix, nan, wrong_vocab."""
    d = tmp_path_factory.mktemp("models")
    out = {mode: export_model(TinyAttention(mode=mode), d / f"{mode}.pt2")
           for mode in ("causal", "noncausal", "batchmix", "nan")}
    out["wrong_vocab"] = export_model(TinyAttention(vocab=VOCAB - 24), d / "wrong_vocab.pt2")
    return out


@pytest.fixture()
def workspace_copy(tiny_workspace, tmp_path) -> Path:
    """A private copy of the prepared tiny workspace, free to tamper with."""
    dest = tmp_path / "ws"
    shutil.copytree(tiny_workspace, dest)
    return dest


