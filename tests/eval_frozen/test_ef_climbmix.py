"""The climbmix source against a local HTTP server: parallel download, retry, atomic, pinned val."""

from __future__ import annotations

import http.server
import threading
from dataclasses import replace
from functools import partial

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ef_helpers import MINI

from eval_frozen.errors import EvalInputError
from eval_frozen.prepare import prepare
from eval_frozen.seal import verify
from eval_frozen.shards import list_shards
from eval_frozen.sources.climbmix import VAL_SHARD, ClimbmixSource


class _Handler(http.server.SimpleHTTPRequestHandler):
    failures: dict[str, int] = {}  # path -> how many more requests fail with 503
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.requests.append(self.path)
        if self.failures.get(self.path, 0) > 0:
            self.failures[self.path] -= 1
            self.send_error(503, "try again")
            return
        super().do_GET()

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture()
def server(tmp_path):
    """Serves tmp_path/www on 127.0.0.1: three parquet shards written with pyarrow."""
    from pydoc_data.topics import topics

    www = tmp_path / "www"
    www.mkdir()
    texts = [topics[k] for k in sorted(topics)]
    for index, part in ((0, texts[0::3]), (1, texts[1::3]), (VAL_SHARD, texts[2::3])):
        pq.write_table(pa.table({"text": part}), www / f"shard_{index:05d}.parquet")
    handler = type("H", (_Handler,), {"failures": {}, "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler, www
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_download_retries_and_pins_validation(server, tmp_path):
    url, handler, www = server
    handler.failures["/shard_00001.parquet"] = 1  # fails once, then succeeds
    profile = replace(MINI, climbmix_train_shards=2)
    data = tmp_path / "data"
    meta = prepare(profile, data, f"climbmix:{url}", log=lambda _: None)

    assert [p.name for p in list_shards(data / "train")] == ["shard_00000.parquet",
                                                             "shard_00001.parquet"]
    assert [p.name for p in list_shards(data / "val")] == [f"shard_{VAL_SHARD:05d}.parquet"]
    for p in list_shards(data / "train") + list_shards(data / "val"):
        assert p.read_bytes() == (www / p.name).read_bytes()
    assert handler.requests.count("/shard_00001.parquet") == 2
    assert not list(data.rglob("*.tmp"))
    assert meta["source"]["val_docs"] > 0 and meta["source"]["train_docs"] > 0
    assert verify(data)

    # Idempotent: a second prepare downloads nothing.
    before = len(handler.requests)
    prepare(profile, data, f"climbmix:{url}", log=lambda _: None)
    assert len(handler.requests) == before


def test_download_gives_up_with_a_clear_error(server, tmp_path):
    url, handler, _ = server
    handler.failures["/shard_00000.parquet"] = 99
    source = ClimbmixSource(url, backoff_s=0.01)
    with pytest.raises(EvalInputError, match="could not download .*shard_00000.parquet after 5"):
        source.materialize(tmp_path, MINI, log=lambda _: None)
    assert not (tmp_path / "train" / "shard_00000.parquet").exists()


def test_corrupt_download_is_retried_not_kept(server, tmp_path):
    url, handler, www = server
    good = (www / "shard_00000.parquet").read_bytes()
    (www / "shard_00000.parquet").write_bytes(b"PAR1 this is not parquet")
    source = ClimbmixSource(url, backoff_s=0.01)
    with pytest.raises(EvalInputError, match="could not download"):
        source.materialize(tmp_path, MINI, log=lambda _: None)
    assert not (tmp_path / "train" / "shard_00000.parquet").exists()
    (www / "shard_00000.parquet").write_bytes(good)
    source.materialize(tmp_path, MINI, log=lambda _: None)
    assert (tmp_path / "train" / "shard_00000.parquet").read_bytes() == good
