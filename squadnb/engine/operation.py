"""The Operation protocol (what the executor runs on each instance), the ``@operation`` decorator, and
the three combinators: :class:`CompositeOperation`, :class:`ConditionalOperation`,
:class:`RetryOperation`."""

from __future__ import annotations

import asyncio
import math
import random
from datetime import timedelta
from typing import Any, Callable, Union, overload

from squadnb.engine._invoke import call, call_inline, operation_timeout, tally
from squadnb.engine._seconds import non_negative_seconds
from squadnb.errors import RollbackNotSupported, SquadError, ValidationError, VerificationError

__all__ = [
    "CompositeOperation",
    "ConditionalOperation",
    "Operation",
    "RetryOperation",
    "operation",
]


class Operation:
    """One action to run on many instances.

    Subclass it, or pass any object with the same members (duck typing). Each of ``validate``,
    ``execute``, ``rollback`` and ``verify`` may be a plain method or a coroutine function:

    - ``name`` — a short label shown in results (``"Pause"``); defaults to the class name.
    - ``validate(instance)`` — raise to refuse the instance; runs just before ``execute``. A plain
      ``validate`` runs inline on the loop, so keep it a quick check of state; one that does I/O is a
      coroutine.
    - ``execute(instance)`` — do the work; its return value is kept as ``OperationResult.value``.
      A plain ``execute`` runs in a worker thread.
    - ``rollback(instance)`` — undo a successful ``execute``; the default raises
      :class:`~squadnb.errors.RollbackNotSupported`.
    - ``verify(instance)`` (optional; the base class has none) — check the post-condition after a
      successful ``execute``: raise (or return ``False``) when it does not hold, and the instance is
      a failure with :class:`~squadnb.errors.VerificationError` (``"verification failed: <what>"``,
      the original as ``__cause__``; a ``VerificationError`` raised by ``verify`` is kept as is). It
      runs inside the per-operation timeout; a plain ``verify`` runs in a worker thread.
      ``OperationResult.verified`` records the outcome (None when there was nothing to verify).
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


async def verify_op(op: Any, instance: Any) -> None:
    """Run ``op.verify(instance)`` if the operation has one, and note the outcome in the instance's
    tally (``OperationResult.verified``).

    :raises VerificationError: ``verify`` raised (the original is the ``__cause__``; a
        ``VerificationError`` is raised as is) or returned ``False``.
    """
    verify = getattr(op, "verify", None)
    if verify is None:
        return
    record = tally.get(None)
    try:
        held = await call(verify, instance)
        if held is False:
            raise VerificationError(f"verification failed: {op_name(op)}.verify returned False")
    except VerificationError:
        if record is not None:
            record.verified = False
        raise
    except Exception as exc:
        if record is not None:
            record.verified = False
        raise verification_error(exc) from exc
    if record is not None:
        record.verified = True


def verification_error(cause: BaseException) -> VerificationError:
    """``VerificationError("verification failed: <cause>")`` (the type's name when ``cause`` has no
    text) with ``cause`` as ``__cause__``."""
    error = VerificationError(f"verification failed: {str(cause) or type(cause).__name__}")
    error.__cause__ = cause
    error.__suppress_context__ = True
    return error


async def rollback_op(op: Any, instance: Any) -> Any:
    """Run ``op.rollback(instance)``; an operation without one raises ``RollbackNotSupported``."""
    rollback = getattr(op, "rollback", None)
    if rollback is None:
        raise RollbackNotSupported(f"{op_name(op)} cannot be rolled back")
    return await call(rollback, instance)


class _FunctionOperation(Operation):
    """An operation made by :func:`operation` from a function (see there)."""

    def __init__(self, fn: Callable[[Any], Any], name: str | None,
                 validate: Callable[[Any], Any] | None, rollback: Callable[[Any], Any] | None,
                 verify: Callable[[Any], Any] | None) -> None:
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
        if verify is not None:
            self.verify = verify

    def __call__(self, instance: Any) -> Any:
        return self.__wrapped__(instance)


@overload
def operation(fn: Callable[[Any], Any], /) -> Operation: ...
@overload
def operation(*, name: str | None = None, validate: Callable[[Any], Any] | None = None,
              rollback: Callable[[Any], Any] | None = None,
              verify: Callable[[Any], Any] | None = None) -> Callable[[Callable[[Any], Any]], Operation]: ...


def operation(fn: Callable[[Any], Any] | None = None, /, *, name: str | None = None,
              validate: Callable[[Any], Any] | None = None,
              rollback: Callable[[Any], Any] | None = None,
              verify: Callable[[Any], Any] | None = None) -> Any:
    """Turn a function of one instance into an :class:`Operation`.

    ``@operation`` alone uses the function's ``__name__`` as the operation's name;
    ``@operation(name="Ping", validate=check, rollback=undo, verify=holds)`` sets the other members.
    The function (and ``validate``/``rollback``/``verify``) may be plain or ``async``; its return value becomes
    ``OperationResult.value``. The decorated object stays callable as the original function.
    Raises ``TypeError`` when given something that is not callable.
    """
    if fn is not None:
        return _FunctionOperation(fn, name, validate, rollback, verify)
    return lambda f: _FunctionOperation(f, name, validate, rollback, verify)


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
    or ``Cancelled``. A skipped step (a false :class:`ConditionalOperation`) is passed over. A step
    with a ``verify`` is verified right after it runs, before the next step (a later step may change
    what an earlier one made true, as Resume after Pause does); a verification that fails is that
    step's failure.
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
                await verify_op(step, instance)
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
    invalid. ``verify`` is the wrapped operation's (absent when it has none). Name:
    ``Conditional(<op>)``.
    """

    def __init__(self, op: Any, predicate: Callable[[Any], Any]) -> None:
        if not callable(predicate):
            raise TypeError(f"ConditionalOperation needs a callable predicate, got {predicate!r}")
        self.operation = op
        self.predicate = predicate
        self.name = f"Conditional({op_name(op)})"
        verify = getattr(op, "verify", None)
        if verify is not None:  # verified as the wrapped operation is; no verify when it has none
            self.verify = verify

    async def validate(self, instance: Any) -> None:
        if not await call_inline(self.predicate, instance):
            raise Skip(self.name)
        await validate_op(self.operation, instance)

    async def execute(self, instance: Any) -> Any:
        return await call(self.operation.execute, instance)

    async def rollback(self, instance: Any) -> Any:
        return await rollback_op(self.operation, instance)


