"""Fleet: one batch over the squads of several hosts, on Dask distributed.

Each host runs a Dask worker (``dask worker tcp://SCHEDULER:8786 --name gpu1``); the instances of a
host are that host's :class:`~squadnb.session.Squad`, built in the worker process from the worker's own
``SQUADNB_HOME`` / ``SQUADNB_TMUX_SOCKET`` environment or from ``Fleet(squads={name: kwargs})``.
``fleet.instances`` are :class:`RemoteInstance` proxies, and any batch call of the engine runs over
them unchanged: ``BatchExecutor().execute(fleet.instances, BatchPauseOperation())``.

How a batch reaches a host (the one hook in the engine)
--------------------------------------------------------
The engine knows nothing of Dask. Before it calls an operation's ``validate``, ``execute`` or
``verify`` on an instance (a transaction's rollback is the ``execute`` of its rollback batch; a plan
calls only ``validate``), it looks for ``type(instance).__squadnb_run__``; when there is one it awaits
``__squadnb_run__(instance, phase, operation)`` instead. Everything else (concurrency, the timeout
timer, deadline, failure cutoff, pacing, cancellation, progress, results, journal, chains,
transactions) stays the executor's, on the client, as for local instances.

:class:`RemoteInstance` implements the hook: the operation object travels to the instance's host
(Dask's cloudpickle: a class defined in a notebook travels by value; so does one from a module that is
not installed on the hosts, such as a test module or a script next to the notebook), where one Dask task
(``client.submit(..., workers=[address], allow_other_workers=False, pure=False)``, a coroutine task on
the worker's event loop) hands it to squadnb's loop of the worker process, which runs the phase
against the local :class:`~squadnb.session.Instance` exactly as a local batch would (coroutines
awaited, plain functions in a worker thread; ``RetryOperation`` retries and counts its attempts on the
host; ``verify`` through the engine's ``verify_op``). The task returns the value, the error (its
type, arguments and cause rebuilt on the client, the remote traceback added as a note), the tally
(attempts made, verified) and a fresh snapshot of the instance's fields, which the proxy shows from
then on.

- **One round trip per phase**: a built-in operation (validate, execute, verify) makes three. The
  engine decides between phases (a plan calls only ``validate``; a failed execute is not verified),
  so they cannot be merged into one call.
- **Concurrency** is the executor's, across all hosts, plus ``Fleet(per_host=N)``: a per-host
  ``asyncio.Semaphore`` on squadnb's loop around each remote call. A Dask worker runs at most
  ``--nthreads`` tasks at once (coroutine tasks count too), so start workers with ``--nthreads`` at
  least the concurrency wanted on one host. Time spent waiting for a per-host slot counts towards the
  operation's timeout, as the executor's clock runs from the start of ``validate``.
- **Timeouts and cancels stop the remote operation**: a Dask future's ``cancel()`` does not stop a
  task that is already running, so when the executor cancels a proxy's call (timeout, ``deadline``,
  Cancel, Ctrl-C) the proxy sends the host an out-of-band ``client.run`` that cancels the operation's
  task on the host's squadnb loop (git and tmux children are stopped as in a local cancel), and
  cancels the Dask future. The host also bounds each call by the executor's timeout itself
  (``asyncio.wait_for`` on its loop), so a client that disappears cannot leave an operation running
  past its limit. A plain (non-async) ``execute`` keeps running in its thread on the host, as locally.
- **A host that dies** (its worker process killed, its machine gone): the Fleet's own client listens to
  the scheduler's ``remove-worker`` events; every call waiting on that worker fails with
  :class:`~squadnb.errors.HostLost` naming the host, later calls to it fail at once, and the rest of the
  batch goes on. A validation cut short that way returns quietly so that the ``execute`` that follows
  reports ``HostLost``: every instance of a lost host reads ``HostLost``, not ``ValidationError`` (a
  plan, which runs no execute, shows such an instance as one that would run). A
  worker restarted under the same name (a nanny, ``dask worker`` again) is found again by name; its
  Squad reloads the host's files.
- **Clients**: ``Fleet(client)`` uses the given client only for its scheduler address and security,
  and opens its own asynchronous client on squadnb's loop (so awaiting Dask futures, events and
  cancels all happen on the loop the executor runs on). ``fleet.close()`` (or ``with Fleet(...)``)
  closes it.

Dask is optional (``pip install 'squadnb[distributed]'``): this module imports it only when a Fleet is
made, and ``import squadnb`` never imports it.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import inspect
import os
import sys
import sysconfig
import traceback
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Iterator, Mapping

from squadnb import _loop
from squadnb.engine._invoke import Tally, call, operation_timeout, tally
from squadnb.engine.operation import op_name, validate_op, verify_op
from squadnb.errors import Cancelled, HostLost, OperationTimeout, SquadError, UnknownInstance
from squadnb.session._status import StatusFlags

if TYPE_CHECKING:
    import pandas as pd

    from squadnb.engine.journal import Journal
    from squadnb.session.instance import Instance
    from squadnb.session.squad import Squad

__all__ = ["Fleet", "RemoteInstance"]

INSTALL_HINT = "squadnb's Fleet needs Dask distributed: pip install 'squadnb[distributed]'"


def _distributed() -> Any:
    """The ``distributed`` package; ``ImportError`` naming the extra to install when it is missing."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return distributed


