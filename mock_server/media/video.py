"""The videos the mock hands out: a small, playable H.264 MP4 per successful task.

Each video shows the job at a glance (the subject image, or a placeholder naming its URL, next to
the model and the prompt) with a progress bar running along the bottom, so a gallery of mock
results can be told apart. Frames are drawn with Pillow and encoded by :mod:`mock_server.media.h264`
(lossless I_PCM, no binary dependency). Frames have the size the request asked for (1280x720 for
720P...), but only the card in their middle is coded sample by sample: the background costs about
a byte per macroblock and later frames code only the progress bar's changed blocks. A 1080P, 6 s
video is about 400 KB and takes a few milliseconds of CPU; :class:`VideoCache` keeps recent ones,
so tasks with the same request share one rendering.
"""

from __future__ import annotations

import asyncio
import colorsys
import concurrent.futures
import hashlib
import io
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from PIL import Image, ImageDraw, ImageFont, ImageOps

from mmgen.dataurl import data_url_bytes
from mock_server.media.h264 import MB, YuvFrame, encode_card_stream, mp4_file

_Y_LUT = [16 + round(v * 219 / 255) for v in range(256)]
_C_LUT = [128 + round((v - 128) * 224 / 255) for v in range(256)]
_MAX_SUBJECT_BYTES = 30 * 1024 * 1024

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


@dataclass(frozen=True)
class VideoSpec:
    """What one video shows, and its format. Equal specs give byte-identical files."""

    prompt: str
    model: str
    subject: str | None  # an image URL or data URL, as in the request
    width: int = 1280
    height: int = 720
    fps: int = 10
    seconds: float = 6.0

    def key(self) -> str:
        h = hashlib.sha256()
        for part in (self.prompt, self.model, self.subject or "", self.width, self.height):
            h.update(str(part).encode() + b"\0")
        h.update(f"{self.fps}:{self.seconds}".encode())
        return h.hexdigest()


