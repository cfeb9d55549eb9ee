"""The videos the mock hands out: a small, playable H.264 MP4 per successful task.

Each video shows the job at a glance (the subject image, or a placeholder naming its URL, next to
the model and the prompt) with a progress bar running along the bottom, so a gallery of mock
results can be told apart. Frames are drawn with Pillow and encoded by :mod:`mock_server.h264`
(lossless I_PCM, no binary dependency). The default 320x180, 10 fps, 6 s video is about 150 KB
and takes a few tens of milliseconds of CPU; :class:`VideoCache` keeps recent ones, so tasks with
the same request share one rendering.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import colorsys
import hashlib
import io
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

from PIL import Image, ImageDraw, ImageFont, ImageOps

from mock_server.h264 import MB, YuvFrame, encode_h264, mp4_file

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
    width: int = 320
    height: int = 180
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
    if not ref.startswith("data:") or ";base64," not in ref[:64]:
        return None
    try:
        raw = base64.b64decode(ref.split(",", 1)[1][: _MAX_SUBJECT_BYTES * 4 // 3], validate=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(raw))
            image.draft("RGB", (512, 512))
            return ImageOps.exif_transpose(image).convert("RGB")
    except (binascii.Error, OSError, ValueError, Image.DecompressionBombError):
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


def render_frames(spec: VideoSpec) -> list[Image.Image]:
    """The RGB frames of a video: a still card and a progress bar that grows frame by frame."""
    w, h = spec.width, spec.height
    bg, accent = _accent(spec.prompt + spec.model)
    card = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(card)
    margin = max(4, h // 22)
    bar_top = MB * ((h - 12) // MB) + 4  # the bar stays inside one macroblock row
    tile = min(bar_top - 2 * margin, w // 3)
    card.paste(_subject_tile(spec.subject, tile, accent), (margin, margin))
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
    bar = (margin, bar_top, w - margin, min(h, bar_top + 8))
    draw.rectangle(bar, fill=(70, 70, 80))

    count = max(1, round(spec.fps * spec.seconds))
    frames: list[Image.Image] = []
    for i in range(count):
        frame = card.copy()
        filled = bar[0] + round((bar[2] - bar[0]) * (i + 1) / count)
        ImageDraw.Draw(frame).rectangle((bar[0], bar[1], filled, bar[3]), fill=accent)
        frames.append(frame)
    return frames


def render_video(spec: VideoSpec) -> bytes:
    """The MP4 file of a spec (CPU-bound; call it in a worker thread from async code)."""
    frames = [rgb_to_yuv420(frame) for frame in render_frames(spec)]
    sps, pps, pictures = encode_h264(frames, spec.width, spec.height)
    return mp4_file(sps, pps, pictures, width=spec.width, height=spec.height, fps=spec.fps)


class VideoCache:
    """Rendered videos by :meth:`VideoSpec.key`, least recently used dropped first.

    Concurrent requests for the same spec share one rendering, done in a worker thread so the
    event loop keeps serving.
    """

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self._videos: OrderedDict[str, bytes] = OrderedDict()
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self.renders = 0

    async def get(self, spec: VideoSpec) -> bytes:
        key = spec.key()
        if (video := self._videos.get(key)) is not None:
            self._videos.move_to_end(key)
            return video
        if (pending := self._pending.get(key)) is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            video = await asyncio.to_thread(render_video, spec)
        except BaseException as err:
            if isinstance(err, Exception):
                future.set_exception(err)
                future.exception()  # mark retrieved: the waiters re-raise it
            else:
                future.cancel()
            raise
        finally:
            self._pending.pop(key, None)
        future.set_result(video)
        self.renders += 1
        self._videos[key] = video
        while len(self._videos) > self.max_entries:
            self._videos.popitem(last=False)
        return video

    def peek(self, spec: VideoSpec) -> bytes | None:
        """The cached video of a spec, if rendered already."""
        return self._videos.get(spec.key())

    def clear(self) -> None:
        self._videos.clear()
