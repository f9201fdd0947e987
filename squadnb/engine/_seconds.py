"""Durations as the engine takes them: seconds (``int``/``float``) or a ``timedelta``, always finite.

NaN and infinity are refused everywhere a duration is taken: a NaN deadline compares false with every
clock reading (it would cancel everything or nothing), and an infinite one overflows the loop's timers.
Each error names the parameter.
"""

from __future__ import annotations

import math
from datetime import timedelta

__all__ = ["Seconds", "check_timeout", "finite_seconds", "non_negative_seconds"]

Seconds = float | timedelta


def finite_seconds(value: Seconds, what: str) -> float:
    """``value`` as float seconds.

    :raises ValueError: ``value`` is NaN or infinite (the message names ``what``).
    :raises TypeError: ``value`` is neither a number nor a ``timedelta``.
    """
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"{what} must be a finite number of seconds, got {value!r}")
    return seconds


def non_negative_seconds(value: Seconds, what: str) -> float:
    """``value`` as float seconds.

    :raises ValueError: ``value`` is negative, NaN or infinite (the message names ``what``).
    """
    seconds = finite_seconds(value, what)
    if seconds < 0:
        raise ValueError(f"{what} must not be negative, got {value!r}")
    return seconds


def check_timeout(timeout: Seconds | None, what: str = "timeout") -> float | None:
    """A per-operation limit as float seconds, ``None`` for no limit.

    :raises ValueError: zero, negative, NaN or infinite (use ``None`` for no limit).
    """
    if timeout is None:
        return None
    seconds = finite_seconds(timeout, what)
    if not seconds > 0:
        raise ValueError(f"{what} must be positive seconds or None (no limit), got {timeout!r}")
    return seconds
