"""mmgen: turn reviewed YAML job files into MiniMax subject-reference videos."""

__version__ = "0.1.0"
