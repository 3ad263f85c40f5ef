"""The graph's nodes: plain functions `(state, runtime) -> partial state`, one job each."""

from agents.nodes.baseline import baseline
from agents.nodes.code import code
from agents.nodes.decide import decide
from agents.nodes.evaluate import evaluate
from agents.nodes.guard import guard
from agents.nodes.plan import plan
from agents.nodes.record import record
from agents.nodes.review import review
from agents.nodes.run import run

__all__ = ["baseline", "code", "decide", "evaluate", "guard", "plan", "record", "review", "run"]
