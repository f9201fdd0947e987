"""The public surface: squadnb.__all__, the error tree, and a light `import squadnb`."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
import sys

import pytest

import squadnb
import squadnb.engine
import squadnb.errors


def test_all_is_sorted_and_every_name_imports() -> None:
    assert squadnb.__all__ == sorted(squadnb.__all__)
    assert len(set(squadnb.__all__)) == len(squadnb.__all__)
    for name in squadnb.__all__:
        value = getattr(squadnb, name)
        assert value is not None, name
        from_module = getattr(importlib.import_module(squadnb._EXPORTS[name]), name)
        assert value is from_module, name


def test_engine_names_are_reexported_from_squadnb() -> None:
    for name in squadnb.engine.__all__:
        assert name in squadnb.__all__, name
        assert getattr(squadnb, name) is getattr(squadnb.engine, name)
    assert squadnb.engine.__all__ == sorted(squadnb.engine.__all__)


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        squadnb.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("AttributeError expected")


def _tree() -> dict[str, str | None]:
    """Class name -> parent name, as drawn in squadnb.errors' docstring."""
    doc = squadnb.errors.__doc__ or ""
    block = doc.split("Hierarchy::", 1)[1].split("\n\n", 2)[1]
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        match = re.match(r"^(\s*(?:[│ ]\s*)*(?:[├└]── )?)\(?(\w+)\)?", line)
        assert match, line
        depth, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[name] = stack[-1][1] if stack else None
        stack.append((depth, name))
    return parents


def test_error_tree_in_docstring_matches_classes_and_all() -> None:
    tree = _tree()
    classes = {name: obj for name, obj in vars(squadnb.errors).items()
               if inspect.isclass(obj) and issubclass(obj, BaseException)
               and obj.__module__ == "squadnb.errors"}
    assert set(tree) == set(classes) == set(squadnb.errors.__all__)
    assert squadnb.errors.__all__ == sorted(squadnb.errors.__all__)
    for name, parent in tree.items():
        cls = classes[name]
        if name == "BatchInterrupted":  # drawn apart: a KeyboardInterrupt, not a SquadError
            assert parent == "SquadError" and issubclass(cls, KeyboardInterrupt)
            assert not issubclass(cls, Exception)
        elif parent is not None:
            assert classes[parent] in cls.__bases__, (name, parent)
        assert cls.__doc__, name
    assert issubclass(squadnb.errors.OperationTimeout, TimeoutError)


def _loaded_after(statement: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after running ``statement``."""
    code = f"import sys; {statement}; print([m for m in {modules!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return ast.literal_eval(out.stdout)


HEAVY = ("pandas", "tqdm", "ipywidgets", "matplotlib", "dask")


@pytest.mark.parametrize("statement", [
    "import squadnb",
    "import squadnb, squadnb.session, squadnb.ops, squadnb.agents.demo",
    "import squadnb; squadnb.BatchExecutor; squadnb.PartialResult; squadnb.ProgressTracker",
])
def test_imports_stay_light(statement: str) -> None:
    assert _loaded_after(statement, HEAVY) == []


def test_import_squadnb_loads_no_engine() -> None:
    assert _loaded_after("import squadnb", ("squadnb.engine",)) == []


def test_sessions_do_not_load_the_executor() -> None:
    # Shared rendering lives in squadnb._html, outside the engine.
    assert _loaded_after("import squadnb.session", ("squadnb.engine.executor",
                                                    "squadnb.engine")) == []
