"""Moving in: copy an out dir (records, every version's video, claims) between a folder and an
object store, or two stores (``mmgen store copy SRC DST``).

Videos go first, each streamed through a local temp file whose sha256 must be the recorded
one (a video that does not match is reported and not copied); one already in the destination
with the recorded size and sha256 is left as it is, so a copy cut short is run again and goes on
where it stopped. Then each job's current video becomes its ``NAME.mp4``, then the records
(merged with any the destination holds: the newer ``updated_at`` wins), then the claims
(create-only: a claim the destination holds is kept). A record is never in the destination
before the video it names.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mmgen.state.claims import CLAIMS
from mmgen.state.journal import JOURNAL, journal_bytes
from mmgen.state.outdir import OutDir
from mmgen.state.planning import current_path
from mmgen.state.records import Record


@dataclass
class CopyReport:
    """What a copy did (data: the CLI renders it)."""

    copied: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    #: videos whose bytes in the source do not have the recorded sha256 (not copied)
    mismatched: list[str] = field(default_factory=list)
    #: videos a record names that the source does not hold
    missing: list[str] = field(default_factory=list)
    records: int = 0
    claims: int = 0

    @property
    def ok(self) -> bool:
        return not self.mismatched


def copy_out_dir(
    src: OutDir, dst: OutDir, *, progress: Callable[[str], None] | None = None
) -> CopyReport:
    """Copy ``src`` into ``dst`` (see the module docstring); rerunnable."""
    report = CopyReport()
    say = progress or (lambda _message: None)
    records = src.records.records()
    videos = {r.video: r for r in records if r.state == "success" and r.video and r.sha256}
    with tempfile.TemporaryDirectory(prefix="mmgen-copy-") as scratch:
        for key, record in sorted(videos.items()):
            _copy_video(src, dst, key, record, Path(scratch), report)
            say(f"{key}: {'copied' if report.copied[-1:] == [key] else 'checked'}")
    for record in src.records.current():
        if record.video in report.copied or record.video in report.present:
            assert record.video is not None
            if not record.preview:
                dst.store.copy(record.video, current_path(record.video, record.spec_hash))
    merged: dict[tuple[str, str], Record] = {r.key: r for r in dst.records.records()}
    for record in records:
        seen = merged.get(record.key)
        if seen is None or record.updated_at >= seen.updated_at:
            merged[record.key] = record
    ordered = sorted(merged.values(), key=lambda r: (r.job, r.submitted_at or ""))
    dst.store.put(JOURNAL, journal_bytes(ordered))
    report.records = len(records)
    for entry in src.store.list(CLAIMS):
        data = src.store.get(entry.key)
        if data is not None and dst.store.create(entry.key, data) is not None:
            report.claims += 1
    return report


def _copy_video(
    src: OutDir, dst: OutDir, key: str, record: Record, scratch: Path, report: CopyReport
) -> None:
    there = dst.store.head(key)
    if there is not None and there.size == record.bytes and dst.store.sha256(key) == record.sha256:
        report.present.append(key)
        return
    if src.store.head(key) is None:
        report.missing.append(key)
        return
    local = scratch / "video"
    src.store.download(key, local)
    digest = hashlib.sha256()
    with local.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != record.sha256:
        report.mismatched.append(key)
    else:
        dst.store.upload(local, key)
        report.copied.append(key)
    local.unlink(missing_ok=True)
