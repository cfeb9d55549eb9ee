"""The gallery in a real headless browser (Debian's chromium): the DOM after the page's own
script ran (cards, the state filter driven by the URL) and a screenshot.

Skipped only when no chromium binary exists (CI installs Debian's `chromium`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from mmgen.report import write_gallery
from mmgen.state.records import RecordStore
from tests.gallery_fixtures import make_out_dir

BROWSER = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no chromium binary on PATH (apt-get install chromium)"
)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert BROWSER is not None
    command = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # the page's remote thumbnail stays offline
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)


@pytest.fixture
def gallery(tmp_path: Path) -> Path:
    out = make_out_dir(tmp_path)
    return write_gallery(out, RecordStore(out).records(), base=tmp_path)


def _cards(dom: str) -> dict[str, bool]:
    """Card id -> visible (not hidden by the filter)."""
    return {
        m.group(2): "hidden" not in m.group(1)
        for m in re.finditer(r'<article([^>]*\bid="job-([^"]+)"[^>]*)>', dom)
    }


def test_dom_has_every_card_and_the_filter_hides_by_url(tmp_path: Path, gallery: Path) -> None:
    dom = _chromium(tmp_path, "--dump-dom", gallery.as_uri()).stdout
    assert _cards(dom) == {"bad-words": True, "legacy": True, "pending": True, "teaser": True}
    assert 'data-filter="all"' in dom
    assert dom.count("<video") == 2

    failed = _chromium(tmp_path, "--dump-dom", gallery.as_uri() + "#state=failed").stdout
    assert _cards(failed) == {
        "bad-words": True,
        "legacy": False,
        "pending": False,
        "teaser": False,
    }
    assert re.search(
        r'<a[^>]*class="active"[^>]*data-state="failed"|'
        r'<a[^>]*data-state="failed"[^>]*class="active"',
        failed,
    )
    # the remote thumbnail cannot load offline: the page's script shows a placeholder
    assert 'title="https://example.invalid/face.jpg">image unavailable</div>' in failed
    # the prompt's markup stayed text: no element came from it
    assert "<script>alert" not in failed and '<img src="x"' not in failed

    nothing = _chromium(tmp_path, "--dump-dom", gallery.as_uri() + "#state=unknown").stdout
    assert not any(_cards(nothing).values())
    assert re.search(r'<p class="empty" id="none-shown">No job in this state\.</p>', nothing)


def test_screenshot_shows_a_rendered_page(tmp_path: Path, gallery: Path) -> None:
    shot = tmp_path / "gallery.png"
    _chromium(tmp_path, "--window-size=1280,1000", f"--screenshot={shot}", gallery.as_uri())
    assert shot.is_file() and shot.stat().st_size > 20_000
    with Image.open(shot) as image:
        assert image.size == (1280, 1000)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    # a blank or error page has a handful of colours; cards, text, thumbnails have many
    assert colours is None or len(colours) > 200
