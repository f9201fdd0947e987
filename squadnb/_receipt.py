"""The receipt line the demo agent prints for each prompt it receives, and how squadnb reads it back.

An agent that prints ``received prompt #<k>: <n> bytes, sha256 <16 hex digits>`` on a line of its
own, once per submitted prompt (``k`` counts from 1 in each run of the program), lets squadnb check
that a prompt arrived whole: the byte count and the digest of what the agent got must be those of what
squadnb pasted. Both ends import this module, so the format lives in one place. Standard library only:
the demo agent imports it at start.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

__all__ = ["Receipt", "last_receipt", "receipt_for", "receipt_line"]

_LINE = re.compile(r"^received prompt #(\d+): (\d+) bytes, sha256 ([0-9a-f]{16})$", re.MULTILINE)


class Receipt(NamedTuple):
    """One received prompt: the agent's count, its size in bytes and the start of its sha256."""

    number: int
    size: int
    digest: str


def receipt_for(data: bytes, number: int = 0) -> Receipt:
    """The receipt of prompt bytes ``data`` (the ``number`` is the agent's count)."""
    return Receipt(number, len(data), hashlib.sha256(data).hexdigest()[:16])


def receipt_line(number: int, data: bytes) -> str:
    """The line the agent prints when it receives prompt number ``number`` (no newline)."""
    receipt = receipt_for(data, number)
    return f"received prompt #{receipt.number}: {receipt.size} bytes, sha256 {receipt.digest}"


def last_receipt(pane_text: str) -> Receipt | None:
    """The receipt with the highest number in ``pane_text`` (lines are matched whole, so prompt text
    echoed inside another line never counts), or None."""
    found = [Receipt(int(m[1]), int(m[2]), m[3]) for m in _LINE.finditer(pane_text)]
    return max(found, default=None)