# ---------------------------------------------------------------------------------------------------
# The host side: runs in each Dask worker process.

#: one Squad per worker process and per set of Squad keyword arguments
_squads: dict[tuple[tuple[str, Any], ...], Squad] = {}
#: the calls running on this host's squadnb loop, by token (so a cancel can reach them)
_running: dict[str, concurrent.futures.Future[Any]] = {}
#: tokens cancelled before their task started here (bounded: a released task never starts)
_cancelled: collections.OrderedDict[str, None] = collections.OrderedDict()
_CANCELLED_KEPT = 10_000
#: the instances used last, by squad and title (bounded), so a killed instance is still found
_recent: collections.OrderedDict[tuple[Any, str], Instance] = collections.OrderedDict()
_RECENT_KEPT = 4096


@dataclass
class _Outcome:
    """What a remote phase sends back: the value or the packed error, the ``execute`` attempts made,
    and the instance's fields afterwards."""

    value: Any
    error: tuple[Any, ...] | None
    attempts: int
    verified: bool | None
    fields: dict[str, Any]


def _host_squad(kwargs: Mapping[str, Any]) -> Squad:
    """This process's Squad for ``kwargs`` (made on first use; its files are read then)."""
    from squadnb.session.squad import Squad

    key = tuple(sorted(kwargs.items()))
    squad = _squads.get(key)
    if squad is None:
        squad = _squads[key] = Squad(**kwargs)
    return squad


def _host_instance(squad_kwargs: Mapping[str, Any], title: str) -> Instance:
    """The host's instance ``title``; after a kill (the squad has forgotten it) the object the last
    call used, so the kill's ``verify`` still finds it.

    :raises UnknownInstance: the host has no instance of that title.
    """
    key = (tuple(sorted(squad_kwargs.items())), title)
    try:
        instance = _host_squad(squad_kwargs)[title]
    except UnknownInstance:
        if key not in _recent:
            raise
        instance = _recent[key]
    _recent[key] = instance
    _recent.move_to_end(key)
    while len(_recent) > _RECENT_KEPT:
        _recent.popitem(last=False)
    return instance


def _fields(instance: Instance) -> dict[str, Any]:
    """The instance's public attributes (what a proxy shows), plus its session name."""
    fields = {name: value for name, value in vars(instance).items()
              if not name.startswith("_") and name != "squad"}
    fields["session_name"] = instance.session_name
    return fields


def _pack_error(exc: BaseException) -> tuple[Any, ...]:
    """An exception as ``(type, args, attributes, packed cause, remote traceback)``: pickling an
    exception drops its cause and calls ``type(*args)``, which fails for types whose ``__init__``
    takes more (``ProgramExited``); the client rebuilds it without calling ``__init__``."""
    cause = exc.__cause__ if exc.__cause__ is not None else (
        None if exc.__suppress_context__ else exc.__context__)
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    state = {k: v for k, v in vars(exc).items() if k != "__notes__"} if hasattr(exc, "__dict__") else {}
    return (type(exc), exc.args, state, _pack_error(cause) if cause is not None else None, text)


