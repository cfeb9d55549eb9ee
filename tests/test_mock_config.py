"""The mock's config files, `mmgen mock` and `python -m mock_server`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

import mock_server.config
from mmgen.cli import main
from mmgen.errors import UsageError
from mock_server import MockConfig, MockConfigError, config_from_dict, create_app, load_config


def docstring_example() -> str:
    """The YAML example in mock_server/config.py's docstring (kept valid by this test)."""
    doc = mock_server.config.__doc__ or ""
    block = doc.split("Example::", 1)[1].split("\nProbabilities", 1)[0]
    return textwrap.dedent(block)


def test_the_documented_example_loads(tmp_path):
    path = tmp_path / "mock.yaml"
    path.write_text(docstring_example())
    config = load_config(path)
    assert config.seed == 42
    assert config.generation_jitter == 1.0
    assert config.faults.rate_limit.rpm == 20
    assert config.faults.codes[0].code == 2056
    assert config.faults.sensitive.input_words == ["violence"]
    assert config.faults.downloads.truncate_mode == "abort"
    create_app(config)  # and the app takes it


def test_json_files_and_empty_files(tmp_path):
    path = tmp_path / "mock.json"
    path.write_text(json.dumps({"generation_seconds": 1, "faults": {"drops": {"query": 0.5}}}))
    config = load_config(path)
    assert config.generation_seconds == 1.0
    assert config.faults.drops.query == 0.5
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == MockConfig()


def test_config_round_trips_through_a_dict():
    config = config_from_dict({"seed": 3, "faults": {"callbacks": {"drop": 0.2}}})
    assert config_from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("generation_secs: 3", ":1:1: generation_secs: unknown key; did you mean"),
        ("faults: {drops: {qurey: 0.1}}", ":1:18: faults.drops.qurey: unknown key"),
        ("generation_seconds: fast", ":1:21: generation_seconds: must be a number, not a string"),
        ("seed: 1.5", ":1:7: seed: must be an integer"),
        ("api_key: 12", ":1:10: api_key: must be a string"),
        ("faults: {rate_limit: {probability: 2}}", ":1:36: faults.rate_limit.probability: 2 must"),
        ("faults: {rate_limit: {endpoints: [upload]}}", "endpoints.0: 'upload' is not one of"),
        ("faults: {challenge: {mode: shout}}", ":1:28: faults.challenge.mode"),
        ("faults: {downloads: {truncate_mode: cut}}", "faults.downloads.truncate_mode"),
        ("faults: {codes: [{probability: 1}]}", ":1:18: faults.codes.0.code: missing"),
        ("faults: {server_errors: {status: 404}}", "faults.server_errors.status"),
        ("video: {width: 321}", "video.width"),
        ("challenge_mode: later", ":1:17: challenge_mode: 'later' is not one of"),
        ("faults: [1, 2]", ":1:9: faults: must be a mapping, not a list"),
        ("- 1", ":1:1: (document): a mock config must be a mapping"),
        ("a: [", ":1:5: (document): YAML syntax error"),
        ("tasks: {fail_probability: true}", ":1:1: tasks: unknown key"),
    ],
)
def test_bad_config_files_get_one_clear_line(tmp_path, text, message):
    path = tmp_path / "mock.yaml"
    path.write_text(text)
    with pytest.raises(MockConfigError) as info:
        load_config(path)
    assert isinstance(info.value, UsageError)
    assert message in info.value.message
    assert info.value.message.startswith(f"{path}:1:")
    assert "\n" not in info.value.one_line()
    assert info.value.message == "; ".join(str(p) for p in info.value.problems)


def test_every_problem_of_a_config_file_is_located(tmp_path):
    path = tmp_path / "mock.yaml"
    path.write_text("seed: 3\nfaults:\n  drops: {qurey: 0.1}\n  tasks:\n    slow_factor: 0.5\n")
    with pytest.raises(MockConfigError) as info:
        load_config(path)
    assert [(p.line, p.column, p.field) for p in info.value.problems] == [
        (3, 11, "faults.drops.qurey"),
        (5, 18, "faults.tasks.slow_factor"),
    ]


def test_missing_config_file():
    with pytest.raises(MockConfigError, match="cannot read mock config"):
        load_config("/nonexistent/mock.yaml")


def test_create_app_validates_its_config():
    with pytest.raises(MockConfigError, match="generation_seconds"):
        create_app(MockConfig(generation_seconds=-1))


