"""Built-in rules. Each module holds one family; `builtin.RULES` lists them all.

The registry loads `guards.rules.builtin:RULES` through the same `module:attr` path a
workspace uses for its own plugins, so built-ins get no special treatment.
"""