def _dumps(outcome: _Outcome) -> bytes:
    """The outcome as cloudpickle bytes (so classes the client sent by value come back as the same
    classes); a value that cannot travel comes back as its ``repr()``, an error as a ``SquadError``
    naming its type and text."""
    import cloudpickle

    try:
        return cloudpickle.dumps(outcome)
    except Exception:
        pass
    try:
        cloudpickle.dumps(outcome.value)
    except Exception:
        outcome.value = repr(outcome.value)
    if outcome.error is not None:
        try:
            cloudpickle.dumps(outcome.error)
        except Exception:
            kind, args, _, _, text = outcome.error
            outcome.error = (SquadError, (f"{kind.__name__}: {args[0] if args else ''}",), {}, None, text)
    return cloudpickle.dumps(outcome)


async def _host_task(token: str, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
    """The Dask task (a coroutine on the worker's event loop): run ``fn(*args)`` on this process's
    squadnb loop, where the host's Squad and its locks live, and keep it cancellable by ``token``."""
    if token in _cancelled:
        del _cancelled[token]
        raise Cancelled("cancelled before it started on the host")
    future = _loop.submit(fn(*args))
    _running[token] = future
    try:
        return await asyncio.wrap_future(future)
    finally:
        _running.pop(token, None)


def _cancel_on_host(token: str) -> bool:
    """Out of band (``client.run``, on the worker's event loop): cancel the call ``token`` on this
    host's squadnb loop, or remember it so that it never starts. True when it was running."""
    future = _running.get(token)
    if future is None:
        _cancelled[token] = None
        while len(_cancelled) > _CANCELLED_KEPT:
            _cancelled.popitem(last=False)
        return False
    future.cancel()
    return True


async def _host_phase(squad_kwargs: dict[str, Any], title: str, phase: str, operation: bytes,
                      timeout: float | None) -> bytes:
    """Run ``phase`` of the (cloudpickled) operation on the host's instance ``title`` as the local
    executor would (``validate`` inline, ``verify`` through ``verify_op``), bounded by ``timeout`` here
    too; the tally (attempts, verified) goes back with the outcome."""
    import cloudpickle

    instance = _host_instance(squad_kwargs, title)
    record = Tally()
    tally.set(record)
    operation_timeout.set(timeout)
    value = error = None
    try:
        op = cloudpickle.loads(operation)
        if phase == "validate":
            work = validate_op(op, instance)
        elif phase == "verify":
            work = verify_op(op, instance)
        else:
            record.attempts = 1
            work = call(getattr(op, phase), instance)
        value = await asyncio.wait_for(work, timeout)
    except asyncio.TimeoutError:
        error = _pack_error(OperationTimeout(f"operation timed out after {timeout:g}s on its host"))
    except Exception as exc:  # the operation's failure, carried back to the executor
        error = _pack_error(exc)
    return _dumps(_Outcome(value, error, record.attempts, record.verified, _fields(instance)))


async def _host_method(squad_kwargs: dict[str, Any], title: str, name: str, arguments: bytes) -> bytes:
    """Await the coroutine method ``name`` of the host's instance ``title`` with the cloudpickled
    ``(args, kwargs)``."""
    import cloudpickle

    instance = _host_instance(squad_kwargs, title)
    value = error = None
    try:
        args, kwargs = cloudpickle.loads(arguments)
        value = await getattr(instance, name)(*args, **kwargs)
    except Exception as exc:  # raised again on the client
        error = _pack_error(exc)
    return _dumps(_Outcome(value, error, 0, None, _fields(instance)))


async def _host_list(squad_kwargs: dict[str, Any], refresh: bool) -> list[dict[str, Any]]:
    squad = _host_squad(squad_kwargs)
    if refresh:
        await squad.arefresh()
    return [_fields(instance) for instance in squad.instances]


async def _host_new(squad_kwargs: dict[str, Any], title: str, program: str | None, branch: str | None,
               prompt: str | None) -> dict[str, Any]:
    return _fields(await _host_squad(squad_kwargs).anew(title, program, branch, prompt))


async def _host_table(squad_kwargs: dict[str, Any]) -> pd.DataFrame:
    return _host_squad(squad_kwargs).to_dataframe()


# ---------------------------------------------------------------------------------------------------
# The client side.

#: open fleets by scheduler address, so an unpickled proxy finds a fleet again
_fleets: collections.defaultdict[str, weakref.WeakSet[Fleet]] = collections.defaultdict(weakref.WeakSet)


def _open_fleet(address: str) -> Fleet | None:
    return next((fleet for fleet in list(_fleets[address]) if not fleet.closed), None)


def _rebuild_error(packed: tuple[Any, ...], host: str) -> BaseException:
    cls, args, state, cause, text = packed
    error = cls.__new__(cls, *args)
    error.args = args
    vars(error).update(state)
    if cause is not None:
        error.__cause__ = _rebuild_error(cause, host)
    error.add_note(f"raised on host {host!r}:\n{text.rstrip()}")
    return error


@functools.lru_cache(maxsize=1)
def _installed_roots() -> list[Path]:
    """Where installed code lives (the standard library, site-packages): a host has it too."""
    paths = sysconfig.get_paths()
    return [Path(paths[k]).resolve() for k in ("stdlib", "platstdlib", "purelib", "platlib")]


def _travel_by_value(operation: Any) -> None:
    """Register with cloudpickle, by value, the modules of the classes and functions ``operation`` is
    made of that are not installed (a test module, a script beside the notebook): the hosts cannot
    import them. ``__main__`` (a notebook) already travels by value; squadnb is installed on hosts."""
    import cloudpickle

    roots = _installed_roots()
    seen: set[int] = set()

    def visit(obj: Any, depth: int) -> None:
        if id(obj) in seen or depth > 4:
            return
        seen.add(id(obj))
        defined = obj if inspect.isclass(obj) or inspect.isroutine(obj) else type(obj)
        _register(sys.modules.get(getattr(defined, "__module__", "") or ""))
        values: list[Any] = []
        if isinstance(obj, (list, tuple, set, frozenset)):
            values = list(obj)
        elif isinstance(obj, dict):
            values = list(obj.values())
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            values = list(vars(obj).values())
        if inspect.ismethod(obj):
            values.append(obj.__self__)
        for value in values:
            visit(value, depth + 1)

    def _register(module: Any) -> None:
        name = getattr(module, "__name__", "")
        file = getattr(module, "__file__", None)
        if not file or name == "__main__" or name.split(".")[0] in ("squadnb", "builtins"):
            return
        path = Path(file).resolve()
        if any(root == path or root in path.parents for root in roots):
            return
        with contextlib.suppress(ValueError):  # already registered
            cloudpickle.register_pickle_by_value(module)

    visit(operation, 0)


def _ship(obj: Any) -> bytes:
    """``obj`` cloudpickled for a host, the modules it needs by value included."""
    import cloudpickle

    _travel_by_value(obj)
    return cloudpickle.dumps(obj)


def _loads(data: bytes) -> _Outcome:
    import cloudpickle

    return cloudpickle.loads(data)


class RemoteInstance(StatusFlags):
    """An instance on one of a :class:`Fleet`'s hosts, as the client sees it.

    Usable wherever an instance is: the engine runs operations on it on its host (see the module
    docstring). ``title`` and ``host`` name it; ``status`` and the other attributes of
    :class:`~squadnb.session.Instance` (``branch``, ``worktree_path``, ``program``, ``diff``,
    ``started``, ``paused``, ``session_name`` …) are a snapshot taken by its last remote call or
    ``fleet.instances`` / ``fleet.refresh()``. The instance's lifecycle methods run on the host:
    ``proxy.pause()`` blocks, ``await proxy.apause()`` awaits (any ``a``-prefixed coroutine method of
    ``Instance`` and its sync twin), raising what the host raised. Proxies pickle (the snapshot goes
    with them); an unpickled proxy runs operations again once a Fleet on the same scheduler exists in
    that process.
    """

    def __init__(self, fleet: Fleet | None, host: str, fields: dict[str, Any]) -> None:
        self._fleet = fleet
        self.host = host
        self._fields = fields

    @property
    def title(self) -> str:
        return self._fields["title"]

    @property
    def status(self) -> Any:
        """The :class:`~squadnb.session.Status` as of the last remote call or refresh."""
        return self._fields["status"]

    def __getattr__(self, name: str) -> Any:
        fields = self.__dict__.get("_fields")
        if fields is None or name.startswith("_"):
            raise AttributeError(name)
        if name in fields:
            return fields[name]
        from squadnb.session.instance import Instance

        if inspect.iscoroutinefunction(getattr(Instance, name, None)):
            return lambda *args, **kwargs: self._fleet_or_raise()._acall(self, name, args, kwargs)
        if inspect.iscoroutinefunction(getattr(Instance, "a" + name, None)):
            return lambda *args, **kwargs: _loop.run_sync(
                self._fleet_or_raise()._acall(self, "a" + name, args, kwargs))
        raise AttributeError(f"{type(self).__name__} {self.title!r} has no attribute {name!r}")

    async def __squadnb_run__(self, phase: str, operation: Any) -> Any:
        """The engine's hook: run ``operation.<phase>`` on this instance's host (module docstring)."""
        return await self._fleet_or_raise()._run_phase(self, phase, operation)

    def _fleet_or_raise(self) -> Fleet:
        fleet = self._fleet
        if fleet is None or fleet.closed:
            fleet = _open_fleet(self._fields["_scheduler"])
        if fleet is None:
            raise RuntimeError(f"instance {self.title!r} on host {self.host!r} belongs to no open Fleet "
                               f"in this process; make one with Fleet({self._fields['_scheduler']!r})")
        self._fleet = fleet
        return fleet

    def _update(self, fields: dict[str, Any]) -> None:
        self._fields = {**fields, "_scheduler": self._fields["_scheduler"]}

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteInstance, (None, self.host, self._fields))

    def __repr__(self) -> str:
        status = getattr(self.status, "name", str(self.status)).lower()
        return (f"<RemoteInstance {self.title!r} on {self.host!r} {status} "
                f"branch={self._fields.get('branch', '')!r}>")


