"""mmgen: turn reviewed YAML job files into MiniMax subject-reference videos.

The command and the import package are ``mmgen``; the distribution on the package index is
``mmgen-minimax`` (``pip install mmgen-minimax``): the index's ``mmgen`` is another project
(OpenMMLab's MMGeneration).
"""

__version__ = "0.1.0"
#: MiniMax's international API (mainland China's is https://api.minimaxi.com): the default of
#: ``--base-url`` / ``MINIMAX_BASE_URL``, of the client, and the API records count as theirs.
DEFAULT_BASE_URL = "https://api.minimax.io"
#: The distribution name: what ``pip install`` / ``pip show`` take (not the command's name).
DISTRIBUTION = "mmgen-minimax"
