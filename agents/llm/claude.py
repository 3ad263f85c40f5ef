"""The Anthropic agent: Messages API, tool use for the hypothesis and the patch, structured
output (a JSON schema) for the review verdict.

Transport failures (429, 529 overloaded, 5xx, timeouts) are retried by the SDK itself
with exponential backoff (`max_retries`); a call that still fails raises `AgentError`.
Malformed answers (no tool call, a diff that does not parse or apply, JSON off-schema)
are sent back to the model with the reason, at most `max_format_retries` times.
Forced tool choice is not used: the newest models refuse it while thinking, so the tool
is offered and its absence counts as a malformed answer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from agents.config import AgentsConfig
from agents.llm.base import (
    AgentError,
    AgentOutputError,
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
    SYSTEM,
    VERDICT_SCHEMA,
    code_prompt,
    plan_prompt,
    review_prompt,
)
from labwarden.errors import InputError


class AnthropicAgent:
    """Planner, coder and reviewer on Claude models (one model per role)."""

    name = "anthropic"

    def __init__(self, config: AgentsConfig, *, on_usage: UsageSink,
                 api_key: str | None = None) -> None:
        import anthropic

        key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise InputError("the anthropic agent needs ANTHROPIC_API_KEY; "
                             "or run with --agent tuner (offline).")
        self.config = config
        self._on_usage = on_usage
        self._anthropic = anthropic
        self._client = anthropic.Anthropic(api_key=key, base_url=config.base_url,
                                           max_retries=config.max_retries,
                                           timeout=config.request_timeout_s)

    def models(self) -> dict[str, str]:
        return dict(self.config.models)

    # ------------------------------------------------------------------------- roles
    def plan(self, ctx: PlanContext) -> Hypothesis:
        system, user = plan_prompt(ctx, self.config.untrusted_budget_chars)

        def parse(data: dict[str, Any]) -> Hypothesis:
            text = str(data.get("hypothesis") or "").strip()
            if not text:
                raise ValueError("'hypothesis' is empty")
            return Hypothesis(text=text, rationale=str(data.get("rationale") or ""))

        return self._ask_tool("planner", ctx.experiment_id, system, user, HYPOTHESIS_TOOL, parse)

    def code(self, ctx: CodeContext) -> PatchProposal:
        user = code_prompt(ctx, self.config.untrusted_budget_chars)

        def parse(data: dict[str, Any]) -> PatchProposal:
            diff = validate_diff(str(data.get("diff") or ""), ctx.base_dir, ctx.editable)
            return PatchProposal(diff=diff, description=str(data.get("description") or ""))

        return self._ask_tool("coder", ctx.experiment_id, SYSTEM["coder"], user, PATCH_TOOL,
                              parse)

    def review(self, ctx: ReviewContext) -> Verdict:
        user = review_prompt(ctx, self.config.untrusted_budget_chars)
        messages: list[dict[str, Any]] = [{"role": "user", "content": user}]
        problem = ""
        for _ in range(self.config.max_format_retries + 1):
            resp = self._call("reviewer", ctx.experiment_id, SYSTEM["reviewer"], messages,
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
    def _ask_tool(self, role: Role, exp_id: str, system: str, user: str, tool: dict[str, Any],
                  parse: Callable[[dict[str, Any]], Any]) -> Any:
        messages: list[dict[str, Any]] = [{"role": "user", "content": user}]
        problem = ""
        for _ in range(self.config.max_format_retries + 1):
            resp = self._call(role, exp_id, system, messages, tools=[tool],
                              tool_choice={"type": "auto"})
            calls = [b for b in resp.content if b.type == "tool_use" and b.name == tool["name"]]
            messages.append({"role": "assistant", "content": resp.content})
            if not calls:
                problem = f"no call to {tool['name']}"
                messages.append({"role": "user",
                                 "content": f"Answer by calling the tool {tool['name']}."})
                continue
            try:
                return parse(dict(calls[0].input))
            except ValueError as e:
                problem = str(e)
            messages.append({"role": "user", "content": [{
                "type": "tool_result", "tool_use_id": calls[0].id, "is_error": True,
                "content": f"Not usable: {problem}. Call {tool['name']} again with a fix."}]})
        raise AgentOutputError(f"{role} gave no usable answer after "
                               f"{self.config.max_format_retries + 1} tries: {problem}")

    def _call(self, role: Role, exp_id: str, system: str, messages: list[dict[str, Any]],
              **kwargs: Any) -> Any:
        model = self.config.models[role]
        try:
            resp = self._client.messages.create(
                model=model, max_tokens=self.config.max_tokens, messages=messages,
                # The system prompt (with program.md) repeats across calls: cache it.
                system=[{"type": "text", "text": system,
                         "cache_control": {"type": "ephemeral"}}],
                **kwargs,
            )
        except self._anthropic.APIError as e:
            self._on_usage(exp_id, Usage(role=role, model=model, ok=False,
                                         note=f"{type(e).__name__}: {e}"[:300]))
            raise AgentError(f"{role} call to {model} failed after retries: "
                             f"{type(e).__name__}") from e
        u = resp.usage
        counts = {
            "input_tokens": int(u.input_tokens or 0),
            "output_tokens": int(u.output_tokens or 0),
            "cache_read": int(getattr(u, "cache_read_input_tokens", 0) or 0),
            "cache_write": int(getattr(u, "cache_creation_input_tokens", 0) or 0),
        }
        self._on_usage(exp_id, Usage(role=role, model=model, cost_usd=cost_usd(model, **counts),
                                     **counts))
        return resp
