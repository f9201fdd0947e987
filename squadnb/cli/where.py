"""``--where``: a filter over the ``ls`` table that is data, never code.

The expression is parsed with :mod:`ast` and evaluated by walking the tree over the DataFrame's
columns, vectorised; nothing is ever compiled, executed or looked up in a namespace. Allowed:

- the table's column names (``title``, ``status``, ``added``, …) and literals: strings, numbers,
  ``True``, ``False``, ``None`` (a leading ``-`` on a number too);
- comparisons ``== != < <= > >=``, chained (``0 < added < 10``); ``x == None`` / ``x != None`` test
  for a missing value;
- ``in`` / ``not in`` with a list or tuple of literals (``status in ['ready', 'paused']``);
- ``and``, ``or``, ``not``, parentheses; a boolean column alone (``alive``);
- on a text column, ``.str.startswith(s)``, ``.str.endswith(s)``, ``.str.contains(s)`` (plain
  substring, not a regular expression) with string literals, and ``.str.lower()`` / ``.str.upper()``
  / ``.str.strip()``, which can be chained (``title.str.lower().str.startswith('fix')``).

Anything else — other attributes, calls, subscripts, ``@`` names, names that are not columns,
lambdas, comprehensions, operators — is refused with :class:`BadExpression` before anything is
evaluated. Its message quotes at most the first :data:`~squadnb.cli.output.QUOTE` characters of the expression (and at
most 30 of a name it refuses).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from squadnb.cli.output import QUOTE, clip

__all__ = ["BadExpression", "select"]

#: longer expressions are refused unparsed (a deep nest of brackets would exhaust the parser's stack)
MAX_LENGTH = 2000

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_TEST_METHODS = {"startswith", "endswith", "contains"}  # one string literal argument
_TEXT_METHODS = {"lower", "upper", "strip"}  # no argument


class BadExpression(ValueError):
    """The ``--where`` expression is not one the filter allows (or does not give one true/false per
    row); the message says why and quotes at most :data:`QUOTE` characters of it."""


def select(frame: pd.DataFrame, expression: str) -> pd.DataFrame:
    """The rows of ``frame`` for which ``expression`` holds, in order.

    :raises BadExpression: the expression does not parse, uses anything not allowed (see the module
        docstring), or gives something other than one true/false per row.
    """
    return frame[_mask(frame, expression)]


def _mask(frame: pd.DataFrame, expression: str) -> pd.Series:
    import pandas as pd

    tree = _parse(expression)
    _Check(frame.columns, expression).visit(tree)
    try:
        value = _evaluate(tree.body, frame)
    except (TypeError, ValueError, ArithmeticError) as exc:  # title > 5, added > 10**30: pandas refuses
        raise BadExpression(_message(expression, f"cannot evaluate it: {_first_line(exc)}")) from None
    if isinstance(value, (bool, type(None))):
        return pd.Series(bool(value), index=frame.index)
    if isinstance(value, pd.Series) and pd.api.types.is_bool_dtype(value.dtype):
        return value.fillna(False).astype(bool)
    raise BadExpression(_message(expression, "it does not give true or false for each row "
                                             "(compare a column, e.g. added > 0)"))


def _message(expression: str, reason: str) -> str:
    return f"bad --where expression {clip(expression)}: {reason}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:QUOTE]


def _parse(expression: str) -> ast.Expression:
    if len(expression) > MAX_LENGTH:
        raise BadExpression(_message(expression, f"longer than {MAX_LENGTH} characters"))
    try:
        return ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        reason = exc.msg if isinstance(exc, SyntaxError) else type(exc).__name__
        raise BadExpression(_message(expression, f"not an expression ({reason})")) from None


class _Check(ast.NodeVisitor):
    """Refuses every node the filter does not allow, before anything is evaluated."""

    def __init__(self, columns: Iterable[str], expression: str) -> None:
        self.columns = set(columns)
        self.expression = expression

    def refuse(self, what: str) -> BadExpression:
        return BadExpression(_message(self.expression, what))

    def generic_visit(self, node: ast.AST) -> None:
        raise self.refuse(f"{type(node).__name__.lower()} is not allowed (only columns, literals, "
                          "comparisons, and/or/not, in [...] and .str methods)")

    def visit_Expression(self, node: ast.Expression) -> None:
        self.visit(node.body)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        for value in node.values:
            self.visit(value)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            self.visit(node.operand)
        elif isinstance(node.op, (ast.USub, ast.UAdd)) and _is_number(node.operand):
            return
        else:
            raise self.refuse(f"the operator {type(node.op).__name__} is not allowed")

    def visit_Compare(self, node: ast.Compare) -> None:
        self.visit(node.left)
        for op, right in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)) and len(node.ops) > 1:
                raise self.refuse("'in' cannot be chained with another comparison; join them "
                                  "with and")
            if isinstance(op, (ast.In, ast.NotIn)):
                if not (isinstance(right, (ast.List, ast.Tuple))
                        and all(_is_literal(e) for e in right.elts)):
                    raise self.refuse("'in' needs a list or tuple of literals, e.g. "
                                      "status in ['ready', 'paused']")
            elif type(op) in _COMPARE:
                self.visit(right)
            else:
                raise self.refuse(f"the comparison {type(op).__name__} is not allowed")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id not in self.columns:
            raise self.refuse(f"{clip(node.id, 30)} is not a column (columns: "
                              f"{', '.join(sorted(self.columns))})")

    def visit_Constant(self, node: ast.Constant) -> None:
        if not _is_literal(node):
            raise self.refuse(f"a {type(node.value).__name__} literal is not allowed")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute)
                and func.value.attr == "str"):
            raise self.refuse("calls are not allowed, except .str methods of a column "
                              "(e.g. title.str.startswith('fix'))")
        if func.attr in _TEST_METHODS:
            wanted = 1
        elif func.attr in _TEXT_METHODS:
            wanted = 0
        else:
            raise self.refuse(f".str.{clip(func.attr, 30)} is not allowed (only "
                              f"{', '.join(sorted(_TEST_METHODS | _TEXT_METHODS))})")
        if node.keywords or len(node.args) != wanted or not all(
                isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args):
            raise self.refuse(f".str.{func.attr}() takes {'one string literal' if wanted else 'nothing'}")
        self.visit(func.value.value)


def _is_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        value = node.value
        return value is None or (isinstance(value, (str, int, float, bool)) and not isinstance(value, complex))
    return _is_number(node) or (isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd))
                                and _is_number(node.operand))


def _is_number(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool))


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.UnaryOp):
        value = _literal(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    assert isinstance(node, ast.Constant)
    return node.value


def _evaluate(node: ast.AST, frame: pd.DataFrame) -> Any:
    """The value of a checked node: a Series (per row) or a plain literal."""
    if isinstance(node, ast.Name):
        return frame[node.id]
    if isinstance(node, (ast.Constant, ast.UnaryOp)) and _is_literal(node):
        return _literal(node)
    if isinstance(node, ast.UnaryOp):  # not
        value = _evaluate(node.operand, frame)
        return ~_as_mask(value, frame) if _is_series(value) else not value
    if isinstance(node, ast.BoolOp):
        values = [_as_mask(_evaluate(v, frame), frame) for v in node.values]
        combined = values[0]
        for value in values[1:]:
            combined = combined & value if isinstance(node.op, ast.And) else combined | value
        return combined
    if isinstance(node, ast.Compare):
        return _compare(node, frame)
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Attribute)
        strings = _evaluate(node.func.value.value, frame)
        if not _is_series(strings):
            raise TypeError(".str needs a column")
        accessor = strings.astype("string").str
        args = [_literal(a) for a in node.args]
        if node.func.attr == "contains":
            return accessor.contains(args[0], regex=False)
        return getattr(accessor, node.func.attr)(*args)
    raise AssertionError(f"unchecked node {type(node).__name__}")  # _Check refused it already


def _compare(node: ast.Compare, frame: pd.DataFrame) -> Any:
    """A comparison, chained ones joined by and; ``in`` stands alone (checked)."""
    left = _evaluate(node.left, frame)
    op = node.ops[0]
    if isinstance(op, (ast.In, ast.NotIn)):
        choices = [_literal(e) for e in node.comparators[0].elts]  # type: ignore[attr-defined]
        held = left.isin(choices) if _is_series(left) else left in choices
        return ~held if isinstance(op, ast.NotIn) else held
    result: Any = None
    for op, right_node in zip(node.ops, node.comparators):
        right = _evaluate(right_node, frame)
        held = _compare_pair(type(op), left, right)
        result = held if result is None else _as_mask(result, frame) & _as_mask(held, frame)
        left = right
    return result


def _compare_pair(op: type[ast.cmpop], left: Any, right: Any) -> Any:
    if (left is None or right is None) and op in (ast.Eq, ast.NotEq):
        other = right if left is None else left
        if _is_series(other):
            return other.isna() if op is ast.Eq else other.notna()
    return _COMPARE[op](left, right)


def _is_series(value: Any) -> bool:
    import pandas as pd

    return isinstance(value, pd.Series)


def _as_mask(value: Any, frame: pd.DataFrame) -> Any:
    """A per-row truth value: a boolean Series (missing values false), or a plain bool."""
    import pandas as pd

    if not _is_series(value):
        return bool(value) if isinstance(value, (bool, type(None))) else _not_boolean()
    if not pd.api.types.is_bool_dtype(value.dtype):
        _not_boolean()
    return value.fillna(False).astype(bool)


def _not_boolean() -> Any:
    raise TypeError("and/or/not need true/false values (compare a column, e.g. added > 0)")
