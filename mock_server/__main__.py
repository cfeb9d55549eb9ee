"""``python -m mock_server``: the same as ``mmgen mock`` (same options)."""

import sys

from mmgen.cli import main

main(args=["mock", *sys.argv[1:]], prog_name="python -m mock_server")
