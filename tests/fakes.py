"""Test doubles shared by several test modules (typed: mypy checks them against the real
interfaces, e.g. FakeClient against the runner's ApiClient protocol)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

from mmgen.api.client import Download, FileInfo, TaskStatus
from mmgen.jobfile.spec import JobSpec

#: One valid S2V-01 job file (a subject URL: nothing to read), for tests of the CLI's edges.
SEED_SPEC = """\
name: seed
model: S2V-01
prompt: A girl runs toward the camera.
subject_reference:
  - type: character
    image: [https://example.org/face.jpg]
"""


class Sleeps:
    """An injectable sleep that only records what it was asked to wait."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


VIDEO = b"\x00\x00\x00\x18ftypmp42fake-video-bytes" * 10


def Job(
    name: str,
    spec_hash: str = "h1",
    file: str = "specs/x.yaml",
    line: int = 1,
    body: dict[str, Any] | None = None,
    output: str = "",
) -> JobSpec:
    """A valid job as the spec loader makes it, with short defaults for tests."""
    return JobSpec(
        name=name,
        file=file,
        line=line,
        body=body if body is not None else {"model": "S2V-01", "prompt": "p"},
        spec_hash=spec_hash,
        output=output or f"{name}.mp4",
    )


class FakeClient:
    """Tasks finish after ``polls_to_finish`` queries; errors can be scripted per prompt."""

    def __init__(self, polls_to_finish: int = 1) -> None:
        self.polls_to_finish = polls_to_finish
        self.created: list[dict[str, Any]] = []
        self.queries: dict[str, int] = {}
        self.create_errors: dict[str, Exception] = {}
        self.final_status: dict[str, str] = {}
        self.create_delay = 0.0
        self.downloads = 0
        self.create_started = asyncio.Event()

    async def create_task(self, body: dict[str, Any], *, before_send=None, abort=None) -> str:
        if before_send is not None:
            await before_send()
        self.create_started.set()  # the request has left
        if self.create_delay:
            await asyncio.sleep(self.create_delay)
        error = self.create_errors.get(body.get("prompt", ""))
        if error is not None:
            raise error
        self.created.append(body)
        task_id = str(1000 + len(self.created))
        self.queries[task_id] = 0
        self.final_status[task_id] = "Fail" if body.get("prompt") == "fail" else "Success"
        return task_id

    async def query_task(self, task_id: str, *, attempts: int | None = None) -> TaskStatus:
        self.queries[task_id] = self.queries.get(task_id, 0) + 1
        if self.queries[task_id] >= self.polls_to_finish:
            status = self.final_status.get(task_id, "Success")
            if status == "Success":
                return TaskStatus(task_id, "Success", "f" + task_id, 1280, 720)
            return TaskStatus(task_id, status, None, None, None)
        return TaskStatus(task_id, "Processing", None, None, None)

    async def retrieve_file(self, file_id: str, *, attempts: int | None = None) -> FileInfo:
        return FileInfo(file_id, 0, "output.mp4", f"http://cdn.invalid/{file_id}")

    async def download(
        self, url, dest: Path, *, progress=None, expected_bytes=None, attempts=None, then=None
    ) -> Download:
        self.downloads += 1
        dest.write_bytes(VIDEO)
        if then is not None:
            then(dest)
        if progress:
            progress(len(VIDEO), len(VIDEO))
        return Download(dest, hashlib.sha256(VIDEO).hexdigest(), len(VIDEO))


def write_jobs(folder: Path, prompts: dict[str, str], name: str = "jobs.yaml") -> Path:
    """A defaults+jobs file with one S2V-01 job per (name, prompt)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "defaults:",
        "  model: S2V-01",
        "  subject_reference:",
        "    - type: character",
        "      image: [https://example.org/face.jpg]",
        "jobs:",
    ]
    for job, prompt in prompts.items():
        lines += [f"  - name: {job}", f"    prompt: {json.dumps(prompt)}"]
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def mp4(payload: bytes) -> bytes:
    """A structurally valid MP4 around ``payload`` (its top-level boxes ftyp, moov, mdat cover
    it exactly): what a download must look like to count."""

    def box(kind: bytes, body: bytes) -> bytes:
        return (8 + len(body)).to_bytes(4, "big") + kind + body

    return box(b"ftyp", b"isom\0\0\2\0isom") + box(b"moov", b"\0" * 8) + box(b"mdat", payload)