#: What ``RetryOperation(retry_on=...)`` takes besides None.
RetryOn = Union[Callable[[BaseException], bool], type[BaseException], tuple[type[BaseException], ...]]


def _exception_types(retry_on: RetryOn) -> tuple[type[BaseException], ...] | None:
    """``retry_on`` as a tuple of exception types, or None when it is not exception types."""
    types = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    if all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
        return types  # type: ignore[return-value]
    return None


def _from_validation(error: BaseException | None) -> bool:
    """True when ``error`` is a ``ValidationError`` or was raised from one (a composite's step that
    refused): a refusal does not go away by trying again."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ValidationError):
            return True
        seen.add(id(error))
        error = error.__cause__
    return False


class RetryOperation(Operation):
    """Run ``op`` up to ``max_retries + 1`` times until it succeeds.

    Validation runs once, before the first attempt. An attempt is ``op.execute`` and then, when ``op``
    has one, ``op.verify``: a verification that fails is a failed attempt, retried like any other
    (a "done" that did not hold, such as a prompt the agent did not receive, is worth another try).
    After a failed attempt whose error ``retry_on`` accepts, it waits ``delay * backoff**k`` seconds
    plus a uniform random ``[0, jitter]`` (``k`` = retries so far); the wait is cancellable like any
    await. ``retry_on`` is ``None`` (retry every ``Exception``), a callable ``retry_on(exc) -> bool``,
    or an exception type or tuple of types. A :class:`~squadnb.errors.ValidationError` (or an error raised from one,
    as a nested composite's step that refused) is never retried, and an error ``retry_on`` refuses is raised at
    once. When every attempt fails it raises ``SquadError("operation failed after <n> retries: <last
    error>")`` with the last error as ``__cause__``. The executor's timeout bounds all attempts and
    delays together, and the attempts made are recorded as ``OperationResult.attempts``. Name:
    ``Retry(<op>)``.

    :raises ValueError: ``max_retries``, ``delay``, ``jitter`` or ``backoff`` negative, or a NaN or
        infinite ``delay``, ``jitter`` or ``backoff`` (the message names it).
    :raises TypeError: ``retry_on`` is neither None, a callable nor exception types.
    """

    def __init__(self, op: Any, max_retries: int = 3, delay: float | timedelta = 1.0,
                 backoff: float = 1.0, jitter: float | timedelta = 0.0,
                 retry_on: RetryOn | None = None) -> None:
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
        if retry_on is not None and _exception_types(retry_on) is None and not callable(retry_on):
            raise TypeError(f"retry_on must be None, a callable retry_on(exc) -> bool, or exception "
                            f"types, got {retry_on!r}")
        self.retry_on = retry_on
        self.name = f"Retry({op_name(op)})"

    async def validate(self, instance: Any) -> None:
        await validate_op(self.operation, instance)

    async def execute(self, instance: Any) -> Any:
        record = tally.get(None)
        attempt = 0
        while True:
            if record is not None:
                record.attempts = attempt + 1
            try:
                value = await call(self.operation.execute, instance)
                await verify_op(self.operation, instance)
                return value
            except Exception as exc:
                if _from_validation(exc) or not self._retries(exc):
                    raise
                if attempt == self.max_retries:
                    raise SquadError(
                        f"operation failed after {self.max_retries} retries: {exc}") from exc
            pause = self.delay * self.backoff ** attempt
            if self.jitter:
                pause += random.uniform(0, self.jitter)
            await asyncio.sleep(pause)
            attempt += 1

    def _retries(self, exc: Exception) -> bool:
        """Whether ``retry_on`` accepts the error of a failed attempt (a method, not a stored lambda,
        so the operation pickles for a journal)."""
        if self.retry_on is None:
            return True
        types = _exception_types(self.retry_on)
        if types is not None:
            return isinstance(exc, types)
        return bool(self.retry_on(exc))  # type: ignore[operator]

    async def rollback(self, instance: Any) -> Any:
        return await rollback_op(self.operation, instance)

