"""``--where`` is data, never code: the safe evaluator over the ``ls`` table (no tmux needed), and
properties over arbitrary expressions."""

from __future__ import annotations

import builtins
import string
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import squadnb.cli.where as where_module
from squadnb.cli.where import BadExpression, select

FRAME = pd.DataFrame({
    "title": pd.Series(["fix-login", "Fix-tests", "docs", "spare"], dtype="str"),
    "status": pd.Series(["ready", "paused", "ready", "new"], dtype="str"),
    "branch": pd.Series(["squadnb/fix-login", "squadnb/fix-tests", "squadnb/docs", ""], dtype="str"),
    "added": pd.Series([3, 0, 12, 0], dtype="int64"),
    "removed": pd.Series([1, 0, 0, 0], dtype="int64"),
    "created": pd.to_datetime(["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01"], utc=True),
    "alive": pd.Series([True, False, True, False], dtype="bool"),
})


def titles(expression: str) -> list[str]:
    return list(select(FRAME, expression)["title"])


@pytest.mark.parametrize("expression, expected", [
    ("status == 'ready' and added > 0", ["fix-login", "docs"]),
    ("status != 'paused' and alive", ["fix-login", "docs"]),
    ("alive", ["fix-login", "docs"]),
    ("not alive", ["Fix-tests", "spare"]),
    ("0 < added < 12", ["fix-login"]),
    ("added >= 3 or status == 'new'", ["fix-login", "docs", "spare"]),
    ("status in ['paused', 'new']", ["Fix-tests", "spare"]),
    ("status not in ('paused', 'new')", ["fix-login", "docs"]),
    ("title.str.startswith('fix')", ["fix-login"]),
    ("title.str.lower().str.startswith('fix')", ["fix-login", "Fix-tests"]),
    ("title.str.endswith('s')", ["Fix-tests", "docs"]),
    ("branch.str.contains('/fix')", ["fix-login", "Fix-tests"]),
    ("title.str.contains('.')", []),  # a plain substring, not a regular expression
    ("title.str.upper() == 'DOCS'", ["docs"]),
    ("created > '2026-02-15'", ["docs", "spare"]),
    ("added > -1 and removed == 0", ["Fix-tests", "docs", "spare"]),
    ("True", ["fix-login", "Fix-tests", "docs", "spare"]),
    ("title == None", []),
    ("(status == 'ready') and not (added > 5)", ["fix-login"]),
])
def test_allowed_expressions_select_rows(expression: str, expected: list[str]) -> None:
    assert titles(expression) == expected


@pytest.mark.parametrize("expression, reason", [
    ("@os.system('touch /tmp/x') == 0", "not an expression"),
    ("__import__('os').system('true') == 0", "calls are not allowed"),
    ("title.__class__ == 1", "attribute is not allowed"),
    ("title[0] == 'f'", "subscript is not allowed"),
    ("nosuchcolumn > 0", "is not a column"),
    ("os == 1", "is not a column"),
    ("(lambda: 1)() == 1", "calls are not allowed"),
    ("[t for t in title] == 1", "listcomp is not allowed"),
    ("added + 1 > 2", "binop is not allowed"),
    ("status == 'ready' & alive", "binop is not allowed"),
    ("title.str.replace('a', 'b') == 'x'", ".str.'replace' is not allowed"),
    ("title.str.startswith(title)", "takes one string literal"),
    ("status in title", "list or tuple of literals"),
    ("status in [title]", "list or tuple of literals"),
    ("status in ['a'] == True", "cannot be chained"),
    ("title > 5", "cannot evaluate it"),
    ("status", "true or false for each row"),
    ("added == b'x'", "bytes literal is not allowed"),
    ("status ===", "not an expression"),
    ("", "not an expression"),
    ("a\x00b", "not an expression"),
    ("(" * 300 + "alive" + ")" * 300, "not an expression"),
    ("alive " + "and alive " * 400, "longer than"),
])
def test_anything_else_is_refused_with_the_reason(expression: str, reason: str) -> None:
    with pytest.raises(BadExpression) as info:
        select(FRAME, expression)
    assert reason in str(info.value)
    assert str(info.value).startswith("bad --where expression ")


def test_the_message_quotes_at_most_80_characters_of_the_expression() -> None:
    expression = "nosuchcolumn_" + "x" * 200 + " == 1"
    with pytest.raises(BadExpression) as info:
        select(FRAME, expression)
    message = str(info.value)
    assert repr(expression[:80]) + "…" in message
    assert "x" * 81 not in message
    assert len(message) < 250


def test_control_characters_in_the_expression_are_escaped_in_the_message() -> None:
    with pytest.raises(BadExpression) as info:
        select(FRAME, "\x1b[31m == 1")
    assert "\x1b" not in str(info.value) and "\\x1b" in str(info.value)


# -- properties: nothing ever runs -----------------------------------------------------------------

CALLED: list[str] = []


def sentinel(*args: object, **kwargs: object) -> bool:
    CALLED.append("sentinel")
    return True


PIECES = [
    "sentinel()", "sentinel", "@sentinel", "__import__('os')", "open('{marker}', 'w')",
    "exec('open(\"{marker}\", \"w\")')", "eval('1')", "title.__class__.__mro__", "getattr(title, 'str')",
    "title.str.startswith('x')", "title.str.lower()", "status", "added", "alive", "'ready'", "3", "-2.5",
    "None", "True", "[1, 'a']", "('x',)", "lambda: sentinel()", "[sentinel() for _ in 'ab']",
    "{'a': sentinel()}", "title[0]", "`title`", "breakpoint()", "globals()", "sentinel.__call__()",
]
OPERATORS = [" == ", " != ", " < ", " >= ", " and ", " or ", " in ", " not in ", " + ", " @ ", ".", "(",
             ")", ", ", " if ", " else ", "not ", "[", "]", ":=", ";", "\n", " "]


@st.composite
def expressions(draw: st.DrawFn, marker: str) -> str:
    parts = draw(st.lists(st.one_of(
        st.sampled_from(PIECES).map(lambda p: p.replace("{marker}", marker)),
        st.sampled_from(OPERATORS),
        st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=12),
        st.text(max_size=12).map(repr),
        st.text(max_size=6),
    ), min_size=1, max_size=8))
    return "".join(parts)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_arbitrary_expressions_never_run_code(data: st.DataObject, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the expression, the sentinel (in the evaluator's own namespace and in builtins) is
    never called and no file appears: it either selects rows or is refused."""
    marker = tmp_path / "ran"
    monkeypatch.setattr(where_module, "sentinel", sentinel, raising=False)
    monkeypatch.setattr(builtins, "sentinel", sentinel, raising=False)
    CALLED.clear()
    expression = data.draw(expressions(str(marker)))
    try:
        chosen = select(FRAME, expression)
    except BadExpression as exc:
        assert str(exc).startswith("bad --where expression ")
        assert len(str(exc)) < 400
    else:
        assert set(chosen["title"]) <= set(FRAME["title"])
    assert CALLED == [] and not marker.exists()
