"""Kept for old imports: the dispatcher moved to `labwarden.cli` (`python -m labwarden`)."""

from labwarden.cli import COMMANDS, main

__all__ = ["COMMANDS", "main"]

if __name__ == "__main__":
    import sys

    sys.exit(main())
