"""Real instances: a git worktree on its own branch plus a tmux session running an agent program.

``tmux.py`` and ``git.py`` own the command lines, ``instance.py`` the order of steps and the status,
``squad.py`` the set of instances of one home and its files (through ``_storage.py``).
"""

from squadnb.session.git import DiffStats
from squadnb.session.instance import Instance, PauseReport, Status
from squadnb.session.squad import Squad

__all__ = ["DiffStats", "Instance", "PauseReport", "Squad", "Status"]

for _name in __all__:
    globals()[_name].__module__ = "squadnb.session"
del _name
