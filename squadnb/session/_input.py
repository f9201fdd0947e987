"""What squadnb accepts from a user as an instance title or a prompt: the one policy the Python API,
the operations, the form and the command all apply.

**Prompts** are pasted whole into the agent's pane (``load-buffer`` + ``paste-buffer -p -r``: one
bracketed paste, newlines kept as newlines, then Enter), so the text must not be able to end the paste
early or act as keys. :func:`check_prompt` normalises ``\\r\\n`` to ``\\n`` and **refuses** (never strips,
so what arrives is exactly what was asked for) with :class:`~squadnb.errors.InvalidPrompt`:

- a value that is not a ``str``, or only whitespace;
- the bracketed-paste markers ``ESC[200~`` / ``ESC[201~`` (named as such);
- any other control character except newline and tab: C0 (``U+0000``–``U+001F``, a lone ``\\r``
  included), ``DEL`` and C1 (``U+0080``–``U+009F``; ``U+009B`` is an 8-bit CSI);
- lone surrogates (not encodable text).

Other Unicode (bidi marks, zero-width joiners, emoji) is prompt text and passes unchanged.

**Titles** name a branch, a tmux session and a line of ``squadnb ls``: :func:`check_title` refuses
(:class:`~squadnb.errors.InvalidTitle`) a non-string, an empty or blank title, one longer than
:data:`TITLE_MAX` characters, and any character of Unicode category ``Cc`` (C0/C1 controls: escape
sequences, ``U+0085``), ``Cf`` (format: bidi overrides such as ``U+202E``, zero-width characters),
``Cs`` (lone surrogates), ``Co`` (private use), ``Cn`` (unassigned, noncharacters such as
``U+FFFF``), ``Zl`` or ``Zp`` (line and paragraph separators): none of them shows as itself in a
table or a terminal.

Error messages never quote more than :data:`SHOWN_MAX` characters of the bad value (:func:`shown`).
"""

from __future__ import annotations

import unicodedata

from squadnb.errors import InvalidPrompt, InvalidTitle

__all__ = ["SHOWN_MAX", "TITLE_MAX", "check_prompt", "check_title", "shown"]

#: the longest title accepted (tmux and git take far longer names; a table does not)
TITLE_MAX = 100
#: the most characters of a bad value an error message quotes
SHOWN_MAX = 80
PASTE_MARKERS = ("\x1b[200~", "\x1b[201~")
_TITLE_REFUSED = {"Cc": "control character", "Cf": "format character", "Cs": "lone surrogate",
                  "Co": "private-use character", "Cn": "unassigned character",
                  "Zl": "line separator", "Zp": "paragraph separator"}


def shown(value: object) -> str:
    """``repr(value)`` cut to :data:`SHOWN_MAX` characters (``…`` marks a cut), safe to print: the
    repr escapes control characters."""
    text = repr(value)
    return text if len(text) <= SHOWN_MAX else text[:SHOWN_MAX - 1] + "…"


def _codepoint(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" ({name})" if name else "")


def check_prompt(text: object, title: str | None = None) -> str:
    """``text`` as it will be pasted (``\\r\\n`` → ``\\n``), or :class:`InvalidPrompt` naming the
    instance ``title`` (when given), the offending character and its position in ``text``.

    :param text: the prompt a user gave.
    :param title: the instance it is for, named in the error.
    :raises InvalidPrompt: the prompt is not a string, is blank, holds a paste marker or a control
        character other than newline and tab, or a lone surrogate.
    """
    who = f"instance {shown(title)}: " if title is not None else ""
    if not isinstance(text, str):
        raise InvalidPrompt(f"{who}a prompt must be a str, not {type(text).__name__}")
    if not text.strip():
        raise InvalidPrompt(f"{who}the prompt is empty")
    for marker in PASTE_MARKERS:
        at = text.find(marker)
        if at >= 0:
            raise InvalidPrompt(f"{who}the prompt holds the bracketed-paste marker "
                                f"ESC{marker[1:]!s} at position {at} (it would end the paste early)")
    for at, ch in enumerate(text):
        code = ord(ch)
        if ch in "\n\t" or (ch == "\r" and text[at + 1:at + 2] == "\n"):
            continue
        if code < 0x20 or 0x7F <= code <= 0x9F:
            raise InvalidPrompt(f"{who}the prompt has the control character {_codepoint(ch)} at "
                                f"position {at}; only newline and tab are allowed")
        if 0xD800 <= code <= 0xDFFF:
            raise InvalidPrompt(f"{who}the prompt has a lone surrogate U+{code:04X} at position {at}")
    return text.replace("\r\n", "\n")


def check_title(title: object) -> str:
    """``title`` unchanged when squadnb accepts it as an instance title.

    :raises InvalidTitle: not a string, blank, longer than :data:`TITLE_MAX` characters, or holding a
        character of category Cc, Cf, Cs, Co, Cn, Zl or Zp (the message names it and its position).
    """
    if not isinstance(title, str):
        raise InvalidTitle(f"a title must be a str, not {type(title).__name__}")
    if not title.strip():
        raise InvalidTitle("an instance needs a non-empty title")
    if len(title) > TITLE_MAX:
        raise InvalidTitle(f"title {shown(title)} has {len(title)} characters; at most {TITLE_MAX} "
                           "are allowed")
    for at, ch in enumerate(title):
        kind = _TITLE_REFUSED.get(unicodedata.category(ch))
        if kind is not None:
            raise InvalidTitle(f"title {shown(title)} has the {kind} {_codepoint(ch)} at position "
                               f"{at}")
    return title
