"""The HTML gallery as markup: cards, escaping, thumbnails, versions, the filter, the CLI."""

from __future__ import annotations

import html
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.report import render_gallery, write_gallery
from mmgen.report.gallery import thumbnail_data_url
from mmgen.state.records import RecordStore
from tests.gallery_fixtures import FACE, XSS_PROMPT, make_out_dir


class _Collect(HTMLParser):
    """Tags with their attributes, and the text of <script> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def _parse(page: str) -> _Collect:
    parser = _Collect()
    parser.feed(page)
    return parser


@pytest.fixture
def page(tmp_path: Path) -> str:
    out = make_out_dir(tmp_path)
    return render_gallery(RecordStore(out).records(), base=tmp_path)


def test_one_card_per_current_job_with_its_state(page: str) -> None:
    cards = [a for t, a in _parse(page).tags if t == "article"]
    assert [(c["id"], c["data-state"]) for c in cards] == [
        ("job-bad-words", "failed"),
        ("job-legacy", "success"),
        ("job-pending", "submitted"),
        ("job-teaser", "success"),
    ]


def test_videos_are_relative_and_point_at_the_current_version(page: str) -> None:
    videos = [a["src"] for t, a in _parse(page).tags if t == "video"]
    assert videos == ["legacy.mp4", "teaser.bbbbbbbb.mp4"]
    assert all(not v.startswith(("/", "file:", "http")) for v in videos)


def test_prompt_is_escaped_and_no_foreign_script_runs(page: str) -> None:
    parsed = _parse(page)
    assert html.escape(XSS_PROMPT) in page
    assert "<script>alert" not in page and "<img src=x" not in page
    assert sum(1 for t, _ in parsed.tags if t == "script") == 1  # ours only
    assert not any(a.get("onerror") for _, a in parsed.tags)
    assert "input flagged &lt;b&gt;sensitive&lt;/b&gt;" in page  # the error, escaped
    csp = next(a["content"] for t, a in parsed.tags if a.get("http-equiv"))
    assert csp is not None and "script-src 'sha256-" in csp


def test_thumbnails_local_remote_and_missing(page: str) -> None:
    imgs = {a.get("title") or a["src"]: a["src"] for t, a in _parse(page).tags if t == "img"}
    assert imgs["https://example.invalid/face.jpg"] == "https://example.invalid/face.jpg"
    local = imgs["images/face.png"]
    assert local is not None and local.startswith("data:image/jpeg;base64,")
    assert len(local) < 20_000  # a thumbnail, not the image
    assert 'title="images/gone.png">image not found' in page
    assert "no image" in page  # the legacy record names no image


def test_version_history_lists_every_version_newest_first(page: str) -> None:
    teaser = page[page.index('id="job-teaser"') :]
    history = teaser[teaser.index('<details class="history">') : teaser.index("</details>")]
    assert "2 versions" in history
    assert history.index("bbbbbbbb") < history.index("aaaaaaaa")
    assert re.findall(r'href="([^"]+)"', history) == ["teaser.bbbbbbbb.mp4", "teaser.aaaaaaaa.mp4"]
    assert "2026-11-24 10:01 UTC" in history


def test_filter_links_cover_present_states(page: str) -> None:
    links = [a["href"] for t, a in _parse(page).tags if t == "a" and "data-state" in a]
    assert links == ["#state=all", "#state=success", "#state=failed", "#state=submitted"]


def test_prompt_falls_back_to_job_files_for_old_records(tmp_path: Path) -> None:
    out = make_out_dir(tmp_path)
    records = RecordStore(out).records()
    assert "no prompt recorded" in render_gallery(records, base=tmp_path)
    page = render_gallery(records, {"legacy": "From the job file"}, base=tmp_path)
    assert "From the job file" in page and "no prompt recorded" not in page


def test_empty_gallery() -> None:
    page = render_gallery([])
    assert "No outcome records yet." in page and "<article" not in page


def test_thumbnail_of_non_image_is_none() -> None:
    assert thumbnail_data_url(b"not an image") is None
    assert thumbnail_data_url(FACE.read_bytes()) is not None


def test_write_gallery_and_status_html_are_the_same_page(tmp_path: Path) -> None:
    out = make_out_dir(tmp_path)
    written = write_gallery(out, RecordStore(out).records(), base=tmp_path).read_text()
    cwd = os.getcwd()
    os.chdir(tmp_path)  # local image paths are relative to where mmgen runs
    try:
        result = CliRunner().invoke(main, ["status", "--out", str(out), "--format", "html"])
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    assert result.output.rstrip("\n") == written.rstrip("\n")
