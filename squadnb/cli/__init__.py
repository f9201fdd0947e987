"""The ``squadnb`` command: the demo, and batch operations over a squad from a terminal or a script.

``squadnb demo`` (:mod:`squadnb.cli.demo`) runs the whole lifecycle on demo agents in a throwaway
repository and removes everything it made. The batch commands (:mod:`squadnb.cli.commands`: ``ls new
start pause resume kill prompt diff preview``) pick their targets by title, ``--all``, ``--status`` or
``--where`` and run one operation over them; :mod:`squadnb.cli.output` prints the records, built from
``PartialResult.to_dataframe()``. :mod:`squadnb.cli.parser` holds the parser and :func:`main`, and
imports a command's module only when that command runs, so ``squadnb --help`` starts fast.

Exit status: 0 every instance succeeded; 1 some failed (or a transaction was rolled back); 2 bad
input — nothing was changed (unknown title, bad expression, empty selection, no git repository,
``kill`` of unsaved work without ``--force``, argparse errors); 130 interrupted.
"""

from squadnb.cli.parser import main

__all__ = ["main"]