def test_cli_refuses_a_bad_config_with_exit_2(tmp_path):
    path = tmp_path / "mock.yaml"
    path.write_text("faults: {drops: {qurey: 0.1}}\n")
    result = CliRunner().invoke(main, ["mock", "--config", str(path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("mmgen: error: ")
    assert "qurey" in lines[0]


def test_cli_refuses_a_bad_option_value_with_exit_2():
    result = CliRunner().invoke(main, ["mock", "--generation-seconds", "-3"])
    assert result.exit_code == 2
    assert "generation_seconds" in result.output


def test_cli_reports_a_busy_port(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["mock", "--port", str(port)])
    assert result.exit_code == 2
    assert "cannot listen on 127.0.0.1:" in result.output


def serve_subprocess(*args: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=Path(__file__).parent.parent,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+)", line)
    if match is None:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        raise AssertionError(f"no URL printed: {line!r}")
    return proc, match.group(1)


@pytest.mark.parametrize(
    "command",
    [["-m", "mock_server"], ["-m", "mmgen", "-q", "mock"]],
    ids=["python -m mock_server", "mmgen mock"],
)
def test_serves_in_the_foreground_until_interrupted(tmp_path, command):
    config = tmp_path / "mock.yaml"
    config.write_text("faults: {balance: {max_tasks: 0}}\n")
    proc, url = serve_subprocess(
        *command, "--port", "0", "--seed", "7", "--config", str(config), "--api-key", "sk-1"
    )
    try:
        headers = {"Authorization": "Bearer sk-1"}
        with httpx.Client(base_url=url, trust_env=False, verify=False, timeout=10) as c:
            settings = c.get("/_mock/config").json()
            assert settings["effective_seed"] == 7
            body = c.post(
                "/v1/video_generation", json={"model": "T2V-01", "prompt": "x"}, headers=headers
            )
            assert body.json()["base_resp"]["status_code"] == 1008
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    assert proc.returncode == 0  # Ctrl-C is the normal way to stop a foreground server


def test_schema_and_dataclasses_describe_the_same_keys():
    """schemas/mock_config.json and mock_server.config mirror each other, defaults included."""
    import dataclasses
    import typing

    from mmgen.schemas import load_schema
    from mock_server.config import CONFIG_SCHEMA

    def walk(cls: Any, schema: dict[str, Any], where: str) -> None:
        properties = schema["properties"]
        names = {f.name for f in dataclasses.fields(cls)}
        assert names == set(properties), where
        hints = typing.get_type_hints(cls)
        instance = cls() if where != "faults.codes" else cls(code=1)
        for f in dataclasses.fields(cls):
            sub = properties[f.name]
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], sub, f"{where}.{f.name}".lstrip("."))
            elif typing.get_origin(hints[f.name]) is list and "properties" in sub.get("items", {}):
                walk(typing.get_args(hints[f.name])[0], sub["items"], f"{where}.{f.name}")
            elif "default" in sub:
                assert getattr(instance, f.name) == sub["default"], f"{where}.{f.name}"

    walk(MockConfig, load_schema(CONFIG_SCHEMA), "")


def test_the_mock_imports_only_the_shared_parts_of_mmgen():
    root = Path(__file__).parent.parent / "mock_server"
    imported = set()
    for source in root.glob("*.py"):
        imported |= set(re.findall(r"^\s*(?:from|import) (mmgen[\w.]*)", source.read_text(), re.M))
    assert imported <= {"mmgen.errors", "mmgen.schemas", "mmgen.serving", "mmgen.connections"}
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['mock_server', '--help']\n"
        "try:\n    runpy.run_module('mock_server', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('mmgen.cli' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=root.parent
    ).stdout
    assert "--cdn-port" in out and "--state-dir" in out
    assert out.strip().endswith("False")


def test_python_m_mock_server_refuses_a_bad_config_with_exit_2(tmp_path):
    path = tmp_path / "mock.yaml"
    path.write_text("faults: {drops: {qurey: 0.1}}\n")
    done = subprocess.run(
        [sys.executable, "-m", "mock_server", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"mock_server: error: {path}:1:18: faults.drops.qurey: unknown key; did you mean 'query'?"
    )


def test_readme_shows_every_top_level_key():
    from mmgen.schemas import load_schema
    from mock_server.config import CONFIG_SCHEMA

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## The mock server", 1)[1].split("\n## ", 1)[0]
    keys = set(load_schema(CONFIG_SCHEMA)["properties"])
    keys -= {"api_key", "download_url_ttl", "generation_jitter"}  # CLI flags or rarely set
    keys -= {"challenge_timeout", "callback_timeout", "callback_retries"}
    keys -= {"callback_retry_delay", "callback_concurrency"}
    missing = sorted(k for k in keys if f"{k}:" not in section)
    assert not missing, f"README's mock section does not show {missing}"
