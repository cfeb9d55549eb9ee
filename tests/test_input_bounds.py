"""Input bounds: NaN, infinity and out-of-range option values, bad base URLs, ports, job files
that are not regular files or not UTF-8 names: refused at once (exit 2), one error line, no
traceback, nothing recorded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmgen.cli import main
from tests.fakes import SEED_SPEC as SPEC


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "seed.yaml").write_text(SPEC)
    return folder


def refused(args: list[str], needle: str) -> None:
    result = CliRunner().invoke(main, args, env={"MINIMAX_API_KEY": "k", "MINIMAX_BASE_URL": None})
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if "rror" in line]
    assert len(errors) == 1 and needle in errors[0], result.output


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--poll-interval", "nan", "'nan' is not a finite number of seconds"),
        ("--poll-interval", "-1", "--poll-interval"),
        ("--poll-interval", "0", "--poll-interval"),
        ("--timeout", "nan", "'nan' is not a finite number of seconds"),
        ("--timeout", "inf", "'inf' is not a finite number of seconds"),
        ("--timeout", "-5", "--timeout"),
        ("--base-url", "http://[::1", "'http://[::1': Invalid IPv6 URL"),
        ("--base-url", "api.minimax.io", "not an http(s)://HOST URL"),
        ("--base-url", "http://host:99999", "--base-url"),
        ("--public-url", "ftp://x", "not an http(s)://HOST URL"),
        ("--listen", "127.0.0.1:70000", "expected HOST:PORT"),
        ("--concurrency", "0", "--concurrency"),
    ],
)
def test_run_refuses_bad_values_before_anything(
    specs: Path, tmp_path: Path, option: str, value: str, needle: str
) -> None:
    out = tmp_path / "out"
    refused(["run", str(specs), "--out", str(out), option, value], needle)
    assert not out.exists()  # nothing touched, no task created


def test_plan_refuses_a_bad_base_url(specs: Path) -> None:
    refused(["plan", str(specs), "--base-url", "http://[::1"], "Invalid IPv6 URL")


def test_a_bad_minimax_base_url_is_one_line(specs: Path) -> None:
    result = CliRunner().invoke(main, ["plan", str(specs)], env={"MINIMAX_BASE_URL": "http://[::1"})
    assert result.exit_code == 2 and "Invalid IPv6 URL" in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--port", "70000"], "70000 is not in the range 0<=x<=65535"),
        (["--port", "-1"], "--port"),
        (["--cdn-port", "65536"], "--cdn-port"),
        (["--generation-seconds", "nan"], "generation_seconds: nan is not a finite number"),
        (["--generation-seconds", "inf"], "generation_seconds: inf is not a finite number"),
        (["--generation-seconds", "-1"], "generation_seconds: -1.0 must be at least 0"),
    ],
)
def test_mock_refuses_bad_values(args: list[str], needle: str) -> None:
    refused(["mock", *args], needle)


def _validate(path: Path | str) -> subprocess.CompletedProcess[str]:
    """In a child process: a hang (a FIFO) or an unbounded read (/dev/zero) fails by timeout."""
    return subprocess.run(
        [sys.executable, "-m", "mmgen", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_validate_refuses_a_device_promptly() -> None:
    result = _validate("/dev/zero")
    assert result.returncode == 2
    assert (
        result.stdout
        == "/dev/zero:1:1: (document): not a regular file (a device, FIFO or socket)\n"
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_validate_refuses_a_fifo_promptly(tmp_path: Path) -> None:
    fifo = tmp_path / "job.yaml"
    os.mkfifo(fifo)
    result = _validate(fifo)
    assert result.returncode == 2 and "not a regular file" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_non_utf8_file_name_is_refused_before_the_journal(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    name = os.fsdecode(b"x\xff.yaml")
    (specs / name).write_text(SPEC)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["run", str(specs), "--out", str(out), "--base-url", "http://127.0.0.1:9"],
        env={"MINIMAX_API_KEY": "k"},
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "x\\xff.yaml:1:1: (document): the file name is not valid UTF-8: rename it" in (
        result.output
    )
    assert not out.exists()  # it left an empty journal, and `status` then exited 0


def test_a_mock_config_file_with_nan_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "mock.yaml"
    config.write_text("faults: {tasks: {fail_probability: .nan}}\n")
    refused(["mock", "--config", str(config)], "fail_probability: nan is not a finite number")
