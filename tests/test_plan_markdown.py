"""`mmgen plan --format markdown` (the pull-request comment), `--prices`, `--detailed-exitcode`."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.jobfile.spec import JobSpec, load_jobs
from mmgen.state.changes import request_snapshot
from mmgen.state.journal import RecordStore
from mmgen.state.records import Record, RecordError

FACE = Path(__file__).resolve().parent.parent / "specs" / "images" / "face.png"

S2V = """\
name: {name}
model: S2V-01
prompt: {prompt}
subject_reference:
  - type: character
    image: [images/face.png]
"""
HAILUO = """\
name: clip
model: MiniMax-Hailuo-02
prompt: A slow pan over a harbour. [Pan left]
duration: 10
resolution: 768P
"""


def run(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def project(tmp_path: Path) -> Path:
    specs = tmp_path / "specs"
    (specs / "images").mkdir(parents=True)
    shutil.copy(FACE, specs / "images" / "face.png")
    (specs / "hero.yaml").write_text(S2V.format(name="hero", prompt="The hero waves."))
    (specs / "clip.yaml").write_text(HAILUO)
    return tmp_path


def _jobs(project: Path) -> dict[str, JobSpec]:
    return {job.name: job for job in load_jobs([project / "specs"])}


def _record(job: JobSpec, **fields: object) -> Record:
    values: dict[str, object] = {
        "job": job.name,
        "spec": job.file,
        "spec_hash": job.spec_hash,
        "state": "success",
        "task_id": "900",
        "request": request_snapshot(job.body),
    }
    values.update(fields)
    return Record(**values)  # type: ignore[arg-type]


def _put(out: Path, *records: Record) -> None:
    store = RecordStore(out)
    with store.lock():
        for record in records:
            store.put(record)


def _rows(markdown: str) -> dict[str, list[str]]:
    """Table rows by job name: the cells, `|` inside cells kept escaped."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows[cells[0].strip("`")] = cells
    return rows


def test_new_jobs_summary_table_and_cost(project: Path) -> None:
    out = project / "out"
    code, md, _ = run("plan", str(project / "specs"), "--out", str(out), "--format", "markdown")
    assert code == 0
    assert md.startswith("<!-- mmgen-plan -->\n")
    assert "**2 to submit.**" in md
    # S2V-01 0.65 + MiniMax-Hailuo-02 768P 10 s 0.56, from mmgen/prices.yaml
    assert "Merging creates 2 new tasks: estimated cost **$1.21**." in md
    rows = _rows(md)
    assert rows["hero"] == ["`hero`", "submit", "new job", "S2V-01", "$0.65"]
    assert rows["clip"] == ["`clip`", "submit", "new job", "MiniMax-Hailuo-02 768P-10s", "$0.56"]
    assert "**estimates**" in md and "MiniMax pay-as-you-go list prices" in md
    assert "`mmgen plan --prices FILE`" in md


def test_changed_job_shows_a_field_diff(project: Path) -> None:
    out = project / "out"
    old_specs = project / "old"
    shutil.copytree(project / "specs", old_specs)
    (old_specs / "hero.yaml").write_text(S2V.format(name="hero", prompt="The hero runs."))
    old = _jobs_in(old_specs)["hero"]
    old_body = dict(old.body, prompt_optimizer=True, callback_url="http://127.0.0.1:1/cb/x")
    jobs = _jobs(project)
    _put(out, _record(old, request=request_snapshot(old_body)), _record(jobs["clip"]))
    (out / "clip.mp4").write_bytes(b"video")
    _put(out, _record(jobs["clip"], sha256=_sha(b"video"), video="clip.mp4"))

    code, md, _ = run("plan", str(project / "specs"), "--out", str(out), "--format", "markdown")
    assert code == 0
    assert "**1 changed, 1 skipped (done).**" in md
    assert "Merging creates 1 new task: estimated cost **$0.65**." in md
    assert _rows(md)["clip"][1:] == ["skip", "done", "MiniMax-Hailuo-02 768P-10s", ""]
    diff = md[md.index("```diff") : md.index("```", md.index("```diff") + 3)]
    assert '- prompt: "The hero runs."' in diff
    assert '+ prompt: "The hero waves."' in diff
    assert "- prompt_optimizer: true" in diff  # removed field
    assert "callback_url" not in diff  # added by the run itself, not a change of the job
    assert "subject_reference" not in diff  # same image bytes, same sha256
    assert "2 fields changed since task 900" in md