def rgb_to_yuv420(image: Image.Image) -> YuvFrame:
    """Limited-range BT.601 planar 4:2:0 samples of an RGB image with even sides."""
    y, cb, cr = image.convert("YCbCr").split()  # full range (JPEG) conversion
    half = (image.width // 2, image.height // 2)
    return YuvFrame(
        image.width,
        image.height,
        y.point(_Y_LUT).tobytes(),
        cb.resize(half, Image.Resampling.BOX).point(_C_LUT).tobytes(),
        cr.resize(half, Image.Resampling.BOX).point(_C_LUT).tobytes(),
    )


@lru_cache(maxsize=32)
def _font(size: int) -> Font:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _accent(text: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """A dark background and a bright accent colour derived from the text."""
    hue = int(hashlib.sha256(text.encode()).hexdigest()[:4], 16) / 0xFFFF
    bg = colorsys.hsv_to_rgb(hue, 0.55, 0.22)
    fg = colorsys.hsv_to_rgb((hue + 0.5) % 1.0, 0.65, 0.95)
    return (
        (int(bg[0] * 255), int(bg[1] * 255), int(bg[2] * 255)),
        (int(fg[0] * 255), int(fg[1] * 255), int(fg[2] * 255)),
    )


def _decode_data_url(ref: str) -> Image.Image | None:
    """The image of a ``data:image/...;base64,`` URL, or None when it does not decode."""
    raw = data_url_bytes(ref, max_bytes=_MAX_SUBJECT_BYTES)
    if raw is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(raw))
            image.draft("RGB", (512, 512))
            return ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _subject_tile(ref: str | None, size: int, accent: tuple[int, int, int]) -> Image.Image:
    """A square picture of the subject: the decoded image, or a silhouette naming the URL."""
    image = _decode_data_url(ref) if ref else None
    if image is not None:
        return ImageOps.fit(image, (size, size), Image.Resampling.BILINEAR)
    tile = Image.new("RGB", (size, size), (40, 40, 48))
    draw = ImageDraw.Draw(tile)
    head = size * 0.22
    cx, cy = size / 2, size * 0.38
    draw.ellipse((cx - head, cy - head, cx + head, cy + head), fill=accent)
    draw.ellipse((size * 0.18, size * 0.66, size * 0.82, size * 1.25), fill=accent)
    if ref:
        name = urlsplit(ref).path.rsplit("/", 1)[-1] or urlsplit(ref).netloc or "image"
        font = _font(max(8, size // 11))
        draw.rectangle((0, size - size // 7, size, size), fill=(20, 20, 24))
        draw.text((3, size - size // 7 + 1), name[:24], fill=(230, 230, 230), font=font)
    return tile


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if draw.textlength(candidate, font=font) <= width or not line:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


#: Output geometry per ``resolution`` value (16:9 frames; 768P as MiniMax's Hailuo renders it).
RESOLUTIONS = {
    "512P": (912, 512),
    "720P": (1280, 720),
    "768P": (1366, 768),
    "1080P": (1920, 1080),
}
DURATIONS = (6, 10)


def default_resolution(model: str) -> str:
    """720P for the 01 models (S2V-01, T2V-01, I2V-01..., video-01), 768P for Hailuo."""
    return "768P" if model.startswith("MiniMax-Hailuo") else "720P"


def requested_geometry(body: dict[str, object]) -> tuple[int, int, int]:
    """(width, height, seconds) a request asks for: its ``resolution`` (or the model's default)
    and ``duration`` (6 or 10; anything else, e.g. on S2V-01 which documents none, gives 6)."""
    model = str(body.get("model") or "")
    resolution = body.get("resolution")
    if not isinstance(resolution, str) or resolution.upper() not in RESOLUTIONS:
        resolution = default_resolution(model)
    width, height = RESOLUTIONS[resolution.upper()]
    duration = body.get("duration")
    seconds = duration if isinstance(duration, int) and duration in DURATIONS else DURATIONS[0]
    return width, height, seconds


@dataclass(frozen=True)
class CardLayout:
    """Where the card sits in the coded frame, in macroblocks, and its size in pixels."""

    x: int
    y: int
    cols: int
    rows: int
    bar_row: int  # the macroblock row of the card that holds the progress bar

    @property
    def width(self) -> int:
        return self.cols * MB

    @property
    def height(self) -> int:
        return self.rows * MB


def card_layout(width: int, height: int) -> CardLayout:
    """A 16:9 card about a third of the frame wide, centred; the whole frame when it is small."""
    cols, rows = -(-width // MB), -(-height // MB)
    if cols * rows <= 660:  # up to about 480x352: the card is the picture
        return CardLayout(0, 0, cols, rows, max(0, height // MB - 1))
    card_cols = min(cols - 2, 32, max(20, round(cols / 3)))
    card_rows = min(rows - 2, max(11, round(card_cols * 9 / 16)))
    x, y = (cols - card_cols) // 2, (rows - card_rows) // 2
    return CardLayout(x, y, card_cols, card_rows, card_rows - 1)


@lru_cache(maxsize=64)
def _tile(ref: str | None, size: int, accent: tuple[int, int, int]) -> Image.Image:
    return _subject_tile(ref, size, accent)


def render_card(spec: VideoSpec, layout: CardLayout) -> tuple[Image.Image, Image.Image, Bar]:
    """The card with an empty progress bar, the same with a full one, and where the bar is."""
    w, h = layout.width, layout.height
    bg, accent = _accent(spec.prompt + spec.model)
    card = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(card)
    margin = max(4, h // 22)
    bar_top = layout.bar_row * MB + 4  # the bar lives in one macroblock row, background around it
    tile = max(8, min(bar_top - 2 * margin, w // 3))
    card.paste(_tile(spec.subject, tile, accent), (margin, margin))
    x0 = margin * 2 + tile
    title_font, text_font = _font(max(9, h // 14)), _font(max(8, h // 17))
    draw.text((x0, margin), f"{spec.model} · mmgen mock", fill=accent, font=title_font)
    line_height = max(9, h // 17) + 3
    y = margin + line_height + 4
    lines = _wrap(draw, spec.prompt or "(no prompt)", text_font, w - x0 - margin)
    max_lines = max(1, (bar_top - margin - y) // line_height)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1] + " …"]
    for line in lines:
        draw.text((x0, y), line, fill=(235, 235, 235), font=text_font)
        y += line_height
    bar = Bar(left=margin & ~1, right=(w - margin) & ~1, top=bar_top, bottom=bar_top + 8)
    draw.rectangle((bar.left, bar.top, bar.right - 1, bar.bottom - 1), fill=(70, 70, 80))
    full = card.crop((0, layout.bar_row * MB, w, (layout.bar_row + 1) * MB))
    ImageDraw.Draw(full).rectangle((bar.left, 4, bar.right - 1, 11), fill=accent)
    return card, full, bar


@dataclass(frozen=True)
class Bar:
    """The progress bar, in card pixels (even columns, so chroma follows)."""

    left: int
    right: int
    top: int
    bottom: int

    def filled(self, frame: int, count: int) -> int:
        """The first column not yet filled in frame ``frame`` of ``count``."""
        return (self.left + (self.right - self.left) * (frame + 1) // count) & ~1


def _planes(image: Image.Image) -> tuple[Image.Image, Image.Image, Image.Image]:
    """Limited-range BT.601 Y, Cb and Cr planes (4:2:0) of an RGB image with even sides."""
    y, cb, cr = image.convert("YCbCr").split()  # full range (JPEG) conversion
    half = (image.width // 2, image.height // 2)
    return (
        y.point(_Y_LUT),
        cb.resize(half, Image.Resampling.BOX).point(_C_LUT),
        cr.resize(half, Image.Resampling.BOX).point(_C_LUT),
    )


def _macroblocks(image: Image.Image, first_row: int = 0) -> dict[tuple[int, int], bytes]:
    """The I_PCM payload of every macroblock of an RGB image made of whole macroblocks.

    Each plane is gathered a column of macroblocks at a time (one slice per sample row, one
    join per column): the column is then already in macroblock order, 16 rows of 16 samples,
    then the next block down.
    """
    y, cb, cr = (plane.tobytes() for plane in _planes(image))
    width, rows = image.width, image.height // MB
    half = width // 2
    out: dict[tuple[int, int], bytes] = {}
    for mx in range(width // MB):
        ys = b"".join([y[o : o + MB] for o in range(mx * MB, len(y), width)])
        cbs = b"".join([cb[o : o + 8] for o in range(mx * 8, len(cb), half)])
        crs = b"".join([cr[o : o + 8] for o in range(mx * 8, len(cr), half)])
        for my in range(rows):
            out[(mx, first_row + my)] = (
                ys[my * 256 : (my + 1) * 256]
                + cbs[my * 64 : (my + 1) * 64]
                + crs[my * 64 : (my + 1) * 64]
            )
    return out


def _bar_block(empty: bytes, full: bytes, fill: int) -> bytes:
    """A bar macroblock filled up to column ``fill`` (0..16, even) of its own."""
    if fill <= 0:
        return empty
    if fill >= MB:
        return full
    half = fill // 2
    y = b"".join(
        full[r * MB : r * MB + fill] + empty[r * MB + fill : (r + 1) * MB] for r in range(MB)
    )
    chroma = b"".join(
        full[256 + r * 8 : 256 + r * 8 + half] + empty[256 + r * 8 + half : 256 + (r + 1) * 8]
        for r in range(16)
    )
    return y + chroma


def render_video(spec: VideoSpec) -> bytes:
    """The MP4 file of a spec (CPU-bound; call it in a worker thread from async code).

    The frame has the spec's real size; only the card (a third of the frame) is coded sample by
    sample, the background costs about one byte per macroblock, and each later frame codes only
    the progress bar's changed macroblocks: a 1080P, 6 s video is ~400 KB and a few ms of CPU.
    """
    layout = card_layout(spec.width, spec.height)
    card, full_strip, bar = render_card(spec, layout)
    blocks = _macroblocks(card)
    last_row = layout.bar_row
    full = _macroblocks(full_strip, first_row=last_row)
    count = max(1, round(spec.fps * spec.seconds))

    def bar_row(fill: int, columns: range) -> dict[tuple[int, int], bytes]:
        return {
            (layout.x + mx, layout.y + last_row): _bar_block(
                blocks[(mx, last_row)], full[(mx, last_row)], fill - mx * MB
            )
            for mx in columns
        }

    first = {(layout.x + mx, layout.y + my): b for (mx, my), b in blocks.items()}
    previous = bar.filled(0, count)
    first.update(bar_row(previous, range(layout.cols)))
    updates: list[dict[tuple[int, int], bytes]] = []
    for index in range(1, count):
        fill = bar.filled(index, count)
        changed = (
            range(previous // MB, min(layout.cols, (fill + MB - 1) // MB))
            if fill > previous
            else range(0)
        )
        updates.append(bar_row(fill, changed))
        previous = fill
    bg = Image.new("RGB", (MB, MB), card.getpixel((0, 0)))
    (background,) = _macroblocks(bg).values()
    sps, pps, pictures = encode_card_stream(
        width=spec.width, height=spec.height, background=background, card=first, updates=updates
    )
    return mp4_file(sps, pps, pictures, width=spec.width, height=spec.height, fps=spec.fps)


class VideoCache:
    """Rendered videos by :meth:`VideoSpec.key`, least recently used dropped first.

    Concurrent requests for the same spec share one rendering, done in a worker thread so the
    event loop keeps serving. Safe to use from several event loops (the API's and the CDN
    origin's, each on its own thread).
    """

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self._videos: OrderedDict[str, bytes] = OrderedDict()
        self._pending: dict[str, concurrent.futures.Future[bytes]] = {}
        self._lock = threading.Lock()
        self.renders = 0

    async def get(self, spec: VideoSpec) -> bytes:
        key = spec.key()
        with self._lock:
            if (video := self._videos.get(key)) is not None:
                self._videos.move_to_end(key)
                return video
            pending = self._pending.get(key)
            if pending is None:
                future: concurrent.futures.Future[bytes] = concurrent.futures.Future()
                self._pending[key] = future
        if pending is not None:
            return await asyncio.shield(asyncio.wrap_future(pending))
        try:
            video = await asyncio.to_thread(render_video, spec)
        except BaseException as err:
            with self._lock:
                self._pending.pop(key, None)
            if isinstance(err, Exception):
                future.set_exception(err)
            else:
                future.cancel()
            raise
        with self._lock:
            self._pending.pop(key, None)
            self.renders += 1
            self._videos[key] = video
            while len(self._videos) > self.max_entries:
                self._videos.popitem(last=False)
        future.set_result(video)
        return video

    def peek(self, spec: VideoSpec) -> bytes | None:
        """The cached video of a spec, if rendered already."""
        with self._lock:
            return self._videos.get(spec.key())

    def clear(self) -> None:
        with self._lock:
            self._videos.clear()
