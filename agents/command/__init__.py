"""The command agent's parts: its settings, the scratch copy, the brief, the runner.

`agents.llm.command.CommandAgent` puts them together behind the ResearchAgent Protocol.
"""
