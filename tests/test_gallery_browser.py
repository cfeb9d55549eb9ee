"""The gallery in a real headless browser (Debian's chromium): the DOM after the page's own
script ran (cards, the state filter driven by the URL, the comparison opened by the URL) and
screenshots (``MMGEN_SCREENSHOTS=DIR`` keeps them, to look at).

Skipped only when no chromium binary exists (CI installs Debian's `chromium`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from mmgen.report import write_gallery
from mmgen.state.journal import RecordStore
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
    assert dom.count('<video controls="" preload="metadata"') == 2  # one per card with a video

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
    _keep(shot)
    assert shot.is_file() and shot.stat().st_size > 20_000
    with Image.open(shot) as image:
        assert image.size == (1280, 1000)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    # a blank or error page has a handful of colours; cards, text, thumbnails have many
    assert colours is None or len(colours) > 200


def _keep(shot: Path) -> None:
    """Copy a screenshot to ``$MMGEN_SCREENSHOTS`` when set (to look at it)."""
    folder = os.environ.get("MMGEN_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(folder) / shot.name)


def test_compare_view_opened_by_the_url(tmp_path: Path, gallery: Path) -> None:
    url = gallery.as_uri() + "#compare=teaser"
    dom = _chromium(tmp_path, "--dump-dom", url).stdout
    teaser = dom[dom.index('id="job-teaser"') :]
    teaser = teaser[: teaser.index("</article>")]
    assert '<details class="compare" open="">' in teaser
    # the replaced version, then the current one, each with its video, prompt and settings
    versions = re.findall(r'<figure class="version( current)?" data-hash="(\w+)"', teaser)
    assert versions == [("", "aaaaaaaa"), (" current", "bbbbbbbb")]
    assert re.findall(r'<video[^>]*src="([^"]+)"', teaser) == [
        "teaser.bbbbbbbb.mp4",  # the card's own
        "teaser.aaaaaaaa.mp4",
        "teaser.bbbbbbbb.mp4",
    ]
    assert "A girl <del>waves.</del>" in teaser and "A girl <ins>winks.</ins>" in teaser
    assert '<li class="current"><code>bbbbbbbb</code>' in teaser
    # other cards stay closed
    legacy = dom[dom.index('id="job-legacy"') :]
    assert '<details class="compare"' not in legacy[: legacy.index("</article>")]

    shot = tmp_path / "gallery-compare.png"
    _chromium(tmp_path, "--window-size=1280,1400", f"--screenshot={shot}", url)
    _keep(shot)
    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        assert rgb.size == (1280, 1400)
        # the current version's frame is green (#1a7f37): the compare view is on screen
        greens = 0
        for count, colour in rgb.getcolors(maxcolors=1 << 20) or []:
            assert isinstance(colour, tuple)
            r, g, b = colour[:3]
            if g > 100 and r < 60 and b < 90 and g - r > 60:
                greens += count
    assert greens > 500
