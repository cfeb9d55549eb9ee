"""``python -m mock_server``: the mock's command line, the same click command as ``mmgen mock``
(:mod:`mock_server.command`), for running the mock without mmgen's CLI."""

from __future__ import annotations

from mock_server.command import mock_command

mock_command(prog_name="python -m mock_server")
