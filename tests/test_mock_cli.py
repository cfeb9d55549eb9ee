"""`mmgen mock` and `python -m mock_server` are one command: the same options, the same help,
nothing that points an installed user at files of mmgen's repository."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.schemas import load_schema
from mock_server.config import CONFIG_SCHEMA, MockConfig

ROOT = Path(__file__).resolve().parent.parent


def help_of(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, *argv, "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "100"},
    )
    return done.stdout


def test_both_command_lines_have_the_same_options_and_help() -> None:
    alone = help_of("-m", "mock_server")
    grouped = help_of("-m", "mmgen", "mock")
    assert alone.splitlines()[0] == "Usage: python -m mock_server [OPTIONS]"
    assert grouped.splitlines()[0] == "Usage: python -m mmgen mock [OPTIONS]"
    assert alone.splitlines()[1:] == grouped.splitlines()[1:]
    for option in ("--state-dir", "--cdn-port", "--record", "--replay", "--print-config-schema"):
        assert option in grouped


def test_the_help_points_at_no_file_of_the_repository() -> None:
    text = help_of("-m", "mmgen", "mock")
    assert not re.search(r"mock_server/|schemas/|docs/|\.py\b|mock_config\.json", text), text


def test_print_config_schema_gives_every_key_of_a_config_file() -> None:
    result = CliRunner().invoke(main, ["mock", "--print-config-schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema == load_schema(CONFIG_SCHEMA)
    assert set(schema["properties"]) == set(MockConfig().to_dict())
    assert schema["properties"]["generation_seconds"]["default"] == 6


def serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen(
        [sys.executable, "-m", "mmgen", "-q", "mock", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    for line in child.stdout:
        if "export MINIMAX_BASE_URL=" in line:
            return child, line.split("=", 1)[1].strip()
    child.wait()
    raise AssertionError(f"mmgen mock did not start (exit {child.returncode})")


def stop(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=15) == 0
    assert child.stdout is not None
    child.stdout.close()


def test_mmgen_mock_keeps_its_tasks_in_a_state_dir_across_a_restart(tmp_path: Path) -> None:
    """--state-dir was python -m mock_server's only; --cdn-port -1 too (downloads on the API)."""
    args = ("--state-dir", str(tmp_path / "state"), "--cdn-port", "-1", "--api-key", "sk-1")
    headers = {"Authorization": "Bearer sk-1"}
    body = {"model": "T2V-01", "prompt": "A cat."}
    child, url = serve(*args)
    try:
        with httpx.Client(base_url=url, headers=headers, trust_env=False, timeout=10) as http:
            task_id = http.post("/v1/video_generation", json=body).json()["task_id"]
    finally:
        stop(child)
    child, url = serve(*args)
    try:
        with httpx.Client(base_url=url, headers=headers, trust_env=False, timeout=10) as http:
            query = http.get("/v1/query/video_generation", params={"task_id": task_id}).json()
    finally:
        stop(child)
    assert query["base_resp"]["status_code"] == 0 and query["task_id"] == task_id
