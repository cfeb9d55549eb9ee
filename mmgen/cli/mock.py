"""``mmgen mock``: the mock's own command line (:mod:`mock_server.command`, also
``python -m mock_server``), added to the ``mmgen`` group: one set of options for both."""

from __future__ import annotations

from mmgen.cli.app import main
from mock_server.command import mock_command

main.add_command(mock_command, "mock")
