"""What a real night's API failures do to the Anthropic agent: the real SDK over real
HTTP against the local fake Messages API. Errors that no retry can fix stop the run at
once (or at the second time, for a bad request); transient ones back off and stop after
N in a row; each stop_reason is handled as the API documents it."""

from __future__ import annotations

import pytest
from fake_messages_api import (
    Reply,
    bad_request,
    cut_tool_call,
    message,
    overloaded,
    refusal,
    tool_use,
    unauthorized,
    unknown_model,
)
from test_claude_client import GOOD_DIFF, api, code_ctx, make_agent, plan_ctx  # noqa: F401

from agents.llm.base import (
    AgentError,
    AgentOutputError,
    AgentRefusal,
    AgentStop,
    Hypothesis,
    ReviewContext,
)


def hypothesis(text: str = "h", ident: str = "toolu_1") -> dict:
    return tool_use("propose_hypothesis", {"hypothesis": text, "rationale": "r"}, ident)


def agent_for(api, **overrides):  # noqa: F811 (the fixture's name)
    calls: list = []
    agent = make_agent(api, calls, **{"failure_backoff_s": 0.0, **overrides})
    return agent, calls


def test_a_rejected_key_stops_at_the_first_call(api):  # noqa: F811
    api.replies += [unauthorized()]
    agent, calls = agent_for(api)
    with pytest.raises(AgentStop) as e:
        agent.plan(plan_ctx())
    line = str(e.value)
    assert "\n" not in line and "401 authentication_error" in line
    assert "ANTHROPIC_API_KEY" in line and "labwarden run --resume" in line
    assert len(api.requests) == 1  # 401 is never retried, by the SDK or by us
    assert [u.ok for _, u in calls] == [False]


def test_an_unknown_model_stops_at_once_and_names_the_setting(api):  # noqa: F811
    api.replies += [unknown_model("claude-opus-9")]
    agent, _ = agent_for(api)
    with pytest.raises(AgentStop, match=r"404 not_found_error: model: claude-opus-9.*"
                                        r"\[agents.models\]"):
        agent.plan(plan_ctx())
    assert len(api.requests) == 1


def review_ctx(exp_id: str = "e1") -> ReviewContext:
    return ReviewContext(experiment_id=exp_id, hypothesis=Hypothesis("raise LR"),
                         diff=GOOD_DIFF, findings=[], files={})


def test_a_bad_request_fails_the_attempt_then_stops_the_second_time(api):  # noqa: F811
    api.replies += [bad_request(), bad_request()]
    agent, _ = agent_for(api)
    with pytest.raises(AgentError) as first:
        agent.plan(plan_ctx())
    assert not isinstance(first.value, AgentStop)  # this prompt may be the one at fault
    with pytest.raises(AgentStop, match="400 invalid_request_error.*2 in a row"):
        agent.plan(plan_ctx())
    assert len(api.requests) == 2


def test_a_reviewer_failing_on_every_patch_stops_though_others_answer(api):  # noqa: F811
    api.replies += [bad_request(), Reply(message([hypothesis()])), bad_request()]
    agent, _ = agent_for(api)
    with pytest.raises(AgentError):
        agent.review(review_ctx("e1"))
    assert agent.plan(plan_ctx()).text == "h"  # the planner's success is its own
    with pytest.raises(AgentStop, match="reviewer call .* 400 .*2 in a row"):
        agent.review(review_ctx("e2"))


def test_a_success_in_between_clears_the_count(api):  # noqa: F811
    api.replies += [bad_request(), Reply(message([hypothesis()], stop_reason="tool_use")),
                    bad_request()]
    agent, _ = agent_for(api)
    for expect in (AgentError, None, AgentError):
        if expect is None:
            assert agent.plan(plan_ctx()).text == "h"
            continue
        with pytest.raises(expect) as e:
            agent.plan(plan_ctx())
        assert not isinstance(e.value, AgentStop)


