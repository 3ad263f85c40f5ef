"""The editable training code. Agents change it only through guarded patches."""