def test_changed_job_without_request_snapshot_says_fields_unknown(project: Path) -> None:
    out = project / "out"
    hero = _jobs(project)["hero"]
    _put(out, _record(hero, spec_hash="0" * 64, request=None))
    code, md, _ = run("plan", str(project / "specs"), "--out", str(out), "--format", "markdown")
    assert code == 0
    assert "`hero`: the fields that changed are unknown" in md
    assert "```diff" not in md


def test_user_text_cannot_break_the_table_or_inject_html(project: Path) -> None:
    out = project / "out"
    hero = _jobs(project)["hero"]
    message = "bad | thing <script>alert(1)</script> [x](javascript:alert(1))"
    _put(out, _record(hero, state="failed", error=RecordError(code=1026, message=message)))
    code, md, _ = run("plan", str(project / "specs"), "--out", str(out), "--format", "markdown")
    assert code == 0
    row = _rows(md)["hero"]
    assert len(row) == 5 and row[1] == "submit"
    assert "<script>" not in md and "&lt;script&gt;" in row[2]
    assert r"\|" in row[2] and r"\[x\]\(javascript:alert\(1\)\)" in row[2]


def test_prices_file_overrides_a_model(project: Path) -> None:
    prices = project / "prices.yaml"
    prices.write_text("as_of: 2026-11-01\nmodels:\n  S2V-01: {price: 1.5}\n")
    code, md, _ = run(
        "plan", str(project / "specs"), "--out", str(project / "out"),
        "--format", "markdown", "--prices", str(prices),
    )  # fmt: skip
    assert code == 0
    assert "estimated cost **$2.06**" in md  # 1.50 + 0.56 (default for Hailuo)
    assert f"with `{prices}`" in md and "(as of 2026-11-01)" in md


def test_prices_file_in_another_currency_prices_only_its_models(project: Path) -> None:
    prices = project / "prices.json"
    prices.write_text(
        '{"currency": "EUR", "source": "our contract", "as_of": "2026-11",'
        ' "models": {"S2V-01": {"price": 0.5}}}'
    )
    code, md, _ = run(
        "plan", str(project / "specs"), "--out", str(project / "out"),
        "--format", "markdown", "--prices", str(prices),
    )  # fmt: skip
    assert code == 0
    assert "estimated cost **at least 0.50 EUR**" in md
    assert _rows(md)["clip"][4] == "no price"
    assert "No price known for `clip`." in md
    assert "from our contract (as of 2026-11)" in md


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("models:\n  S2V-01: {price: -1}\n", "models.S2V-01.price: -1 is less than the minimum"),
        ("models:\n  S2V-01: {cost: 1}\n", "models.S2V-01"),
        ("models: [\n", "prices.yaml:2:1: not valid YAML or JSON"),
        ("models:\n  X: {prices: {'768P': 1}}\n", "models.X.prices"),
    ],
)
def test_bad_prices_file_exit_2_one_line(project: Path, content: str, expected: str) -> None:
    prices = project / "prices.yaml"
    prices.write_text(content)
    code, out, err = run(
        "plan", str(project / "specs"), "--format", "markdown", "--prices", str(prices)
    )
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and expected in err and "Traceback" not in err


def test_missing_prices_file_exit_2(project: Path) -> None:
    code, _, err = run("plan", str(project / "specs"), "--prices", str(project / "nope.yaml"))
    assert code == 2 and "cannot read it" in err


def test_detailed_exitcode(project: Path) -> None:
    out = project / "out"
    specs = str(project / "specs")
    assert run("plan", specs, "--out", str(out), "--detailed-exitcode")[0] == 3  # new jobs
    assert run("plan", specs, "--out", str(out))[0] == 0  # without the flag
    jobs = _jobs(project)
    for name, job in jobs.items():
        (out / "").mkdir(exist_ok=True)
        (out / f"{name}.mp4").write_bytes(name.encode())
        _put(out, _record(job, sha256=_sha(name.encode()), video=f"{name}.mp4"))
    code, md, _ = run(
        "plan", specs, "--out", str(out), "--format", "markdown", "--detailed-exitcode"
    )
    assert code == 0
    assert "**Nothing to do: all 2 jobs are done.**" in md
    assert "Merging creates no new task: no cost." in md
    (out / "hero.mp4").unlink()  # a download is work pending too (no new task)
    assert run("plan", specs, "--out", str(out), "--detailed-exitcode")[0] == 3
    (project / "specs" / "broken.yaml").write_text("name: x\nmodel: S2V-01\npromt: typo\n")
    code, _, err = run("plan", specs, "--out", str(out), "--detailed-exitcode")
    assert code == 2 and "promt" in err


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _jobs_in(specs: Path) -> dict[str, JobSpec]:
    return {job.name: job for job in load_jobs([specs])}
