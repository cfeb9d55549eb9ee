"""mmgen: turn reviewed YAML job files into MiniMax subject-reference videos.

The command and the import package are ``mmgen``; the distribution on the package index is
``mmgen-minimax`` (``pip install mmgen-minimax``): the index's ``mmgen`` is another project
(OpenMMLab's MMGeneration).
"""

__version__ = "0.1.0"
#: The distribution name: what ``pip install`` / ``pip show`` take (not the command's name).
DISTRIBUTION = "mmgen-minimax"
