"""An out dir with records in every interesting shape, for the gallery tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from mmgen.state.changes import request_snapshot
from mmgen.state.journal import RecordStore
from mmgen.state.records import Record, RecordError
from mock_server.media.video import VideoSpec, render_video

REPO = Path(__file__).resolve().parent.parent
FACE = REPO / "specs" / "images" / "face.png"
XSS_PROMPT = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes"'


def make_out_dir(tmp_path: Path) -> Path:
    """``tmp_path/out`` with: a job with two successful versions (local image), a failed job
    (XSS-ish prompt, remote image), a job in flight (missing image) and a record with no
    request (older record format)."""
    out = tmp_path / "out"
    out.mkdir()
    image_dir = tmp_path / "images"
    image_dir.mkdir()
    shutil.copy(FACE, image_dir / "face.png")
    video = render_video(VideoSpec(prompt="a wave", model="S2V-01", subject=None, seconds=1.0))
    for name in ("teaser.aaaaaaaa.mp4", "teaser.bbbbbbbb.mp4", "teaser.mp4", "legacy.mp4"):
        (out / name).write_bytes(video)

    def body(prompt: str, image: str) -> dict[str, object]:
        return {
            "model": "S2V-01",
            "prompt": prompt,
            "subject_reference": [{"type": "character", "image": [image]}],
        }

    records = [
        Record(
            job="teaser",
            spec="specs/teaser.yaml",
            spec_hash="a" * 64,
            state="success",
            task_id="111",
            video="teaser.aaaaaaaa.mp4",
            bytes=len(video),
            width=320,
            height=180,
            submitted_at="2026-11-24T10:00:00.000Z",
            finished_at="2026-11-24T10:01:00.000Z",
            updated_at="2026-11-24T10:01:00.000Z",
            request=request_snapshot(body("A girl waves.", "data:image/png;base64,AAAA")),
            image="images/face.png",
        ),
        Record(
            job="teaser",
            spec="specs/teaser.yaml",
            spec_hash="b" * 64,
            state="success",
            task_id="222",
            video="teaser.bbbbbbbb.mp4",
            bytes=len(video),
            width=320,
            height=180,
            submitted_at="2026-11-25T10:00:00.000Z",
            finished_at="2026-11-25T10:01:00.000Z",
            updated_at="2026-11-25T10:01:00.000Z",
            request=request_snapshot(body("A girl winks.", "data:image/png;base64,AAAA")),
            image="images/face.png",
        ),
        Record(
            job="bad-words",
            spec="specs/bad.yaml",
            spec_hash="c" * 64,
            state="failed",
            task_id="333",
            error=RecordError(code=1026, message="input flagged <b>sensitive</b>"),
            submitted_at="2026-11-25T11:00:00.000Z",
            finished_at="2026-11-25T11:00:05.000Z",
            updated_at="2026-11-25T11:00:05.000Z",
            request=body(XSS_PROMPT, "https://example.invalid/face.jpg"),
            image="https://example.invalid/face.jpg",
        ),
        Record(
            job="pending",
            spec="specs/pending.yaml",
            spec_hash="d" * 64,
            state="submitted",
            task_id="444",
            submitted_at="2026-11-25T12:00:00.000Z",
            updated_at="2026-11-25T12:00:00.000Z",
            request=body("Still cooking.", "images/gone.png"),
            image="images/gone.png",
        ),
        Record(
            job="legacy",
            spec="specs/legacy.yaml",
            spec_hash="e" * 64,
            state="success",
            task_id="555",
            video="legacy.mp4",
            finished_at="2026-11-20T09:00:00.000Z",
            updated_at="2026-11-20T09:00:00.000Z",
        ),
    ]
    store = RecordStore(out)
    with store.lock():
        for record in records:
            store.put(record)
    return out
