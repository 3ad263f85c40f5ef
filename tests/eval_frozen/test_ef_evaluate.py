"""The evaluator end to end on exported models: scores, probes, seal, bad input."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
import torch
from ef_helpers import VOCAB, TinyAttention, data_dir_of, run_evaluator

from eval_frozen import evaluate
from eval_frozen.errors import EvalInputError
from eval_frozen.model_io import check_graph, load_program


def _main(tiny_workspace, model, out, *extra):
    return evaluate.main(["--model", str(model), "--data-dir", str(data_dir_of(tiny_workspace)),
                          "--out", str(out), *extra])


def _metrics(path):
    return json.loads(path.read_text())


def test_causal_model_is_scored_and_matches_in_process(tiny_workspace, exported, tmp_path):
    out = tmp_path / "metrics.json"
    proc = run_evaluator(tiny_workspace, exported["causal"], out)
    assert proc.returncode == 0, proc.stderr
    m = _metrics(out)
    assert m["status"] == "scored" and m["reason"] == ""
    assert m["tokens_evaluated"] == 32 * 1024
    assert m["bytes_evaluated"] > m["tokens_evaluated"]  # BPE tokens hold > 1 byte on average
    seal = json.loads((data_dir_of(tiny_workspace) / "seal.json").read_text())
    assert m["seal_hash"] == seal["seal_hash"]
    (probe,) = m["probes"]
    assert probe["name"] == "causality" and probe["passed"] and probe["failed"] == 0
    assert probe["checks"] >= 512 and probe["batch_sizes"] == [32]
    assert probe["max_deviation_nats"] <= probe["tolerance_nats"] == 1e-3
    assert probe["worst_failures"] == []  # no position is ever listed for a passing run
    assert m["profile"] == "tiny" and m["timings"]["tokens_per_s"] > 0
    # An untrained model is near a uniform guess: log2(V) bits per token spread over bytes.
    uniform_bpb = math.log2(VOCAB) * m["tokens_evaluated"] / m["bytes_evaluated"]
    assert math.isfinite(m["val_bpb"]) and 0.5 * uniform_bpb < m["val_bpb"] < 1.5 * uniform_bpb
    assert f"val_bpb: {m['val_bpb']:.6f}" in proc.stdout

    in_process = evaluate.evaluate_module(TinyAttention(), data_dir_of(tiny_workspace), "tiny")
    assert abs(in_process.val_bpb - m["val_bpb"]) < 1e-4


def test_non_causal_model_fails_the_probe(tiny_workspace, exported, tmp_path):
    out = tmp_path / "metrics.json"
    assert _main(tiny_workspace, exported["noncausal"], out) == 1
    m = _metrics(out)
    assert m["status"] == "rejected" and m["val_bpb"] is None
    assert m["reason"].startswith("probe_failed: causality (")
    (causality,) = m["probes"]
    assert not causality["passed"]
    # Attention without a mask reads the future at almost every position.
    assert causality["failed"] > 0.9 * causality["checks"]
    assert causality["max_deviation_nats"] > causality["tolerance_nats"]
    assert len(causality["worst_failures"]) == 5


def test_batch_mixing_model_fails_the_causality_check(tiny_workspace, exported, tmp_path):
    # Each row sees the batch mean: in a probe batch its neighbours differ from scoring.
    out = tmp_path / "metrics.json"
    assert _main(tiny_workspace, exported["batchmix"], out) == 1
    m = _metrics(out)
    assert m["status"] == "rejected" and m["reason"].startswith("probe_failed: causality (")
    assert m["val_bpb"] is None


@pytest.mark.parametrize("case, message", [
    ("wrong_vocab", "logits of shape (32, 128, 1000), expected (32, 128, 1024)"),
    ("nan", "non-finite logits"),
])
def test_bad_models_exit_2_with_one_line(tiny_workspace, exported, tmp_path, capsys, case,
                                         message):
    out = tmp_path / "metrics.json"
    assert _main(tiny_workspace, exported[case], out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    m = _metrics(out)
    assert m["status"] == "error" and m["val_bpb"] is None and message in m["reason"]


def test_corrupt_and_missing_model_files(tiny_workspace, exported, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    garbage = tmp_path / "garbage.pt2"
    garbage.write_bytes(os.urandom(4096))
    assert _main(tiny_workspace, garbage, out) == 2
    assert "not a torch.export archive" in capsys.readouterr().err
    assert _metrics(out)["status"] == "error"

    truncated = tmp_path / "truncated.pt2"
    truncated.write_bytes(exported["causal"].read_bytes()[:5000])
    assert _main(tiny_workspace, truncated, out) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1

    # Through the real command line, torch's own loader logging must not reach stderr.
    not_pt2 = tmp_path / "not_pt2.pt2"
    with zipfile.ZipFile(not_pt2, "w") as z:
        z.writestr("archive/data.txt", "a zip, but not an exported program")
    proc = run_evaluator(tiny_workspace, not_pt2, out)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"labwarden evaluate: error: cannot load {not_pt2} as a "
                               f"torch.export program")
    assert _metrics(out)["status"] == "error"

    assert _main(tiny_workspace, tmp_path / "absent.pt2", out) == 2
    assert "not found" in capsys.readouterr().err
    assert _metrics(out)["status"] == "error"


def test_archive_with_a_pickled_object_is_refused(exported, tmp_path):
    bad = tmp_path / "pickled.pt2"
    shutil.copy(exported["causal"], bad)
    with zipfile.ZipFile(exported["causal"]) as z:
        root = z.namelist()[0].split("/")[0]
    with zipfile.ZipFile(bad, "a") as z:
        z.writestr(f"{root}/data/constants/opaque_obj_0", b"cos\nsystem\n(S'echo hi'\ntR.")
    with pytest.raises(EvalInputError, match="pickled Python object"):
        load_program(bad)


def test_graph_calling_python_is_refused():
    graph = torch.fx.Graph()
    graph.placeholder("x")
    graph.output(graph.call_function(os.getcwd, ()))  # any Python function, not an operator
    with pytest.raises(EvalInputError, match="getcwd.*not a registered operator"):
        check_graph(torch.fx.GraphModule(torch.nn.Module(), graph))


def test_missing_validation_data_exits_2(workspace_copy, exported, tmp_path, capsys):
    data = data_dir_of(workspace_copy)
    shutil.rmtree(data / "val")
    # The seal notices first: the val files it lists are gone. Without a seal, the data check.
    out = tmp_path / "metrics.json"
    (data / "seal.json").unlink()
    assert evaluate.main(["--model", str(exported["causal"]), "--data-dir", str(data),
                          "--out", str(out), "--profile", "tiny"]) == 2
    assert "no seal" in capsys.readouterr().err
    assert evaluate.main(["--model", str(exported["causal"]), "--data-dir",
                          str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    assert _metrics(out)["status"] == "error"


def test_tampered_evaluator_code_is_refused(workspace_copy, exported, tmp_path):
    probes = workspace_copy / "eval_frozen" / "probes.py"
    # The cheat an agent would want: every probe passes.
    text = probes.read_text()
    tampered = text.replace('"passed": self.checks > 0', '"passed": True or self.checks > 0')
    assert tampered != text
    probes.write_text(tampered)
    out = tmp_path / "metrics.json"
    proc = run_evaluator(workspace_copy, exported["noncausal"], out)
    assert proc.returncode == 1
    m = _metrics(out)
    assert m["status"] == "rejected" and m["val_bpb"] is None
    assert m["reason"] == "seal_broken: changed eval_frozen/probes.py"


def test_changed_validation_shard_is_refused(workspace_copy, exported, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    shard = data_dir_of(workspace_copy) / "val" / "shard_00000.parquet"
    table = pq.read_table(shard)
    easy = pa.table({"name": table.column("name"),
                     "text": pa.array(["the the the"] * table.num_rows)})
    pq.write_table(easy, shard)  # an easier validation set would lower anyone's val_bpb
    out = tmp_path / "metrics.json"
    assert evaluate.main(["--model", str(exported["causal"]), "--data-dir",
                          str(data_dir_of(workspace_copy)), "--out", str(out)]) == 1
    m = _metrics(out)
    assert m["status"] == "rejected"
    assert m["reason"] == "seal_broken: changed val/shard_00000.parquet"


class _Touch:
    """Unpickling this creates a file: the stand-in for arbitrary code in a model file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_pickle_payload_in_model_file_never_runs(exported, tmp_path):
    import io

    src = exported["causal"]
    evil = tmp_path / "evil.pt2"
    marker = tmp_path / "payload_ran"
    payload = io.BytesIO()
    torch.save(_Touch(marker), payload)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(evil, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("sample_inputs/model.pt"):
                data = payload.getvalue()
            zout.writestr(info, data)

    # Plain torch.export.load falls back to a full unpickle and runs the payload...
    load = "import sys, torch; torch.export.load(sys.argv[1])"
    proc = subprocess.run([sys.executable, "-c", load, str(evil)],
                          capture_output=True, text=True, timeout=300)
    if not marker.exists():
        pytest.skip(f"this torch does not unpickle sample inputs unsafely: {proc.stderr[-200:]}")
    marker.unlink()
    # ...the evaluator's loader refuses the file and the payload does not run.
    with pytest.raises(EvalInputError, match="cannot load"):
        load_program(evil)
    assert not marker.exists()


def test_model_causal_only_at_the_old_probe_batch_sizes_is_rejected(tiny_workspace):
    causal, leaky = TinyAttention(), TinyAttention(mode="noncausal")
    leaky.load_state_dict(causal.state_dict())

    def sly(ids):  # causal in small batches (the old probes), reads the future when scored
        return (leaky if ids.shape[0] > 8 else causal)(ids)

    result = evaluate.evaluate_module(sly, data_dir_of(tiny_workspace), "tiny")
    assert result.status == "rejected" and result.val_bpb is None
    assert result.reason.startswith("probe_failed: causality (")
    assert [(p["name"], p["passed"]) for p in result.probes] == [("causality", False)]
    assert result.model.startswith("in-process")  # never a result, even when scored


def test_evaluator_needs_no_train_split(workspace_copy, exported, tmp_path):
    shutil.rmtree(data_dir_of(workspace_copy) / "train")  # not mounted in the eval sandbox
    out = tmp_path / "metrics.json"
    assert evaluate.main(["--model", str(exported["causal"]), "--data-dir",
                          str(data_dir_of(workspace_copy)), "--out", str(out)]) == 0
    assert _metrics(out)["status"] == "scored"


class _CallCounter(torch.nn.Module):
    """Causal for its first calls, then free to cheat: needs a buffer it writes to."""

    def __init__(self):
        super().__init__()
        self.inner = TinyAttention()
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    def forward(self, idx):
        self.calls.add_(1)
        return self.inner(idx) + 0.0 * self.calls


def test_stateful_model_is_refused(tmp_path):
    from ef_helpers import export_model

    path = export_model(_CallCounter(), tmp_path / "stateful.pt2")
    with pytest.raises(EvalInputError, match="writes to 'calls'.*stateless"):
        load_program(path)
