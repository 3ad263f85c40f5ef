"""`--profile` values, checked the same way by every command."""

from __future__ import annotations

from labwarden.errors import InputError


def check_profile(profile: str, option: str = "--profile") -> str:
    """`profile` when it is a known profile, else a one-line InputError listing them."""
    from eval_frozen.profiles import PROFILES

    if profile not in PROFILES:
        raise InputError(f"{option} {profile!r}: unknown profile; known: "
                         f"{', '.join(PROFILES)}.")
    return profile
