"""``python -m mmgen.cli.reference``: write ``docs/cli-reference.md``, every command's ``--help``.

The reference is generated, never edited by hand: ``tests/test_docs.py`` regenerates it and
fails when the checked-in file differs (run this module to update it). The help is rendered at
a fixed width, so the file does not depend on the terminal that wrote it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mmgen.cli import main

#: The width the help is wrapped at (the terminal's is ignored).
WIDTH = 100
DEFAULT_PATH = Path("docs/cli-reference.md")

HEADER = """\
# mmgen command-line reference

Generated from each command's `--help` by `python -m mmgen.cli.reference` (do not edit: CI
checks that this file matches the commands). Global options (`-v`, `-q`, `--version`) go before
the command: `mmgen -v run specs/`. `python -m mock_server` is the same command as `mmgen mock`.
"""


def _context(command: click.Command, name: str, parent: click.Context | None) -> click.Context:
    """The context ``--help`` would print from (the command's own settings, e.g. ``-h``)."""
    return command.make_context(
        name,
        [],
        parent=parent,
        resilient_parsing=True,  # no error for a missing PATH argument
        terminal_width=WIDTH,
        max_content_width=WIDTH,
    )


def render() -> str:
    """The whole reference, Markdown."""
    root = _context(main, "mmgen", None)
    sections = [HEADER, "## `mmgen`\n", f"```text\n{main.get_help(root)}\n```\n"]
    for name in sorted(main.commands):
        command = main.commands[name]
        help_text = command.get_help(_context(command, name, root))
        sections.append(f"## `mmgen {name}`\n")
        sections.append(f"```text\n{help_text}\n```\n")
    return "\n".join(sections)


def write(path: Path = DEFAULT_PATH) -> bool:
    """Write the reference to ``path``; True when it changed."""
    text = render()
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


if __name__ == "__main__":  # pragma: no cover - a developer's command
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    click.echo(f"{target}: {'updated' if write(target) else 'up to date'}")
