"""The Operation protocol (what the executor runs on each instance), the ``@operation`` decorator, and
the three combinators: :class:`CompositeOperation`, :class:`ConditionalOperation`,
:class:`RetryOperation`."""

from __future__ import annotations

import asyncio
import math
import random
from datetime import timedelta
from typing import Any, Callable, overload

from squadnb.engine._invoke import attempts, call, call_inline, operation_timeout
from squadnb.engine._seconds import non_negative_seconds
from squadnb.errors import RollbackNotSupported, SquadError, ValidationError

__all__ = [
    "CompositeOperation",
    "ConditionalOperation",
    "Operation",
    "RetryOperation",
    "operation",
]


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


def op_name(op: Any) -> str:
    """The label of any operation object: its ``name``, else its class name."""
    return getattr(op, "name", None) or type(op).__name__


async def validate_op(op: Any, instance: Any) -> None:
    """Run ``op.validate(instance)`` if the operation has one (plain: inline; coroutine: awaited)."""
    validate = getattr(op, "validate", None)
    if validate is not None:
        await call_inline(validate, instance)


async def rollback_op(op: Any, instance: Any) -> Any:
    """Run ``op.rollback(instance)``; an operation without one raises ``RollbackNotSupported``."""
    rollback = getattr(op, "rollback", None)
    if rollback is None:
        raise RollbackNotSupported(f"{op_name(op)} cannot be rolled back")
    return await call(rollback, instance)


class _FunctionOperation(Operation):
    """An operation made by :func:`operation` from a function (see there)."""

    def __init__(self, fn: Callable[[Any], Any], name: str | None,
                 validate: Callable[[Any], Any] | None, rollback: Callable[[Any], Any] | None) -> None:
        if not callable(fn):
            raise TypeError(f"@operation needs a function, got {fn!r}")
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        self.__wrapped__ = fn
        self.__doc__ = getattr(fn, "__doc__", None)
        # Instance attributes, so the executor sees the functions themselves (coroutine or not).
        self.execute = fn  # type: ignore[method-assign]
        if validate is not None:
            self.validate = validate  # type: ignore[method-assign]
        if rollback is not None:
            self.rollback = rollback  # type: ignore[method-assign]

    def __call__(self, instance: Any) -> Any:
        return self.__wrapped__(instance)


@overload
def operation(fn: Callable[[Any], Any], /) -> Operation: ...
@overload
def operation(*, name: str | None = None, validate: Callable[[Any], Any] | None = None,
              rollback: Callable[[Any], Any] | None = None) -> Callable[[Callable[[Any], Any]], Operation]: ...


def operation(fn: Callable[[Any], Any] | None = None, /, *, name: str | None = None,
              validate: Callable[[Any], Any] | None = None,
              rollback: Callable[[Any], Any] | None = None) -> Any:
    """Turn a function of one instance into an :class:`Operation`.

    ``@operation`` alone uses the function's ``__name__`` as the operation's name;
    ``@operation(name="Ping", validate=check, rollback=undo)`` sets the other members. The function
    (and ``validate``/``rollback``) may be plain or ``async``; its return value becomes
    ``OperationResult.value``. The decorated object stays callable as the original function.
    Raises ``TypeError`` when given something that is not callable.
    """
    if fn is not None:
        return _FunctionOperation(fn, name, validate, rollback)
    return lambda f: _FunctionOperation(f, name, validate, rollback)


class Skip(Exception):
    """Raised by a :class:`ConditionalOperation`'s validation when its predicate is false; the executor
    records the instance as skipped (a signal, never a failure)."""


def validation_error(cause: BaseException) -> ValidationError:
    """``ValidationError("validation failed: <cause>")`` with ``cause`` as ``__cause__``, as if raised
    ``from`` it."""
    error = ValidationError(f"validation failed: {cause}")
    error.__cause__ = cause
    error.__suppress_context__ = True
    return error


