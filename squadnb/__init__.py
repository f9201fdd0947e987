"""squadnb: batch operations over many AI coding-agent instances, from notebooks, scripts and the terminal.

Every public name is re-exported here lazily: ``import squadnb`` loads none of pandas, tqdm or
ipywidgets (nor the engine) until a name that needs them is first used, so a twenty-agent start stays
light on a small machine.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # engine
    "BatchExecutor": "squadnb.engine.executor",
    "BatchFuture": "squadnb.engine.executor",
    "CompositeOperation": "squadnb.engine.operation",
    "Journal": "squadnb.engine.journal",
    "ConditionalOperation": "squadnb.engine.operation",
    "Operation": "squadnb.engine.operation",
    "OperationChain": "squadnb.engine.transaction",
    "OperationResult": "squadnb.engine.result",
    "PartialResult": "squadnb.engine.result",
    "ProgressCallbackWarning": "squadnb.engine.progress",
    "ProgressTracker": "squadnb.engine.progress",
    "RetryOperation": "squadnb.engine.operation",
    "TransactionManager": "squadnb.engine.transaction",
    "operation": "squadnb.engine.operation",
    # errors
    "BatchError": "squadnb.errors",
    "BatchInterrupted": "squadnb.errors",
    "BranchCheckedOut": "squadnb.errors",
    "Cancelled": "squadnb.errors",
    "ClaudeSquadRunning": "squadnb.errors",
    "CommandError": "squadnb.errors",
    "CommandFailed": "squadnb.errors",
    "DuplicateTitle": "squadnb.errors",
    "GitError": "squadnb.errors",
    "HostLost": "squadnb.errors",
    "InvalidState": "squadnb.errors",
    "InvalidPrompt": "squadnb.errors",
    "InvalidTitle": "squadnb.errors",
    "JournalError": "squadnb.errors",
    "NotAGitRepo": "squadnb.errors",
    "OperationTimeout": "squadnb.errors",
    "ProgramExited": "squadnb.errors",
    "PromptNotDelivered": "squadnb.errors",
    "RollbackIncomplete": "squadnb.errors",
    "RollbackNotSupported": "squadnb.errors",
    "RolledBack": "squadnb.errors",
    "SessionError": "squadnb.errors",
    "SquadError": "squadnb.errors",
    "StateFileError": "squadnb.errors",
    "StateWriteError": "squadnb.errors",
    "TmuxError": "squadnb.errors",
    "TransactionError": "squadnb.errors",
    "UnknownBatch": "squadnb.errors",
    "UnknownInstance": "squadnb.errors",
    "UnsafePath": "squadnb.errors",
    "ValidationError": "squadnb.errors",
    "VerificationError": "squadnb.errors",
    # sessions
    "DiffStats": "squadnb.session.git",
    "Instance": "squadnb.session.instance",
    "Squad": "squadnb.session.squad",
    "Status": "squadnb.session.instance",
    # built-in operations
    "BatchKillOperation": "squadnb.ops",
    "BatchPauseOperation": "squadnb.ops",
    "BatchPromptOperation": "squadnb.ops",
    "BatchPushOperation": "squadnb.ops",
    "BatchResumeOperation": "squadnb.ops",
    "BatchStartOperation": "squadnb.ops",
    "CommandRun": "squadnb.ops",
    "DiffOperation": "squadnb.ops",
    "RunCommand": "squadnb.ops",
    # several hosts (Dask distributed, the optional extra squadnb[distributed])
    "Fleet": "squadnb.distributed",
    # notebook layer
    "BatchForm": "squadnb.notebook.form",
    "StatusView": "squadnb.notebook.watch",
    "watch": "squadnb.notebook.watch",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'squadnb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