class Fleet:
    """The squads of several hosts, one per Dask worker, driven as one.

    :param client: a ``distributed.Client`` (only its scheduler address and security are used) or a
        scheduler address such as ``"tcp://10.0.0.5:8786"``.
    :param repo: the repository each host's Squad works on, a path on that host (``~`` expands there;
        a relative path is relative to the worker's working directory).
    :param program: the agent program of new instances (``None``: each host's config default).
    :param squads: optional ``{worker name: Squad keyword arguments}`` (``home``, ``tmux_socket``,
        ``repo``, ``program``, ``branch_prefix``) for hosts whose environment does not say it; other
        hosts build their Squad from the worker's ``SQUADNB_HOME`` / ``SQUADNB_TMUX_SOCKET``.
    :param per_host: at most this many remote calls at once on one host (``None``: no limit beyond
        the executor's concurrency and the worker's ``--nthreads``).
    :param home: this machine's squadnb home, where :attr:`journal` lives (default
        ``$SQUADNB_HOME`` or ``~/.squadnb``); each host's instances live in that host's home.
    :raises ImportError: Dask distributed is not installed (the message names the extra).
    :raises ValueError: ``squads`` names a worker the scheduler does not know, or ``per_host < 1``.
    :raises OSError: the scheduler cannot be reached.
    """

    def __init__(self, client: Any, repo: str | Path = ".", program: str | None = None,
                 squads: Mapping[Any, Mapping[str, Any]] | None = None,
                 per_host: int | None = None, home: str | os.PathLike[str] | None = None) -> None:
        _distributed()
        if per_host is not None and per_host < 1:
            raise ValueError(f"per_host must be at least 1 (or None: no limit), got {per_host!r}")
        if isinstance(client, str):
            self.scheduler_address, self._security = client, None
        else:
            self.scheduler_address, self._security = client.scheduler.address, client.security
        self.repo = str(repo)
        self.program = program
        self.home = Path(home if home is not None else os.environ.get("SQUADNB_HOME", "~/.squadnb"))
        self.home = self.home.expanduser().absolute()
        self._journal: Journal | None = None
        self.per_host = per_host
        self._squads = {str(name): dict(kwargs) for name, kwargs in (squads or {}).items()}
        self._client: Any = None
        self._addresses: dict[str, str] = {}  # host name -> worker address
        self._gone: dict[str, asyncio.Future[None]] = {}  # worker address -> set when it left
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._proxies: dict[tuple[str, str], RemoteInstance] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.closed = False
        _loop.run_sync(self._aconnect())
        unknown = sorted(set(self._squads) - set(self._addresses))
        if unknown:
            self.close()
            raise ValueError(f"squads= names workers the scheduler does not know: {unknown} "
                             f"(workers: {self.hosts})")
        _fleets[self.scheduler_address].add(self)

    # ------------------------------------------------------------------ connection
    async def _aconnect(self) -> None:
        distributed = _distributed()
        self._client = await distributed.Client(self.scheduler_address, asynchronous=True,
                                                set_as_default=False, security=self._security)
        self._client.subscribe_topic("all", self._on_event)
        await self._refresh_workers()

    async def _refresh_workers(self) -> None:
        info = await self._client.scheduler.identity()
        self._addresses = {str(w.get("name", address)): address
                           for address, w in info["workers"].items()}

    def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        _, message = event
        if isinstance(message, dict) and message.get("action") == "remove-worker":
            gone = self._gone_future(message["worker"])
            if not gone.done():
                gone.set_result(None)

    def _gone_future(self, address: str) -> asyncio.Future[None]:
        gone = self._gone.get(address)
        if gone is None:
            gone = self._gone[address] = asyncio.get_running_loop().create_future()
        return gone

    async def _address_of(self, host: str, what: str = "") -> str:
        """The live worker address of ``host``; looks again when it left (a restarted worker keeps its
        name). :raises HostLost: no live worker has that name (the message says ``what`` did not run)."""
        address = self._addresses.get(host)
        if address is None or self._gone_future(address).done():
            await self._refresh_workers()
            address = self._addresses.get(host)
            if address is None or self._gone_future(address).done():
                raise HostLost(f"host {host!r} is gone: no Dask worker named {host!r} is connected to "
                               f"{self.scheduler_address}" + (f"; {what} did not run" if what else ""),
                               host)
        return address

    def squad_kwargs(self, host: str) -> dict[str, Any]:
        """The Squad keyword arguments ``host`` builds its Squad with."""
        return {"repo": self.repo, "program": self.program, **self._squads.get(host, {})}

    # ------------------------------------------------------------------ remote calls
    async def _remote(self, host: str, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any,
                      what: str, address: str | None = None) -> Any:
        """Run ``fn(*args)`` on ``host``'s squadnb loop (at ``address`` when the caller has looked it
        up) and return its result.

        :raises HostLost: the host's worker left before or while it ran (``what`` says what was lost).
        """
        if address is None:
            address = await self._address_of(host, what)
        token = uuid.uuid4().hex
        future = self._client.submit(_host_task, token, fn, *args, key=f"squadnb-{fn.__name__}-{token}",
                                     workers=[address], allow_other_workers=False, pure=False)
        gone = self._gone_future(address)
        waiter = asyncio.ensure_future(self._result(future))
        try:
            await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            waiter.cancel()
            self._in_background(self._cancel_remote(address, token, future))
            raise
        if waiter.done():
            return waiter.result()
        waiter.cancel()
        self._in_background(self._client.cancel([future]))
        raise HostLost(f"host {host!r} was lost while running {what}: its Dask worker {address} left "
                       "the cluster; the outcome on that host is unknown", host)

    @staticmethod
    async def _result(future: Any) -> Any:
        return await future

    async def _cancel_remote(self, address: str, token: str, future: Any) -> None:
        with contextlib.suppress(Exception):  # the host may be gone: nothing left to stop there
            await self._client.run(_cancel_on_host, token, workers=[address], on_error="ignore")
        with contextlib.suppress(Exception):
            await self._client.cancel([future])

    def _in_background(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _slot(self, host: str) -> contextlib.AbstractAsyncContextManager[Any]:
        if self.per_host is None:
            return contextlib.nullcontext()
        slot = self._slots.get(host)
        if slot is None:
            slot = self._slots[host] = asyncio.Semaphore(self.per_host)
        return slot

    async def _run_phase(self, proxy: RemoteInstance, phase: str, operation: Any) -> Any:
        shipped = _ship(operation)
        what = f"{op_name(operation)} ({phase}) on instance {proxy.title!r}"
        record = tally.get(None)
        try:
            async with self._slot(proxy.host):
                try:
                    address = await self._address_of(proxy.host, what)
                except HostLost:
                    if record is not None and phase == "execute":
                        record.attempts = 0  # gone before it was sent: nothing ran
                    raise
                outcome = _loads(await self._remote(
                    proxy.host, _host_phase, self.squad_kwargs(proxy.host), proxy.title, phase,
                    shipped, operation_timeout.get(), what=what, address=address))
        except HostLost:
            if phase == "validate":
                return None  # the execute that follows reports it (module docstring)
            raise
        if record is not None:
            if phase == "execute":
                record.attempts = outcome.attempts
            if outcome.verified is not None:
                record.verified = outcome.verified
        return self._settle(proxy, outcome)

    async def _acall(self, proxy: RemoteInstance, name: str, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> Any:
        return await _loop.arun(self._acall_on_loop(proxy, name, args, kwargs))

    async def _acall_on_loop(self, proxy: RemoteInstance, name: str, args: tuple[Any, ...],
                             kwargs: dict[str, Any]) -> Any:
        outcome = _loads(await self._remote(
            proxy.host, _host_method, self.squad_kwargs(proxy.host), proxy.title, name,
            _ship((args, kwargs)), what=f"{name}() on instance {proxy.title!r}"))
        return self._settle(proxy, outcome)

    @staticmethod
    def _settle(proxy: RemoteInstance, outcome: _Outcome) -> Any:
        """Show the instance's new fields on the proxy; return the value or raise the host's error."""
        proxy._update(outcome.fields)
        if outcome.error is not None:
            raise _rebuild_error(outcome.error, proxy.host)
        return outcome.value

    def _proxy(self, host: str, fields: dict[str, Any]) -> RemoteInstance:
        fields = {**fields, "_scheduler": self.scheduler_address}
        proxy = self._proxies.get((host, fields["title"]))
        if proxy is None:
            proxy = self._proxies[(host, fields["title"])] = RemoteInstance(self, host, fields)
        else:
            proxy._fields = fields
        return proxy

    # ------------------------------------------------------------------ the public API
    @property
    def hosts(self) -> list[str]:
        """The worker names (sorted) as of the last look at the scheduler."""
        return sorted(self._addresses)

    @property
    def instances(self) -> list[RemoteInstance]:
        """Every instance of every host (hosts by name, then creation order), as proxies; the same
        proxy object for the same instance across calls. :raises HostLost: a host is gone."""
        return _loop.run_sync(self.ainstances())

    @_loop.on_loop
    async def ainstances(self, refresh: bool = False) -> list[RemoteInstance]:
        """The async twin of :attr:`instances`; ``refresh=True`` refreshes every host first."""
        await self._refresh_workers()
        hosts = self.hosts
        listed = await asyncio.gather(*(
            self._remote(host, _host_list, self.squad_kwargs(host), refresh, what="a listing")
            for host in hosts))
        return [self._proxy(host, fields) for host, rows in zip(hosts, listed) for fields in rows]

    def refresh(self) -> None:
        return _loop.run_sync(self.arefresh())

    @_loop.on_loop
    async def arefresh(self) -> None:
        """Refresh every host's Squad in parallel (statuses from the panes, diff stats; see
        ``Squad.refresh``) and update the proxies. :raises HostLost: a host is gone."""
        await self.ainstances(refresh=True)

    def new(self, title: str, host: str | None = None, program: str | None = None,
            branch: str | None = None, prompt: str | None = None) -> RemoteInstance:
        return _loop.run_sync(self.anew(title, host, program, branch, prompt))

    @_loop.on_loop
    async def anew(self, title: str, host: str | None = None, program: str | None = None,
                   branch: str | None = None, prompt: str | None = None) -> RemoteInstance:
        """A new instance on ``host`` (``None``: the host with the fewest instances), not started; see
        ``Squad.new`` for the other arguments.

        :raises DuplicateTitle: a host already has an instance with that title (titles are unique
            across the fleet, so results name instances unambiguously), or ``Squad.new``'s reasons.
        :raises ValueError: ``host`` is not one of :attr:`hosts`.
        :raises HostLost: the host is gone.
        """
        from squadnb.errors import DuplicateTitle

        current = await self.ainstances()
        taken = next((p for p in current if p.title == title), None)
        if taken is not None:
            raise DuplicateTitle(f"instance {title!r} already exists on host {taken.host!r}")
        if host is None:
            counts = {h: 0 for h in self.hosts}
            for proxy in current:
                counts[proxy.host] = counts.get(proxy.host, 0) + 1
            if not counts:
                raise ValueError(f"the fleet has no hosts: no Dask worker is connected to "
                                 f"{self.scheduler_address}")
            host = min(sorted(counts), key=counts.__getitem__)
        elif host not in self._addresses:
            raise ValueError(f"unknown host {host!r} (hosts: {self.hosts})")
        fields = await self._remote(host, _host_new, self.squad_kwargs(host), title, program, branch,
                                    prompt, what=f"new({title!r})")
        return self._proxy(host, fields)

    @property
    def journal(self) -> Journal:
        """The journal of the batches run from this machine over the fleet: a
        :class:`~squadnb.Journal` at ``<home>/history.sqlite`` (this machine's home, shared with a local
        Squad of that home), opened on first use. :raises JournalError: it cannot be opened."""
        if self._journal is None:
            from squadnb.engine.journal import Journal

            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._journal = Journal(self.home / "history.sqlite")
        return self._journal

    def __getitem__(self, title: str) -> RemoteInstance:
        """The instance titled ``title``, on whichever host. :raises UnknownInstance: none has it."""
        for proxy in self.instances:
            if proxy.title == title:
                return proxy
        raise UnknownInstance(f"no instance titled {title!r} on any host of the fleet ({self.hosts})")

    def __iter__(self) -> Iterator[RemoteInstance]:
        return iter(self.instances)

    def __len__(self) -> int:
        return len(self.instances)

    def to_dataframe(self) -> pd.DataFrame:
        return _loop.run_sync(self.ato_dataframe())

    @_loop.on_loop
    async def ato_dataframe(self) -> pd.DataFrame:
        """Every host's ``Squad.to_dataframe()`` (what each host's Squad knows; ``refresh()`` first to
        look at the panes), one below the other by host name, with a ``host`` column after ``title``.
        :raises HostLost: a host is gone."""
        import pandas as pd

        await self._refresh_workers()
        hosts = self.hosts
        tables = await asyncio.gather(*(
            self._remote(host, _host_table, self.squad_kwargs(host), what="the table") for host in hosts))
        for host, table in zip(hosts, tables):
            table.insert(1, "host", pd.Series([host] * len(table), dtype="str", index=table.index))
        if not tables:
            return pd.DataFrame({"title": pd.Series(dtype="str"), "host": pd.Series(dtype="str")})
        return pd.concat(tables, ignore_index=True)

    def close(self) -> None:
        return _loop.run_sync(self.aclose())

    @_loop.on_loop
    async def aclose(self) -> None:
        """Close the Fleet's own Dask client (the workers, their squads and agents keep running)."""
        if self.closed:
            return
        self.closed = True
        if self._client is not None:
            with contextlib.suppress(ValueError):
                self._client.unsubscribe_topic("all")
            await self._client.close()
        _fleets[self.scheduler_address].discard(self)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"hosts={self.hosts}"
        return f"Fleet({self.scheduler_address!r}, {state})"
