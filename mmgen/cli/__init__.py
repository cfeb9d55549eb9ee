"""The command line: click commands only, one room per kind of command.

- :mod:`mmgen.cli.app`: the ``mmgen`` group, global options, shared options, the error edge;
- :mod:`mmgen.cli.jobs`: validate, plan, status, schema, init (they spend nothing);
- :mod:`mmgen.cli.run`: run;
- :mod:`mmgen.cli.mock`: mock, the mock's own command (:mod:`mock_server.command`: serve,
  record, replay), also ``python -m mock_server``;
- :mod:`mmgen.cli.reference`: writes ``docs/cli-reference.md`` from every command's ``--help``.

Each command parses its options, builds the parts, calls the core and maps
:class:`~mmgen.errors.MmgenError` to an exit code. Nothing below this package imports click or
prints, except the renderers of :mod:`mmgen.report`.
"""

from mmgen.cli import jobs, mock, run, store  # noqa: F401  (each registers its commands on main)
from mmgen.cli.app import main

__all__ = ["main"]
