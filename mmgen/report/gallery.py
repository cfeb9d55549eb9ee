"""The HTML gallery (``OUT/index.html``, ``mmgen status --format html``).

One self-contained page: no CDN, no external script or style; it works from ``file://`` and as
a CI artifact because every video ``src`` is relative to the out dir. One card per job (its
current record): the video, the prompt, a thumbnail of the subject image (a link when it is a
URL), the state, the error, and the job's version history (every record of the job, each with
its own video; the current one marked). A job with more than one version can *compare*: the
current video beside the one it replaced, each with its prompt (a word diff: removed words struck
on the old side, added ones marked on the new) and its settings (changed ones marked). A filter
by state is driven by the URL (``index.html#state=failed``), so a link can share a filtered view;
``#compare=JOB`` opens a job's comparison. Everything from records and job files is escaped:
prompts are user text. The page is a function of the records (and of which version of each job
is current), so it can be written anywhere the out dir is (a folder, a bucket).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import os
from collections import Counter, defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

from PIL import Image, UnidentifiedImageError

from mmgen.dataurl import data_url_bytes
from mmgen.report.units import plural, size
from mmgen.state.changes import flatten, word_diff
from mmgen.state.records import STATES, Record

#: Longest edge of a subject-image thumbnail, in pixels.
THUMBNAIL_EDGE = 160

_STATE_LABELS = {
    "success": "success",
    "failed": "failed",
    "unknown": "unknown",
    "submitted": "in flight",
    "submitting": "submitting",
}

#: Filter buttons, in this order (finished first).
_FILTER_ORDER = ("success", "failed", "unknown", "submitted", "submitting")
assert set(_FILTER_ORDER) == set(STATES)

_SCRIPT = """
(function () {
  function wanted() {
    var m = /(?:^|[#&?])state=([a-z]+)/.exec(location.hash + "&" + location.search.slice(1));
    return m ? m[1] : "all";
  }
  function apply() {
    var state = wanted(), shown = 0;
    document.querySelectorAll(".card").forEach(function (card) {
      card.hidden = state !== "all" && card.dataset.state !== state;
      if (!card.hidden) { shown += 1; }
    });
    document.querySelectorAll(".filter a").forEach(function (link) {
      var on = link.dataset.state === state;
      link.classList.toggle("active", on);
      if (on) { link.setAttribute("aria-current", "true"); }
      else { link.removeAttribute("aria-current"); }
    });
    document.body.dataset.filter = state;
    var none = document.getElementById("none-shown");
    if (none) { none.hidden = shown !== 0; }
  }
  function unavailable(img) {
    var box = document.createElement("div");
    box.className = "thumb";
    box.title = img.title;
    box.textContent = "image unavailable";
    img.replaceWith(box);
  }
  document.querySelectorAll("img.thumb").forEach(function (img) {
    if (img.complete && !img.naturalWidth) { unavailable(img); }
    else { img.addEventListener("error", function () { unavailable(img); }); }
  });
  function compare() {
    var m = /(?:^|[#&])compare=([^&]+)/.exec(location.hash);
    if (!m) { return; }
    var card = document.getElementById("job-" + decodeURIComponent(m[1]));
    var box = card && card.querySelector("details.compare");
    if (box) { box.open = true; card.scrollIntoView(); }
  }
  document.querySelectorAll("details.compare").forEach(function (box) {
    box.addEventListener("toggle", function () {
      if (!box.open) { return; }
      box.querySelectorAll("video").forEach(function (video) { video.preload = "metadata"; });
    });
  });
  window.addEventListener("hashchange", function () { apply(); compare(); });
  apply();
  compare();
})();
""".strip()

_STYLE = """
:root{--bg:#f4f5f7;--card:#fff;--ink:#1d2330;--muted:#5e6675;--line:#dfe3ea;--ok:#1a7f37;
--bad:#c62828;--warn:#9a6700;--run:#0a66c2;--chip:#eef1f5}
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:var(--bg);color:var(--ink)}
header.top{padding:1.2rem 1.5rem .4rem}
header.top h1{margin:0 0 .2rem;font-size:1.35rem}
header.top p{margin:0;color:var(--muted)}
nav.filter{display:flex;flex-wrap:wrap;gap:.4rem;padding:.6rem 1.5rem 0}
nav.filter a{padding:.25rem .75rem;border:1px solid var(--line);border-radius:999px;
background:var(--card);color:var(--ink);text-decoration:none;font-size:.9rem}
nav.filter a.active{background:var(--ink);color:#fff;border-color:var(--ink)}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:1rem;
padding:1rem 1.5rem 2rem}
.card{display:flex;flex-direction:column;background:var(--card);border:1px solid var(--line);
border-radius:10px;overflow:hidden;box-shadow:0 1px 2px rgba(0,0,0,.04)}
.media{aspect-ratio:16/9;background:#111;display:grid;place-items:center;color:#ccd;
font-size:.95rem}
.media video{width:100%;height:100%;object-fit:contain;background:#000}
.media.failed,.media.unknown{background:#2a1416;color:#f3b5b5}
.body{padding:.8rem .9rem 1rem;display:flex;flex-direction:column;gap:.55rem}
.title{display:flex;align-items:center;justify-content:space-between;gap:.5rem}
.title h2{margin:0;font-size:1.05rem;word-break:break-all}
.state{font-size:.78rem;font-weight:600;padding:.1rem .55rem;border-radius:999px;
background:var(--chip);white-space:nowrap}
.state.success{color:var(--ok);background:#e6f4ea}
.state.failed,.state.unknown{color:var(--bad);background:#fdecea}
.state.submitted,.state.submitting{color:var(--run);background:#e7f0fb}
.subject{display:flex;gap:.7rem;align-items:flex-start}
.thumb{width:72px;height:72px;flex:none;border-radius:8px;object-fit:cover;
border:1px solid var(--line);background:var(--chip)}
div.thumb{display:grid;place-items:center;color:var(--muted);font-size:.7rem;text-align:center}
.prompt{margin:0;white-space:pre-wrap;overflow-wrap:anywhere}
.prompt.none{color:var(--muted);font-style:italic}
.meta{display:flex;flex-wrap:wrap;gap:.3rem .9rem;margin:0;color:var(--muted);font-size:.82rem}
.meta code{font-size:.8rem}
.error{margin:0;padding:.45rem .6rem;border-radius:6px;background:#fdecea;color:var(--bad);
font-size:.88rem;overflow-wrap:anywhere}
details.history{font-size:.85rem;color:var(--muted)}
details.history summary{cursor:pointer}
details.history ol{margin:.35rem 0 0;padding-left:1.2rem}
details.history li{margin:.15rem 0}
details.history li.current{color:var(--ink);font-weight:600}
details.history a{color:var(--run)}
details.history li .mark{font-size:.75rem;color:var(--ok)}
details.history li .mark.preview,.state.preview{color:#8a5a00}
a.thumb-link{flex:none;display:block}
a.thumb-link img.thumb{display:block}
details.compare{font-size:.9rem}
details.compare>summary{cursor:pointer;color:var(--run)}
.card:has(details.compare[open]){grid-column:1/-1}
.card:has(details.compare[open])>.media{display:none}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1rem;margin-top:.6rem}
.version{margin:0;border:1px solid var(--line);border-radius:8px;overflow:hidden}
.version.current{border-color:var(--ok);box-shadow:0 0 0 1px var(--ok)}
.version figcaption{display:flex;gap:.5rem;align-items:center;padding:.45rem .6rem;
background:var(--chip);font-size:.85rem}
.version .badge{font-size:.75rem;font-weight:600;padding:.05rem .5rem;border-radius:999px;
background:#e6f4ea;color:var(--ok)}
.version .badge.old{background:var(--line);color:var(--muted)}
.version .prompt,.version dl{padding:.5rem .6rem;margin:0}
.version dl{display:grid;grid-template-columns:auto 1fr;gap:.15rem .7rem;font-size:.82rem;
border-top:1px solid var(--line)}
.version dt{color:var(--muted)}
.version dd{margin:0;overflow-wrap:anywhere}
.version .changed{background:#fff4d6}
del{background:#fdecea;color:var(--bad)}
ins{background:#e6f4ea;color:var(--ok);text-decoration:none;font-weight:600}
p.empty{padding:0 1.5rem;color:var(--muted)}
""".strip()


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _hash8(record: Record) -> str:
    return record.spec_hash[:8]


def _when(stamp: str | None) -> str:
    """``2026-11-25T06:58:04.123Z`` -> ``2026-11-25 06:58 UTC``."""
    if not stamp:
        return ""
    return stamp[:16].replace("T", " ") + (" UTC" if stamp.endswith("Z") else "")


def _href(path: str) -> str:
    return _e(quote(path.replace(os.sep, "/"), safe="/"))


def thumbnail_data_url(data: bytes, edge: int = THUMBNAIL_EDGE) -> str | None:
    """A small JPEG data URL of an image's bytes (None when they are not an image)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail((edge, edge))
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


class _Thumbnails:
    """Subject-image thumbnails, made once per image."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._cache: dict[str, str] = {}

    def html(self, image: str | None) -> str:
        if not image:
            return '<div class="thumb" title="no subject image">no image</div>'
        if image not in self._cache:
            self._cache[image] = self._make(image)
        return self._cache[image]

    def _make(self, image: str) -> str:
        lower = image[:8].lower()
        if lower.startswith(("http://", "https://")):
            return (
                f'<a class="thumb-link" href="{_e(image)}" rel="noreferrer noopener">'
                f'<img class="thumb" src="{_e(image)}" alt="subject image" title="{_e(image)}" '
                f'loading="lazy" referrerpolicy="no-referrer"></a>'
            )
        data = data_url_bytes(image)
        if data is None:
            path = Path(image)
            try:
                data = (path if path.is_absolute() else self.base / path).read_bytes()
            except OSError:
                data = None
        url = thumbnail_data_url(data) if data is not None else None
        if url is None:
            return f'<div class="thumb" title="{_e(image)}">image not found</div>'
        return f'<img class="thumb" src="{url}" alt="subject image" title="{_e(image)}">'


def _media(record: Record, *, lazy: bool = False) -> str:
    if record.state == "success" and record.video:
        return (
            f'<div class="media"><video controls preload="{"none" if lazy else "metadata"}" '
            f'src="{_href(record.video)}"></video></div>'
        )
    label = _STATE_LABELS.get(record.state, record.state)
    return f'<div class="media {_e(record.state)}"><span>{_e(label)}: no video</span></div>'


#: The mark of a version generated by ``run --preview`` (for review, not made current).
_PREVIEW_BADGE = '<span class="state preview">preview</span>'


def _history(versions: Sequence[Record], current: Record) -> str:
    rows = []
    for version in reversed(versions):  # newest first
        link = ""
        if version.state == "success" and version.video:
            link = f' <a href="{_href(version.video)}">video</a>'
        stamp = version.finished_at or version.updated_at
        mark = ' class="current"' if version is current else ""
        label = ' <span class="mark">current</span>' if version is current else ""
        if version.preview:  # generated for review, not made current (run --preview)
            label += ' <span class="mark preview">preview</span>'
        rows.append(
            f"<li{mark}><code>{_e(_hash8(version))}</code> "
            f'<span class="state {_e(version.state)}">{_e(version.state)}</span> '
            f'<time datetime="{_e(stamp)}">{_e(_when(stamp))}</time>{link}{label}</li>'
        )
    return (
        f'<details class="history"><summary>{_e(plural(len(versions), "version"))}</summary>'
        f"<ol reversed>{''.join(rows)}</ol></details>"
    )


def replaced_version(versions: Sequence[Record], current: Record) -> Record | None:
    """The version ``current`` replaced: the latest other version updated before it (else the
    latest other one); None for a job of one version."""
    others = [v for v in versions if v is not current]
    before = [v for v in others if v.updated_at <= current.updated_at]
    pool = before or others
    return max(pool, key=lambda v: v.updated_at) if pool else None


def _settings(record: Record) -> dict[str, str]:
    """A version's request fields other than the prompt, dotted, as text."""
    request = record.request or {}
    out: dict[str, str] = {}
    for path, value in flatten({k: v for k, v in request.items() if k != "prompt"}):
        out[path] = value if isinstance(value, str) else _json_text(value)
    return out


def _json_text(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)


def _setting_html(value: str) -> str:
    if value[:8].lower().startswith(("http://", "https://")):
        return f'<a href="{_e(value)}" rel="noreferrer noopener">{_e(value)}</a>'
    if value.startswith("sha256:"):
        return f'<code title="{_e(value)}">{_e(value[:19])}…</code>'
    return _e(value)


def _version_html(
    record: Record,
    prompt_html: str,
    settings: dict[str, str],
    other: dict[str, str],
    now: bool,
    subject_html: str,
) -> str:
    badge = (
        '<span class="badge">current</span>' if now else '<span class="badge old">replaced</span>'
    )
    stamp = record.finished_at or record.updated_at
    changed = ' class="changed"'
    rows = f"<dt>subject</dt><dd>{subject_html}</dd>"
    rows += "".join(
        f"<dt>{_e(key)}</dt><dd{changed if other.get(key) != value else ''}>"
        f"{_setting_html(value)}</dd>"
        for key, value in settings.items()
    )
    rows += "".join(
        f'<dt>{_e(key)}</dt><dd class="changed"><em>not set</em></dd>'
        for key in other
        if key not in settings
    )
    return (
        f'<figure class="version{" current" if now else ""}" data-hash="{_e(_hash8(record))}">'
        f"{_media(record, lazy=True)}"
        f"<figcaption>{badge}<code>{_e(_hash8(record))}</code>"
        f'<span class="state {_e(record.state)}">{_e(record.state)}</span>'
        f'<time datetime="{_e(stamp)}">{_e(_when(stamp))}</time></figcaption>'
        f'<p class="prompt">{prompt_html}</p><dl>{rows}</dl></figure>'
    )


def _compare(current: Record, old: Record, prompt: str | None, thumbs: _Thumbnails) -> str:
    """The current version beside the one it replaced: prompts as a word diff, settings."""
    old_prompt = (old.request or {}).get("prompt")
    old_prompt = old_prompt if isinstance(old_prompt, str) else ""
    new_prompt = prompt or ""
    runs = word_diff(old_prompt, new_prompt)
    new_html = "".join(
        _e(t) if op == "same" else f"<ins>{_e(t)}</ins>" for op, t in runs if op != "removed"
    )
    old_html = "".join(
        _e(t) if op == "same" else f"<del>{_e(t)}</del>" for op, t in runs if op != "added"
    )
    new_settings, old_settings = _settings(current), _settings(old)
    before = _version_html(old, old_html, old_settings, new_settings, False, thumbs.html(old.image))
    after = _version_html(
        current, new_html, new_settings, old_settings, True, thumbs.html(current.image)
    )
    return (
        f'<details class="compare"><summary>compare with the version it replaced '
        f'(<code>{_e(_hash8(old))}</code>)</summary><div class="pair">{before}{after}'
        "</div></details>"
    )


def _card(
    current: Record, versions: Sequence[Record], prompt: str | None, thumbs: _Thumbnails
) -> str:
    request = current.request or {}
    model = request.get("model")
    if prompt:
        prompt_html = f'<p class="prompt">{_e(prompt)}</p>'
    else:
        prompt_html = '<p class="prompt none">no prompt recorded</p>'
    meta = []
    if model:
        meta.append(f"<span>{_e(model)}</span>")
    if current.width and current.height:
        meta.append(f"<span>{current.width}&times;{current.height}</span>")
    if current.bytes:
        meta.append(f"<span>{_e(size(current.bytes))}</span>")
    if current.task_id:
        meta.append(f"<span>task <code>{_e(current.task_id)}</code></span>")
    stamp = current.finished_at or current.updated_at
    meta.append(f'<time datetime="{_e(stamp)}">{_e(_when(stamp))}</time>')
    error = ""
    if current.error is not None:
        error = f'<p class="error">{_e(current.error.code)}: {_e(current.error.message)}</p>'
    label = _STATE_LABELS.get(current.state, current.state)
    old = replaced_version(versions, current)
    return (
        f'<article class="card" data-state="{_e(current.state)}" id="job-{_e(current.job)}">'
        f"{_media(current)}"
        f'<div class="body"><div class="title"><h2>{_e(current.job)}</h2>'
        f'<span class="state {_e(current.state)}">{_e(label)}</span>'
        f"{_PREVIEW_BADGE if current.preview else ''}</div>"
        f'<div class="subject">{thumbs.html(current.image)}{prompt_html}</div>'
        f"{error}"
        f'<p class="meta">{"".join(meta)}</p>'
        f"{_compare(current, old, prompt, thumbs) if old is not None else ''}"
        f"{_history(versions, current)}</div></article>"
    )


def render_gallery(
    records: Sequence[Record],
    prompts: Mapping[str, str] | None = None,
    *,
    base: Path | None = None,
    current: Collection[tuple[str, str]] | None = None,
) -> str:
    """The gallery page of ``records`` (every version of every job, e.g. ``store.records()``).

    ``prompts`` (job name -> prompt) fills in prompts of records that have no ``request``;
    ``base`` is where relative local image paths start (default: the current directory);
    ``current`` the ``(job, spec_hash)`` of each job's current version (default: its most
    recently updated one).
    """
    return "".join(gallery_parts(records, prompts, base=base, current=current))


def gallery_parts(
    records: Sequence[Record],
    prompts: Mapping[str, str] | None = None,
    *,
    base: Path | None = None,
    current: Collection[tuple[str, str]] | None = None,
) -> Iterator[str]:
    """The gallery page in pieces, one card at a time (:func:`write_gallery` streams them to
    the file: a 10,000-job page is never held whole, which cost ~40 MB at the end of a run)."""
    prompts = prompts or {}
    thumbs = _Thumbnails(base if base is not None else Path.cwd())
    by_job: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_job[record.job].append(record)
    for versions in by_job.values():
        versions.sort(key=lambda r: r.updated_at)  # the current version last, by default
        chosen = [v for v in versions if current is not None and v.key in current]
        if chosen:  # the current version last
            versions.remove(chosen[-1])
            versions.append(chosen[-1])
    states: Counter[str] = Counter(versions[-1].state for versions in by_job.values())
    jobs = len(by_job)
    links = [f'<a href="#state=all" data-state="all">all ({jobs})</a>']
    links += [
        f'<a href="#state={state}" data-state="{state}">{_e(_STATE_LABELS[state])} '
        f"({states[state]})</a>"
        for state in _FILTER_ORDER
        if states[state]
    ]
    summary = ", ".join(f"{states[s]} {_STATE_LABELS[s]}" for s in _FILTER_ORDER if states[s])
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    # only this page's own script may run, whatever a prompt holds (defence in depth)
    csp = f"script-src 'sha256-{script_hash}'; object-src 'none'; base-uri 'none'"
    empty = "No job in this state." if jobs else "No outcome records yet."
    yield f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>mmgen gallery</title>
<style>
{_STYLE}
</style></head>
<body data-filter="all">
<header class="top"><h1>mmgen gallery</h1>
<p>{_e(plural(jobs, "job"))}{": " + _e(summary) if summary else ""}</p></header>
<nav class="filter" aria-label="filter by state">{"".join(links)}</nav>
<main>
"""
    for number, name in enumerate(sorted(by_job)):
        versions = by_job[name]
        shown = versions[-1]
        request_prompt = (shown.request or {}).get("prompt")
        prompt = request_prompt if isinstance(request_prompt, str) else prompts.get(name)
        yield ("\n" if number else "") + _card(shown, versions, prompt, thumbs)
    yield f"""
</main>
<p class="empty" id="none-shown"{" hidden" if jobs else ""}>{empty}</p>
<script>{_SCRIPT}</script>
</body></html>
"""


def write_gallery(
    out_dir: Path,
    records: Sequence[Record],
    prompts: Mapping[str, str] | None = None,
    *,
    base: Path | None = None,
    current: Collection[tuple[str, str]] | None = None,
) -> Path:
    """Write ``<out>/index.html`` atomically; returns its path."""
    page = out_dir / "index.html"
    tmp = page.with_name(".index.html.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        out.writelines(gallery_parts(records, prompts, base=base, current=current))
    os.replace(tmp, page)
    return page
