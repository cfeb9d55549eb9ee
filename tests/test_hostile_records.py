"""Records validated on load: valid JSON of the wrong types (or breaking a state's invariants)
in ``records.jsonl`` is a located ``FILE:LINE: corrupt outcome record: <what>`` error, exit 2,
in every command that reads records — never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.errors import StateError
from mmgen.state.journal import JOURNAL, RecordStore
from mmgen.state.records import Record
from tests.fakes import SEED_SPEC as SPEC

GOOD = {"job": "seed", "spec": "specs/seed.yaml", "spec_hash": "h1", "state": "submitting"}

#: (a bad line, what the message says is wrong)
HOSTILE = [
    ({**GOOD, "job": 123}, "job: a non-empty string expected, not 123"),
    ({**GOOD, "spec_hash": ["a"]}, 'spec_hash: a non-empty string expected, not ["a"]'),
    ({**GOOD, "task_id": {}}, "task_id: a non-empty string expected, not {}"),
    ({**GOOD, "bytes": "lots"}, 'bytes: a whole number of at least 0 expected, not "lots"'),
    ({**GOOD, "width": True}, "width: a whole number"),
    ({**GOOD, "state": "submitted", "task_id": None}, "a submitted record without task_id"),
    ({**GOOD, "state": "success"}, "a success record without task_id"),
    ({**GOOD, "state": "done"}, "state: one of submitting, submitted"),
    ({**GOOD, "error": {"code": 1}}, "error: {code: number or text, message: text} expected"),
    ({**GOOD, "error": "boom"}, "error: {code"),
    ({**GOOD, "updated_at": None}, "updated_at: a non-empty string expected, not null"),
    ({**GOOD, "request": [1]}, "request: a JSON object expected"),
    ({**GOOD, "video": "../../etc/passwd"}, "video: a path inside the out dir expected"),
    ({**GOOD, "video": "/etc/passwd"}, "video: a path inside the out dir expected"),
    ([GOOD], "not a JSON object"),
    ({"job": "seed"}, "missing spec, spec_hash, state"),
]


def _journal(out: Path, bad: object) -> None:
    """A good line, the bad one in the middle, a good line after it."""
    good = json.dumps(GOOD)
    out.mkdir(exist_ok=True)
    (out / JOURNAL).write_text(f"{good}\n{json.dumps(bad)}\n{good}\n")


@pytest.mark.parametrize(("bad", "what"), HOSTILE, ids=[what for _, what in HOSTILE])
def test_a_hostile_line_is_a_located_error(tmp_path: Path, bad: object, what: str) -> None:
    _journal(tmp_path, bad)
    with pytest.raises(StateError) as caught:
        RecordStore(tmp_path)
    assert caught.value.message.startswith(f"{tmp_path / JOURNAL}:2: corrupt outcome record: ")
    assert what in caught.value.message


def test_nesting_and_bad_utf8_are_located_errors(tmp_path: Path) -> None:
    (tmp_path / JOURNAL).write_bytes(b"[" * 100_000 + b"]" * 100_000 + b"\n")
    with pytest.raises(StateError, match=r":1: corrupt outcome record: nested too deeply"):
        RecordStore(tmp_path)
    (tmp_path / JOURNAL).write_bytes(json.dumps(GOOD).encode() + b'\n{"job": "\xc3\x28"}\n')
    with pytest.raises(StateError, match=r":2: corrupt outcome record: .*utf-8"):
        RecordStore(tmp_path)


def test_a_torn_last_line_of_the_wrong_type_is_still_tolerated(tmp_path: Path) -> None:
    tmp_path.joinpath(JOURNAL).write_text(json.dumps(GOOD) + '\n{"job": 123, "spec"')
    assert [r.job for r in RecordStore(tmp_path).records()] == ["seed"]


def test_a_record_written_by_mmgen_loads_back(tmp_path: Path) -> None:
    from mmgen.state.records import RecordError

    record = Record(
        job="seed", spec="s.yaml", spec_hash="h1", state="success", task_id="1", file_id="2",
        video="seed.h1.mp4", sha256="0" * 64, bytes=10, width=1280, height=720,
        error=RecordError("download", "x"), request={"model": "S2V-01"}, submitted_at="t",
    )  # fmt: skip
    store = RecordStore(tmp_path)
    with store.lock():
        store.put(record)
    assert RecordStore(tmp_path).records() == [record]


COMMANDS = {
    "status": ["status"],
    "status-json": ["status", "--format", "json"],
    "gallery": ["status", "--format", "html"],
    "plan": ["plan", "SPECS"],
    "run": ["run", "SPECS", "--base-url", "http://127.0.0.1:9", "--wait", "poll"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(
    "bad",
    [
        {**GOOD, "job": 123},
        {**GOOD, "spec_hash": ["a"]},
        {**GOOD, "task_id": {}},
        {**GOOD, "bytes": "lots"},
        {**GOOD, "state": "submitted", "task_id": None},
    ],
    ids=["job", "spec_hash", "task_id", "bytes", "submitted-without-task"],
)
def test_every_command_refuses_hostile_records_in_one_line(
    tmp_path: Path, command: str, bad: dict[str, object]
) -> None:
    out = tmp_path / "out"
    _journal(out, bad)
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "seed.yaml").write_text(SPEC)
    args = [str(specs) if arg == "SPECS" else arg for arg in COMMANDS[command]]
    result = CliRunner().invoke(
        main, [*args, "--out", str(out)], env={"MINIMAX_API_KEY": "test-key"}
    )
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    [line] = result.stderr.splitlines()
    assert line.startswith(f"mmgen: error: {out / JOURNAL}:2: corrupt outcome record: ")
    assert "Traceback" not in result.output
    assert (out / JOURNAL).read_text().count("\n") == 3  # nothing recorded, nothing lost


def test_a_success_without_sha256_is_not_skipped_on_a_missing_video(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "seed.yaml").write_text(SPEC)
    out = tmp_path / "out"
    plan = ["plan", str(specs), "--out", str(out), "--format", "json"]
    [item] = json.loads(CliRunner().invoke(main, plan).stdout)
    out.mkdir()
    done = {**GOOD, "spec_hash": item["spec_hash"], "state": "success", "task_id": "1"}
    (out / JOURNAL).write_text(json.dumps({**done, "file_id": "2"}) + "\n")
    [item] = json.loads(CliRunner().invoke(main, plan).stdout)
    assert item["action"] == "resume"  # it said "skip": None (no file) == None (no sha256)