class CompositeOperation(Operation):
    """Several operations run in order on one instance, as one operation.

    Each step is validated just before it runs (the composite's own ``validate`` checks the first step,
    so the executor records its refusal as invalid), so Pause then Resume composes. When step ``i``
    fails, the steps that ran are rolled back in reverse and the composite raises ``SquadError``
    ``"operation <i> (<step name>) failed: <err>"`` (``i`` 0-based, ``__cause__`` the step's error); a
    rollback that fails there is added to that error as a note. When the composite is cut short (its
    timeout, a cancel, a batch deadline), the steps that ran are rolled back too, shielded and under a
    fresh timeout of the executor's length, before the cancellation goes on; if one of those rollbacks
    fails, the ``SquadError`` naming it becomes the ``__cause__`` of the recorded ``OperationTimeout``
    or ``Cancelled``. A skipped step (a false :class:`ConditionalOperation`) is passed over.
    ``execute`` returns the list of the steps' values; ``rollback`` undoes, in reverse, the steps that
    ran on that instance, going on after a failure, and then raises ``SquadError`` naming the first
    step that could not be undone (the others as notes).
    """

    def __init__(self, name: str, *operations: Any) -> None:
        self.name = name
        self.operations = list(operations)
        self._ran: dict[int, list[int]] = {}  # id(instance) -> the steps its last execute ran

    async def validate(self, instance: Any) -> None:
        if self.operations:
            await validate_op(self.operations[0], instance)

    async def execute(self, instance: Any) -> list[Any]:
        done: list[int] = []
        values: list[Any] = []
        self._ran.pop(id(instance), None)
        for i, step in enumerate(self.operations):
            try:
                if i:
                    try:
                        await validate_op(step, instance)
                    except Skip:
                        continue
                    except Exception as exc:
                        raise validation_error(exc) from exc
                values.append(await call(step.execute, instance))
            except asyncio.CancelledError:
                notes = await asyncio.shield(self._undo_bounded(done, instance))
                if notes:
                    raise _undo_error(f"operation {i} ({op_name(step)}) was cut short", notes) \
                        from None
                raise
            except Exception as exc:
                error = SquadError(f"operation {i} ({op_name(step)}) failed: {exc}")
                for note in await self._undo(done, instance):
                    error.add_note(note)
                raise error from exc
            done.append(i)
        self._ran[id(instance)] = done
        return values

    async def rollback(self, instance: Any) -> None:
        done = self._ran.pop(id(instance), range(len(self.operations)))
        notes = await self._undo(done, instance)
        if notes:
            raise _undo_error(notes[0], notes[1:])

    async def _undo(self, steps: Any, instance: Any) -> list[str]:
        """Roll back ``steps`` in reverse, going on after a failure; return one line per failure."""
        failures = []
        for i in reversed(list(steps)):
            step = self.operations[i]
            try:
                await rollback_op(step, instance)
            except Exception as exc:
                failures.append(f"rollback of operation {i} ({op_name(step)}) failed: {exc}")
        return failures

    async def _undo_bounded(self, steps: list[int], instance: Any) -> list[str]:
        """:meth:`_undo` under a fresh timeout as long as the executor's (the one that cut the
        composite short is spent)."""
        try:
            async with asyncio.timeout(operation_timeout.get()):
                return await self._undo(steps, instance)
        except TimeoutError:
            return [f"rolling back operations {steps} timed out"]

    def __repr__(self) -> str:
        return f"<CompositeOperation {self.name}: {', '.join(op_name(o) for o in self.operations)}>"


def _undo_error(message: str, notes: list[str]) -> SquadError:
    error = SquadError(message)
    for note in notes:
        error.add_note(note)
    return error


class ConditionalOperation(Operation):
    """Run ``op`` only on the instances where ``predicate(instance)`` is true.

    The predicate (plain or ``async``) is evaluated once per instance, during validation; where it is
    false the instance is recorded as skipped (``OperationResult.skipped``, status ``"skipped"``) —
    neither a success nor a failure, and never rolled back. A predicate that raises makes the instance
    invalid. Name: ``Conditional(<op>)``.
    """

    def __init__(self, op: Any, predicate: Callable[[Any], Any]) -> None:
        if not callable(predicate):
            raise TypeError(f"ConditionalOperation needs a callable predicate, got {predicate!r}")
        self.operation = op
        self.predicate = predicate
        self.name = f"Conditional({op_name(op)})"

    async def validate(self, instance: Any) -> None:
        if not await call_inline(self.predicate, instance):
            raise Skip(self.name)
        await validate_op(self.operation, instance)

    async def execute(self, instance: Any) -> Any:
        return await call(self.operation.execute, instance)

    async def rollback(self, instance: Any) -> Any:
        return await rollback_op(self.operation, instance)


class RetryOperation(Operation):
    """Run ``op`` up to ``max_retries + 1`` times until it succeeds.

    Validation runs once, before the first attempt. After a failure whose error is an instance of
    ``retry_on`` (an exception type or a tuple of them), it waits ``delay * backoff**k`` seconds plus a
    uniform random ``[0, jitter]`` (``k`` = retries so far); the wait is cancellable like any await.
    An error not matching ``retry_on`` is raised at once. When every attempt fails it raises
    ``SquadError("operation failed after <n> retries: <last error>")`` with the last error as
    ``__cause__``. The executor's timeout bounds all attempts and delays together, and the attempts
    made are recorded as ``OperationResult.attempts``. Name: ``Retry(<op>)``.

    :raises ValueError: ``max_retries``, ``delay``, ``jitter`` or ``backoff`` negative, or a NaN or
        infinite ``delay``, ``jitter`` or ``backoff`` (the message names it).
    """

    def __init__(self, op: Any, max_retries: int = 3, delay: float | timedelta = 1.0,
                 backoff: float = 1.0, jitter: float | timedelta = 0.0,
                 retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must not be negative, got {max_retries!r}")
        if not math.isfinite(backoff):
            raise ValueError(f"backoff must be a finite number, got {backoff!r}")
        if backoff < 0:
            raise ValueError(f"backoff must not be negative, got {backoff!r}")
        self.operation = op
        self.max_retries = int(max_retries)
        self.delay = non_negative_seconds(delay, "delay")
        self.backoff = float(backoff)
        self.jitter = non_negative_seconds(jitter, "jitter")
        self.retry_on = retry_on
        self.name = f"Retry({op_name(op)})"

    async def validate(self, instance: Any) -> None:
        await validate_op(self.operation, instance)

    async def execute(self, instance: Any) -> Any:
        counter = attempts.get(None)
        attempt = 0
        while True:
            if counter is not None:
                counter.count = attempt + 1
            try:
                return await call(self.operation.execute, instance)
            except self.retry_on as exc:
                if attempt == self.max_retries:
                    raise SquadError(
                        f"operation failed after {self.max_retries} retries: {exc}") from exc
            pause = self.delay * self.backoff ** attempt
            if self.jitter:
                pause += random.uniform(0, self.jitter)
            await asyncio.sleep(pause)
            attempt += 1

    async def rollback(self, instance: Any) -> Any:
        return await rollback_op(self.operation, instance)
