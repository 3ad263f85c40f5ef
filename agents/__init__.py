"""The research loop: LangGraph graph (planner, coder, reviewer), LLM clients, ledger, CLI.

Nothing is imported here: `agents.cli` is the console entry and must stay light.
"""
