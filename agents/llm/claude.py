"""The Anthropic agent: Messages API, tool use for the hypothesis and the patch, structured
output (a JSON schema) for the review verdict.

Failures, by what retrying could change:
- Transport failures (429, 529 overloaded, 5xx, timeouts) are retried by the SDK itself
  with exponential backoff (`max_retries`). When a call still fails, the agent waits
  (`failure_backoff_s`, doubled each time) and tries again; `max_consecutive_failures`
  of one kind in a row (of one role) raise `AgentStop`, which ends the run with one line.
- A rejected key (401), no access (403) or an unknown model (404) cannot get better by
  retrying: `AgentStop` at once. A bad request (400, 413, 422) may belong to one prompt:
  the attempt fails, and a second one in a row stops the run.
- `stop_reason` is read as the API documents it: `refusal` is a failed answer (and counts
  in the run of failures), `max_tokens` (a tool call cut to `{}`, JSON cut short) is asked
  once more with twice the limit, `pause_turn` is continued.
- Malformed answers (no tool call, two calls, a diff that does not parse or apply, JSON
  off-schema) are sent back to the model with the reason, at most `max_format_retries`
  times; every tool_use block of the turn gets its tool_result.
Forced tool choice is not used: the newest models refuse it while thinking, so the tool
is offered and its absence counts as a malformed answer.

Prompt caching: two breakpoints (1-hour cache), after the system prompt (role and
program.md, the same all run) and after the current files (the same until a change is
kept).
"""

from __future__ import annotations

import inspect
import json
import os
import time
from collections.abc import Callable
from typing import Any

from agents.config import AgentsConfig
from agents.llm.base import (
    AgentError,
    AgentOutputError,
    AgentRefusal,
    AgentStop,
    CodeContext,
    Hypothesis,
    PatchProposal,
    PlanContext,
    ReviewContext,
    Role,
    Usage,
    UsageSink,
    Verdict,
)
from agents.llm.diffcheck import validate_diff
from agents.llm.pricing import cost_usd
from agents.llm.prompts import (
    HYPOTHESIS_TOOL,
    PATCH_TOOL,
    VERDICT_SCHEMA,
    Prompt,
    code_prompt,
    diff_too_large,
    plan_prompt,
    review_prompt,
)
from labwarden.errors import InputError

SDK_FLOOR = "0.77.0"
"""The oldest `anthropic` release with `output_config` (structured outputs) in
`messages.create`; checked by running these tests against it."""
EPHEMERAL = {"type": "ephemeral", "ttl": "1h"}
"""An experiment trains for minutes (300 s by default) between two plans: a 5-minute cache
would be gone by the next one. The 1-hour cache costs 2x input to write, 1.25x for the
5-minute one, and is read back by every experiment of the hour."""
PAUSES_FOLLOWED = 3
MAX_BACKOFF_S = 900.0

# HTTP status -> (kind, what to do). "stop": no retry can help; "repeat": this request may
# be at fault, a second in a row stops; anything else is transient.
_STATUS = {
    401: ("authentication", "stop"), 403: ("permission", "stop"), 404: ("not found", "stop"),
    400: ("bad request", "repeat"), 413: ("bad request", "repeat"),
    422: ("bad request", "repeat"), 429: ("rate limit", "transient"),
}
_HINT = {
    "authentication": "check ANTHROPIC_API_KEY",
    "permission": "this key has no access to the model or endpoint",
    "not found": "check the model id ([agents.models] in labwarden.toml or "
                 "LABWARDEN_<ROLE>_MODEL) and ANTHROPIC_BASE_URL",
    "bad request": "check the model ids and [agents] settings (max_tokens)",
    "refusal": "the model declined every request",
}


def classify(error: Exception) -> tuple[str, str]:
    """(kind, policy) of a failed call; see `_STATUS`."""
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        if status in _STATUS:
            return _STATUS[status]
        return ("server error" if status >= 500 else f"HTTP {status}"), "transient"
    return "connection", "transient"


def _api_message(error: Exception) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        text = f"{err.get('type', '')}: {err.get('message', '')}"
    else:
        text = f"{type(error).__name__}: {error}"
    status = getattr(error, "status_code", None)
    return " ".join((f"{status} {text}" if status else text).split())[:240]


