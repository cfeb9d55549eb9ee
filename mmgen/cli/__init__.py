"""The command line: click commands only, one room per kind of command.

- :mod:`mmgen.cli.app`: the ``mmgen`` group, global options, shared options, the error edge;
- :mod:`mmgen.cli.jobs`: validate, plan, status, schema, init (they spend nothing);
- :mod:`mmgen.cli.run`: run;
- :mod:`mmgen.cli.mock`: mock (serve, record, replay);
- :mod:`mmgen.cli.store`: claims, unlock, store copy (the out dir itself).

Each command parses its options, builds the parts, calls the core and maps
:class:`~mmgen.errors.MmgenError` to an exit code. Nothing below this package imports click or
prints, except the renderers of :mod:`mmgen.report`.
"""

from mmgen.cli import jobs, mock, run, store  # noqa: F401  (each registers its commands on main)
from mmgen.cli.app import main

__all__ = ["main"]
