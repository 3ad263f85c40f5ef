"""A local HTTP server speaking enough of Anthropic's Messages API for the real SDK.

Each test queues replies (status, JSON body, delay before answering); every request the
SDK makes is kept (headers and JSON body) so a test can check what was really sent.
Helpers build the failures a real night meets: API errors (401, 400, 404, 529), a
refusal, two tool calls in one turn, a tool call cut at max_tokens, a paused turn.

With `cache=True` the server keeps a prompt cache as the API documents it: a prefix
(tools, then system, then messages, in that order) up to a `cache_control` breakpoint is
written on first sight and read when a later request of the same model repeats it; the
usage of each reply then carries `cache_creation_input_tokens` and
`cache_read_input_tokens` (about 4 characters a token, writes split by `ttl` in
`cache_creation`) instead of the queued figures.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    body: dict[str, Any]
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def message(content: list[dict[str, Any]], *, usage: dict[str, int] | None = None,
            model: str = "claude-sonnet-5-5", stop_reason: str = "end_turn") -> dict[str, Any]:
    return {
        "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": stop_reason, "stop_sequence": None,
        "usage": usage or {"input_tokens": 10, "output_tokens": 5},
    }


def tool_use(name: str, data: dict[str, Any], ident: str = "toolu_1") -> dict[str, Any]:
    return {"type": "tool_use", "id": ident, "name": name, "input": data}


def overloaded() -> Reply:
    # retry-after-ms keeps the SDK's backoff short in tests.
    return Reply({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                 status=529, headers={"retry-after-ms": "20"})


def api_error(status: int, kind: str, text: str) -> Reply:
    return Reply({"type": "error", "error": {"type": kind, "message": text}}, status=status)


def unauthorized() -> Reply:
    return api_error(401, "authentication_error", "invalid x-api-key")


def unknown_model(model: str = "claude-nonexistent-9") -> Reply:
    return api_error(404, "not_found_error", f"model: {model}")


def bad_request(text: str = "max_tokens: must be at most 8192") -> Reply:
    return api_error(400, "invalid_request_error", text)


def refusal() -> Reply:
    return Reply(message([], stop_reason="refusal"))


def cut_tool_call(name: str) -> Reply:
    """A tool call cut at max_tokens: the API sends it with an empty input."""
    return Reply(message([tool_use(name, {})], stop_reason="max_tokens"))


def blocks(body: dict[str, Any]) -> list[Any]:
    """A request's content in the API's cache order: tools, system, then messages."""
    out: list[Any] = list(body.get("tools") or [])
    system = body.get("system") or []
    out += [{"type": "text", "text": system}] if isinstance(system, str) else list(system)
    for msg in body.get("messages") or []:
        content = msg["content"]
        out += [{"type": "text", "text": content}] if isinstance(content, str) else content
    return out


def prompt_text(body: dict[str, Any], index: int = 0) -> str:
    """The text of one message of a request, whether a string or a list of blocks."""
    content = body["messages"][index]["content"]
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text") or json.dumps(b) for b in content)


class FakeMessagesAPI:
    def __init__(self, *, cache: bool = False) -> None:
        self.cache = cache
        self._cached: set[str] = set()
        self.replies: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with api._lock:
                    api.requests.append({"path": self.path, "body": body})
                    api.headers.append({k.lower(): v for k, v in self.headers.items()})
                    reply = api.replies.pop(0) if api.replies else Reply(
                        {"type": "error", "error": {"type": "api_error", "message": "no reply"}},
                        status=500)
                    body_out = reply.body
                    if api.cache and reply.status == 200:
                        body_out = {**body_out, "usage": {
                            **body_out.get("usage", {}), **api._cache_usage(body)}}
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                data = json.dumps(body_out).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and hung up, as the test wanted

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _cache_usage(self, body: dict[str, Any]) -> dict[str, int]:
        parts = blocks(body)
        sizes = [len(json.dumps(b, sort_keys=True)) // 4 for b in parts]
        marks = [i for i, b in enumerate(parts) if isinstance(b, dict) and "cache_control" in b]

        def key(i: int) -> str:
            return json.dumps([body.get("model"), parts[:i + 1]], sort_keys=True, default=str)

        hit = next((i for i in reversed(marks) if key(i) in self._cached), -1)
        read = sum(sizes[:hit + 1])
        written = {"5m": 0, "1h": 0}
        start = hit + 1
        for i in (m for m in marks if m > hit):  # each segment in its breakpoint's cache
            written[parts[i]["cache_control"].get("ttl", "5m")] += sum(sizes[start:i + 1])
            start = i + 1
        write = sum(written.values())
        self._cached.update(key(i) for i in marks)
        return {"input_tokens": sum(sizes) - read - write, "cache_read_input_tokens": read,
                "cache_creation_input_tokens": write,
                "cache_creation": {"ephemeral_5m_input_tokens": written["5m"],
                                   "ephemeral_1h_input_tokens": written["1h"]}}

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeMessagesAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