class AnthropicAgent:
    """Planner, coder and reviewer on Claude models (one model per role)."""

    name = "anthropic"

    def __init__(self, config: AgentsConfig, *, on_usage: UsageSink,
                 api_key: str | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        import anthropic

        key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise InputError("the anthropic agent needs ANTHROPIC_API_KEY; "
                             "or run with --agent tuner (offline).")
        self.config = config
        self._on_usage = on_usage
        self._anthropic = anthropic
        self._sleep = sleep
        self._streaks: dict[str, tuple[str, int]] = {}
        """Per role, (kind, count) of its failures in a row so far; a good answer of that
        role clears it (a reviewer failing on every patch stops the run even though the
        planner and coder in between answer)."""
        self._client = anthropic.Anthropic(api_key=key, base_url=config.base_url,
                                           max_retries=config.max_retries,
                                           timeout=config.request_timeout_s)
        if "output_config" not in inspect.signature(self._client.messages.create).parameters:
            # Found now, not after a planner and a coder were paid and the reviewer's call
            # raised TypeError.
            raise InputError(f"the installed anthropic SDK ({anthropic.__version__}) has no "
                             f"structured outputs (output_config); install "
                             f"'anthropic>={SDK_FLOOR}'.")

    def models(self) -> dict[str, str]:
        return dict(self.config.models)

    # ------------------------------------------------------------------------- roles
    def plan(self, ctx: PlanContext) -> Hypothesis:
        prompt = plan_prompt(ctx, self.config.untrusted_budget_chars)

        def parse(data: dict[str, Any]) -> Hypothesis:
            text = str(data.get("hypothesis") or "").strip()
            if not text:
                raise ValueError("'hypothesis' is empty")
            return Hypothesis(text=text, rationale=str(data.get("rationale") or ""))

        return self._ask_tool("planner", ctx.experiment_id, prompt, HYPOTHESIS_TOOL, parse)

    def code(self, ctx: CodeContext) -> PatchProposal:
        prompt = code_prompt(ctx, self.config.untrusted_budget_chars)

        def parse(data: dict[str, Any]) -> PatchProposal:
            diff = validate_diff(str(data.get("diff") or ""), ctx.base_dir, ctx.editable)
            return PatchProposal(diff=diff, description=str(data.get("description") or ""))

        return self._ask_tool("coder", ctx.experiment_id, prompt, PATCH_TOOL, parse)

    def review(self, ctx: ReviewContext) -> Verdict:
        too_large = diff_too_large(ctx.diff)
        if too_large:
            return Verdict("reject", too_large)
        prompt = review_prompt(ctx, self.config.untrusted_budget_chars)
        messages = _first_messages(prompt)
        problem = ""
        for _ in range(self.config.max_format_retries + 1):
            resp = self._answer("reviewer", ctx.experiment_id, prompt, messages,
                                output_config={"format": {"type": "json_schema",
                                                          "schema": VERDICT_SCHEMA}})
            text = "".join(b.text for b in resp.content if b.type == "text")
            try:
                data = json.loads(text)
                decision = data["decision"]
                if decision not in ("approve", "revise", "reject"):
                    raise ValueError(f"decision must be approve, revise or reject: {decision!r}")
                if decision == "revise" and ctx.final_round:
                    raise ValueError("this is the last round: answer approve or reject")
                return Verdict(decision, str(data.get("reasons", "")))
            except (ValueError, KeyError, TypeError) as e:
                problem = f"{type(e).__name__}: {e}"
            messages += [{"role": "assistant", "content": resp.content},
                         {"role": "user", "content": f"Your answer was not usable ({problem}). "
                          "Answer again with JSON matching the schema."}]
        raise AgentOutputError(f"reviewer gave no usable verdict: {problem}")

    # ---------------------------------------------------------------------- plumbing
    def _ask_tool(self, role: Role, exp_id: str, prompt: Prompt, tool: dict[str, Any],
                  parse: Callable[[dict[str, Any]], Any]) -> Any:
        name = tool["name"]
        messages = _first_messages(prompt)
        problem = ""
        for _ in range(self.config.max_format_retries + 1):
            resp = self._answer(role, exp_id, prompt, messages, tools=[tool],
                                tool_choice={"type": "auto", "disable_parallel_tool_use": True})
            uses = [b for b in resp.content if b.type == "tool_use"]
            calls = [b for b in uses if b.name == name]
            if len(calls) == 1:
                try:
                    return parse(dict(calls[0].input))
                except ValueError as e:
                    problem = str(e)
            elif calls:
                problem = f"{len(calls)} calls to {name} in one turn; call it exactly once"
            else:
                problem = f"no call to {name}"
            messages.append({"role": "assistant", "content": resp.content})
            if uses:
                # The API wants a tool_result for every tool_use of the turn, in one message.
                messages.append({"role": "user", "content": [{
                    "type": "tool_result", "tool_use_id": b.id, "is_error": True,
                    "content": f"Not usable: {problem}. Call {name} once, with a fix."}
                    for b in uses]})
            else:
                messages.append({"role": "user", "content": f"Answer by calling the tool {name}."})
        raise AgentOutputError(f"{role} gave no usable answer after "
                               f"{self.config.max_format_retries + 1} tries: {problem}")

    def _answer(self, role: Role, exp_id: str, prompt: Prompt,
                messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        """One complete assistant turn, its stop_reason dealt with as the API documents."""
        limit = self.config.max_tokens
        turn = list(messages)
        pauses = 0
        while True:
            resp = self._call(role, exp_id, prompt.system, turn, max_tokens=limit, **kwargs)
            stop = resp.stop_reason
            if stop == "refusal":
                self._failed("refusal", role, f"the {role} model declined to answer "
                             "(stop_reason refusal)", "transient")
                raise AgentRefusal(f"the {role} model declined to answer (stop_reason refusal)")
            if stop == "pause_turn" and pauses < PAUSES_FOLLOWED:
                # A long server-side turn paused: send it back as is and let it go on.
                pauses += 1
                turn = [*turn, {"role": "assistant", "content": resp.content}]
                continue
            if stop in ("max_tokens", "model_context_window_exceeded"):
                if stop == "max_tokens" and limit == self.config.max_tokens:
                    limit *= 2  # a cut answer is unusable ({} for a tool call): more room
                    continue
                raise AgentOutputError(f"{role}'s answer was cut ({stop}) at max_tokens={limit}; "
                                       "raise [agents] max_tokens")
            self._streaks.pop(role, None)
            return resp

    def _failed(self, kind: str, role: Role, line: str, policy: str) -> int:
        """Count one more failure of `kind` in a row; raise AgentStop when the run should
        end. Returns the count."""
        previous, count = self._streaks.get(role, ("", 0))
        count = count + 1 if previous == kind else 1
        self._streaks[role] = (kind, count)
        limit = self.config.max_consecutive_failures
        if policy == "stop" or (policy == "repeat" and count >= min(2, limit)) or count >= limit:
            hint = _HINT.get(kind, "the API kept failing; try again later")
            times = "" if count == 1 else f", {count} in a row"
            raise AgentStop(f"anthropic API: {line}{times}; {hint}, then "
                            "'labwarden run --resume'")
        return count

    def _call(self, role: Role, exp_id: str, system: str, messages: list[dict[str, Any]],
              *, max_tokens: int, **kwargs: Any) -> Any:
        model = self.config.models[role]
        while True:
            try:
                resp = self._client.messages.create(
                    model=model, max_tokens=max_tokens, messages=messages,
                    system=[{"type": "text", "text": system, "cache_control": EPHEMERAL}],
                    timeout=self.config.request_timeout_s, **kwargs)
            except self._anthropic.APIError as e:
                detail = _api_message(e)
                self._on_usage(exp_id, Usage(role=role, model=model, ok=False, note=detail[:300]))
                kind, policy = classify(e)
                retried = (f" after {self.config.max_retries} retries"
                           if policy == "transient" else "")
                line = f"{role} call to {model} failed{retried}: {detail}"
                count = self._failed(kind, role, line, policy)
                if policy != "transient":
                    raise AgentError(line) from e
                self._sleep(min(self.config.failure_backoff_s * 2 ** (count - 1), MAX_BACKOFF_S))
                continue
            break
        u = resp.usage
        counts = {
            "input_tokens": int(u.input_tokens or 0),
            "output_tokens": int(u.output_tokens or 0),
            "cache_read": int(getattr(u, "cache_read_input_tokens", 0) or 0),
            "cache_write": int(getattr(u, "cache_creation_input_tokens", 0) or 0),
        }
        split = getattr(u, "cache_creation", None)
        # Without the API's split, the writes are ours: all to the 1-hour cache.
        write_1h = (int(getattr(split, "ephemeral_1h_input_tokens", 0) or 0) if split
                    else counts["cache_write"])
        cost = cost_usd(model, **counts, cache_write_1h=write_1h)
        self._on_usage(exp_id, Usage(role=role, model=model, cost_usd=cost, **counts))
        return resp


def _first_messages(prompt: Prompt) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [
        {"type": "text", "text": prompt.stable, "cache_control": EPHEMERAL},
        {"type": "text", "text": prompt.rest},
    ]}]
