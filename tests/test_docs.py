"""The docs match the code: docs/cli-reference.md is every command's --help (regenerated and
compared), every command and option has help text, README documents every key a job file may
hold and every field of a record, and CI runs README's test command."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from mmgen.cli import main
from mmgen.schemas import JOB_SCHEMA, REQUEST_SCHEMA, load_schema

ROOT = Path(__file__).resolve().parent.parent
README_PATH = ROOT / "README.md"
README = README_PATH.read_text()
COMMANDS = sorted(main.commands)


def test_all_commands_are_listed() -> None:
    assert set(COMMANDS) >= {"validate", "plan", "run", "status", "mock", "schema", "init"}


@pytest.mark.parametrize("name", ["", *COMMANDS])
def test_every_command_and_option_has_help_text(name: str) -> None:
    command = main.commands[name] if name else main
    assert command.help, f"mmgen {name} has no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"mmgen {name} {param.opts[0]} has no help text"


def test_the_cli_reference_is_the_commands_help() -> None:
    """docs/cli-reference.md is generated from --help: regenerated here, it must not differ."""
    from mmgen.cli.reference import DEFAULT_PATH, render

    checked_in = (ROOT / DEFAULT_PATH).read_text()
    assert checked_in == render(), "docs/cli-reference.md is stale: python -m mmgen.cli.reference"
    for name in COMMANDS:
        assert f"## `mmgen {name}`" in checked_in


def test_readme_links_the_cli_reference() -> None:
    assert "(docs/cli-reference.md)" in README


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
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci[-1] == command  # .ci/run ends with it, verbatim
    assert "README.md's test command" in "\n".join(ci[-4:])
    setup, tests = _code_block_after("## Quick start")
    assert tests == command
    for line in (setup, tests):  # PEP 668: nothing goes into the system Python
        assert line.startswith("python3 -m venv .venv && .venv/bin/pip install "), line
