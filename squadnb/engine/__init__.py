"""The Batch Operations API: one operation over many instances of anything (no tmux or git here)."""

from squadnb.engine.executor import BatchExecutor, BatchFuture
from squadnb.engine.operation import (
    CompositeOperation,
    ConditionalOperation,
    Operation,
    RetryOperation,
    operation,
)
from squadnb.engine.journal import Journal
from squadnb.engine.progress import ProgressCallbackWarning, ProgressTracker
from squadnb.engine.result import OperationResult, PartialResult
from squadnb.engine.transaction import OperationChain, TransactionManager

__all__ = [
    "BatchExecutor",
    "BatchFuture",
    "CompositeOperation",
    "ConditionalOperation",
    "Journal",
    "Operation",
    "OperationChain",
    "OperationResult",
    "PartialResult",
    "ProgressCallbackWarning",
    "ProgressTracker",
    "RetryOperation",
    "TransactionManager",
    "operation",
]
