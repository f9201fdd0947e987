"""``python -m squadnb``: the same as the ``squadnb`` command."""

from squadnb.cli import main

raise SystemExit(main())