def test_transient_failures_back_off_and_recover_without_losing_the_attempt(api):  # noqa: F811
    # One round of SDK retries fails (2 x 529), the agent waits, the next round answers.
    api.replies += [overloaded(), overloaded(), Reply(message([hypothesis("after")]))]
    agent, calls = agent_for(api, max_retries=1, failure_backoff_s=3.0)
    waits: list[float] = []
    agent._sleep = waits.append
    assert agent.plan(plan_ctx()).text == "after"
    assert waits == [3.0] and len(api.requests) == 3
    assert [u.ok for _, u in calls] == [False, True]


def test_a_refusal_is_a_clear_failure_and_repeated_refusals_stop(api):  # noqa: F811
    api.replies += [refusal(), refusal()]
    agent, _ = agent_for(api, max_consecutive_failures=2)
    with pytest.raises(AgentRefusal, match="declined to answer"):
        agent.plan(plan_ctx())
    assert len(api.requests) == 1  # an empty turn is not sent back
    with pytest.raises(AgentStop, match="refusal.*2 in a row"):
        agent.plan(plan_ctx())


def test_two_tool_calls_each_get_a_tool_result(api):  # noqa: F811
    api.replies += [
        Reply(message([hypothesis("a", "toolu_a"), hypothesis("b", "toolu_b")],
                      stop_reason="tool_use")),
        Reply(message([hypothesis("c", "toolu_c")], stop_reason="tool_use")),
    ]
    agent, _ = agent_for(api)
    assert agent.plan(plan_ctx()).text == "c"
    sent = api.requests[1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    results = sent[2]["content"]
    assert [r["tool_use_id"] for r in results] == ["toolu_a", "toolu_b"]
    assert all(r["type"] == "tool_result" and r["is_error"] for r in results)
    assert "exactly once" in results[0]["content"]
    assert api.requests[0]["body"]["tool_choice"]["disable_parallel_tool_use"] is True


def test_a_tool_call_cut_at_max_tokens_is_asked_again_with_more_room(api, tmp_path):  # noqa: F811
    api.replies += [cut_tool_call("submit_patch"),
                    Reply(message([tool_use("submit_patch", {"diff": GOOD_DIFF,
                                                             "description": "lr"})]))]
    agent, _ = agent_for(api, max_tokens=1000)
    assert agent.code(code_ctx(tmp_path)).diff == GOOD_DIFF
    first, second = (r["body"] for r in api.requests)
    assert (first["max_tokens"], second["max_tokens"]) == (1000, 2000)
    assert second["messages"] == first["messages"]  # the cut turn is not part of it


def test_an_answer_cut_twice_fails_with_the_reason(api):  # noqa: F811
    api.replies += [cut_tool_call("propose_hypothesis"), cut_tool_call("propose_hypothesis"),
                    Reply(message([hypothesis()]))]
    agent, _ = agent_for(api, max_tokens=1000)
    with pytest.raises(AgentOutputError, match=r"cut \(max_tokens\) at max_tokens=2000"):
        agent.plan(plan_ctx())
    assert [r["body"]["max_tokens"] for r in api.requests] == [1000, 2000]


def test_a_paused_turn_is_continued(api):  # noqa: F811
    api.replies += [Reply(message([{"type": "text", "text": "working"}],
                                  stop_reason="pause_turn")),
                    Reply(message([hypothesis("resumed")]))]
    agent, _ = agent_for(api)
    assert agent.plan(plan_ctx()).text == "resumed"
    sent = api.requests[1]["body"]["messages"]
    assert sent[-1]["role"] == "assistant" and sent[-1]["content"][0]["text"] == "working"


def test_a_reviewer_refusal_never_approves(api):  # noqa: F811
    api.replies += [refusal()]
    agent, _ = agent_for(api)
    with pytest.raises(AgentOutputError):
        agent.review(review_ctx())
