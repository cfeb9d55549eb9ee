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
from mmgen.state.journal import RecordStore
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
    tags = [a for t, a in _parse(page).tags if t == "video"]
    cards = [a["src"] for a in tags if a["preload"] == "metadata"]
    assert cards == ["legacy.mp4", "teaser.bbbbbbbb.mp4"]
    # the comparison's videos load only when played
    compared = [a["src"] for a in tags if a["preload"] == "none"]
    assert compared == ["teaser.aaaaaaaa.mp4", "teaser.bbbbbbbb.mp4"]
    assert all(not str(a["src"]).startswith(("/", "file:", "http")) for a in tags)


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
    history = teaser[teaser.index('<details class="history">') :]
    history = history[: history.index("</details>")]
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


def _compare_section(page: str, job: str) -> str:
    card = page[page.index(f'id="job-{job}"') :]
    card = card[: card.index("</article>")]
    start = card.find('<details class="compare">')
    return "" if start < 0 else card[start : card.index("</details>", start)]


def test_a_job_of_several_versions_compares_current_with_the_replaced(page: str) -> None:
    compare = _compare_section(page, "teaser")
    assert "compare with the version it replaced (<code>aaaaaaaa</code>)" in compare
    old, new = compare.split('<figure class="version current"')
    assert 'data-hash="aaaaaaaa"' in old and '<span class="badge old">replaced</span>' in old
    assert 'data-hash="bbbbbbbb"' in new and '<span class="badge">current</span>' in new
    # the prompt as a word diff: "A girl waves." -> "A girl winks."
    assert '<p class="prompt">A girl <del>waves.</del></p>' in old
    assert '<p class="prompt">A girl <ins>winks.</ins></p>' in new
    assert "<dt>model</dt><dd>S2V-01</dd>" in new  # settings, unchanged here
    for job in ("bad-words", "legacy", "pending"):  # one version: nothing to compare
        assert _compare_section(page, job) == ""


def test_changed_settings_are_marked_and_a_subject_url_is_a_link(tmp_path: Path) -> None:
    from dataclasses import replace

    out = make_out_dir(tmp_path)
    records = RecordStore(out).records()
    teaser = [r for r in records if r.job == "teaser"]
    url = "https://example.org/new-face.jpg"
    request = dict(teaser[1].request or {}, duration=6)
    request["subject_reference"] = [{"type": "character", "image": [url]}]
    records[records.index(teaser[1])] = replace(teaser[1], request=request, image=url)
    page = render_gallery(records, base=tmp_path)
    compare = _compare_section(page, "teaser")
    new = compare.split('<figure class="version current"')[1]
    assert '<dt>duration</dt><dd class="changed">6</dd>' in new
    assert f'<dd class="changed"><a href="{url}" rel="noreferrer noopener">{url}</a></dd>' in new
    old = compare.split('<figure class="version current"')[0]
    assert '<dt>duration</dt><dd class="changed"><em>not set</em></dd>' in old
    card = page[page.index('id="job-teaser"') :]
    assert f'<a class="thumb-link" href="{url}" rel="noreferrer noopener"><img' in card


def test_the_given_current_version_is_the_one_shown(tmp_path: Path) -> None:
    out = make_out_dir(tmp_path)
    page = render_gallery(RecordStore(out).records(), base=tmp_path, current={("teaser", "a" * 64)})
    videos = [a["src"] for t, a in _parse(page).tags if t == "video" and a["preload"] != "none"]
    assert "teaser.aaaaaaaa.mp4" in videos and "teaser.bbbbbbbb.mp4" not in videos
    assert "compare with the version it replaced (<code>bbbbbbbb</code>)" in page


def test_status_all_marks_the_current_version_in_text_and_json(tmp_path: Path) -> None:
    import json

    out = make_out_dir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["status", "--out", str(out), "--all", "--format", "json"])
    assert result.exit_code == 0, result.output
    marks = {(r["job"], r["spec_hash"][:8]): r["current"] for r in json.loads(result.output)}
    assert marks[("teaser", "bbbbbbbb")] is True and marks[("teaser", "aaaaaaaa")] is False
    assert sum(marks.values()) == 4  # one current version per job
    text = runner.invoke(main, ["status", "--out", str(out), "--all"]).output.splitlines()
    rows = {tuple(line.split()[:2]): line for line in text if line.startswith(" teaser")}
    assert rows[("teaser", "bbbbbbbb")].split()[2] == "current"
    assert rows[("teaser", "aaaaaaaa")].split()[2] == "success"
    current = runner.invoke(main, ["status", "--out", str(out), "--format", "json"]).output
    assert all(r["current"] for r in json.loads(current))
