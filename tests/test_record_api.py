"""Every record names the API it was made against (``api``); a plan or run against another API
never resumes or skips on it: a mock rehearsal's task ids mean nothing to MiniMax."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.state.journal import JOURNAL
from mmgen.state.records import api_identity
from tests.fakes import SEED_SPEC as SPEC

FAST = ["--poll-interval", "0.2", "--timeout", "60", "--rpm", "0"]


def cli(*args: str) -> Any:
    result = CliRunner().invoke(
        main, list(args), env={"MINIMAX_API_KEY": "test-key", "MINIMAX_BASE_URL": None}
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def plan_of(*args: str) -> dict[str, Any]:
    result = cli("plan", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    [item] = json.loads(result.stdout)
    return dict(item)


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "seed.yaml").write_text(SPEC)
    return folder


def test_a_rehearsal_is_never_reused_against_another_api(
    specs: Path, tmp_path: Path, mock_api: Any
) -> None:
    out = tmp_path / "out"
    config = tmp_path / "mock.yaml"
    config.write_text("generation_seconds: 0.1\n")
    rehearsal = cli("run", "--mock", "--mock-config", str(config), str(specs), "--out", str(out))
    assert rehearsal.exit_code == 0, rehearsal.output
    [record] = json.loads(cli("status", "--out", str(out), "--format", "json").stdout)
    assert record["api"] == "mock" and record["state"] == "success"

    assert plan_of("--mock", str(specs), "--out", str(out))["action"] == "skip"
    real = plan_of(str(specs), "--out", str(out))  # CI's first run against MiniMax
    assert real["action"] == "submit"
    assert real["reason"] == "recorded against the mock; this run uses https://api.minimax.io"

    # a run against another API (here a mock on loopback, as with --base-url) submits: no
    # resume of the rehearsal's task, no skip on its video
    other = cli("run", str(specs), "--base-url", mock_api.base_url, "--out", str(out), *FAST)
    assert other.exit_code == 0, other.output
    assert mock_api.stats()["created"] == 1
    [record] = json.loads(cli("status", "--out", str(out), "--format", "json").stdout)
    assert record["api"] == api_identity(mock_api.base_url)
    assert record["api"].startswith("http://127.0.0.1:")
    journal = (out / JOURNAL).read_text().splitlines()
    assert all("api" in json.loads(line) for line in journal)  # written with every record


def test_older_records_count_as_the_default_api(specs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    [item] = json.loads(cli("plan", str(specs), "--out", str(out), "--format", "json").stdout)
    out.mkdir()
    older = {  # made before records named their API: no "api"
        "job": "seed",
        "spec": "specs/seed.yaml",
        "spec_hash": item["spec_hash"],
        "state": "submitted",
        "task_id": "42",
    }
    (out / JOURNAL).write_text(json.dumps(older) + "\n")
    [record] = json.loads(cli("status", "--out", str(out), "--format", "json").stdout)
    assert record["api"] == "https://api.minimax.io"
    assert plan_of(str(specs), "--out", str(out))["action"] == "resume"
    same = plan_of(str(specs), "--out", str(out), "--base-url", "HTTPS://API.minimax.io:443/")
    assert same["action"] == "resume"
    china = plan_of(str(specs), "--out", str(out), "--base-url", "https://api.minimaxi.com")
    assert china["action"] == "submit"
    assert china["reason"].startswith("recorded against https://api.minimax.io;")
    rehearsal = plan_of(str(specs), "--out", str(out), "--mock")
    assert rehearsal["reason"].startswith("recorded against https://api.minimax.io;")


def test_a_rehearsal_never_writes_over_a_real_apis_records(specs: Path, tmp_path: Path) -> None:
    """`run --mock --out DIR` on a real API's out dir is refused before anything is written:
    the real record (here a paid task still in flight) and its video stay as they were."""
    out = tmp_path / "out"
    [item] = json.loads(cli("plan", str(specs), "--out", str(out), "--format", "json").stdout)
    out.mkdir()
    real = {
        "job": "seed",
        "spec": "specs/seed.yaml",
        "spec_hash": item["spec_hash"],
        "state": "submitted",
        "task_id": "42",
        "api": "https://api.minimax.io",
    }
    (out / JOURNAL).write_text(json.dumps(real) + "\n")
    before = (out / JOURNAL).read_bytes()
    result = cli("run", "--mock", str(specs), "--out", str(out), *FAST)
    assert result.exit_code == 2, result.output
    assert "seed recorded against a real API" in result.output
    assert "Traceback" not in result.output
    assert (out / JOURNAL).read_bytes() == before
    assert plan_of(str(specs), "--out", str(out))["action"] == "resume"


@pytest.mark.parametrize(
    ("url", "api"),
    [
        ("https://api.minimax.io", "https://api.minimax.io"),
        ("https://API.MiniMax.io:443/v1/", "https://api.minimax.io"),
        ("https://user:secret@api.minimax.io", "https://api.minimax.io"),  # never a credential
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://[::1]:80", "http://[::1]"),
    ],
)
def test_the_api_is_the_base_urls_origin(url: str, api: str) -> None:
    assert api_identity(url) == api
