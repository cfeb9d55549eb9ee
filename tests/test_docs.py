"""The README documents every command and option, and every key a job file may hold."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from mmgen.cli import main
from mmgen.schemas import JOB_SCHEMA, REQUEST_SCHEMA, load_schema

README_PATH = Path(__file__).resolve().parent.parent / "README.md"
README = README_PATH.read_text()
COMMANDS = sorted(main.commands)


def test_all_commands_are_listed() -> None:
    assert set(COMMANDS) >= {"validate", "plan", "run", "status", "mock", "schema"}


@pytest.mark.parametrize("name", COMMANDS)
def test_command_has_help_and_is_documented(name: str) -> None:
    command = main.commands[name]
    assert command.help, f"mmgen {name} has no help text"
    assert f"mmgen {name}" in README
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"mmgen {name} {param.opts[0]} has no help text"
            long = max(param.opts, key=len)
            assert long in README, f"README does not mention {long} of mmgen {name}"


def test_global_options_are_documented() -> None:
    for option in ("-v/--verbose", "-q/--quiet", "--version"):
        assert option in README


def _keys(schema: object) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        found |= set(schema.get("properties", {}))
        for value in schema.values():
            found |= _keys(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= _keys(value)
    return found


def test_every_job_key_of_the_schema_is_documented() -> None:
    keys = _keys(load_schema(REQUEST_SCHEMA)) | _keys(load_schema(JOB_SCHEMA))
    keys -= {"file", "type", "image"}  # nested keys, shown in the example
    missing = sorted(k for k in keys if not re.search(rf"`{re.escape(k)}:?`", README))
    assert not missing, f"README does not document: {missing}"


def test_status_fields_match_the_records() -> None:
    from mmgen.state.records import Record

    for field in Record.__dataclass_fields__:
        assert f"`{field}`" in README, field


def _code_block_after(marker: str) -> list[str]:
    """The lines of README's first ```sh block after ``marker``."""
    rest = README.split(marker, 1)[1]
    block = rest.split("```sh\n", 1)[1].split("```", 1)[0]
    return block.strip().splitlines()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    (command,) = _code_block_after("Test command (what CI runs")
    ci = (README_PATH.parent / ".ci" / "run").read_text().splitlines()
    assert ci[-1] == command  # .ci/run ends with it, verbatim
    assert "README.md's test command" in "\n".join(ci[-4:])
    setup, tests = _code_block_after("## Quick start")
    assert tests == command
    for line in (setup, tests):  # PEP 668: nothing goes into the system Python
        assert line.startswith("python3 -m venv .venv && .venv/bin/pip install "), line
