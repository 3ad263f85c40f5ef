"""The shared tiny_workspace fixture delivers a prepared, sealed workspace."""

import json


def test_tiny_workspace_is_prepared_and_sealed(tiny_workspace):
    data = tiny_workspace / ".labwarden" / "data" / "tiny"
    for part in ("train", "val", "tokenizer"):
        assert any((data / part).iterdir()), part
    seal = json.loads((data / "seal.json").read_text())
    assert seal["profile"] == "tiny"
    assert "eval_frozen/dataloader.py" in seal["groups"]["code"]
    assert (tiny_workspace / "eval_frozen" / "dataloader.py").is_file()
