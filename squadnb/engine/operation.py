"""The Operation protocol: what the executor runs on each instance."""

from __future__ import annotations

from typing import Any

from squadnb.errors import RollbackNotSupported

__all__ = ["Operation"]


class Operation:
    """One action to run on many instances.

    Subclass it, or pass any object with the same four members (duck typing). Each of ``validate``,
    ``execute`` and ``rollback`` may be a plain method or a coroutine function:

    - ``name`` — a short label shown in results (``"Pause"``); defaults to the class name.
    - ``validate(instance)`` — raise to refuse the instance; runs just before ``execute``. A plain
      ``validate`` runs inline on the loop, so keep it a quick check of state; one that does I/O is a
      coroutine.
    - ``execute(instance)`` — do the work; its return value is kept as ``OperationResult.value``.
      A plain ``execute`` runs in a worker thread.
    - ``rollback(instance)`` — undo a successful ``execute``; the default raises
      :class:`~squadnb.errors.RollbackNotSupported`.
    """

    name: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):
            cls.name = cls.__name__

    def validate(self, instance: Any) -> None:
        """Accept every instance."""

    def execute(self, instance: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.execute is not implemented")

    def rollback(self, instance: Any) -> None:
        raise RollbackNotSupported(f"{self.name} cannot be rolled back")

    def __repr__(self) -> str:
        return f"<Operation {self.name}>"
