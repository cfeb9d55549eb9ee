"""The mock's MP4s decode with FFmpeg (PyAV), frame for frame and pixel for pixel."""

from __future__ import annotations

import asyncio
import base64
import io
import random

import av
import pytest
from PIL import Image

from mock_server.media.h264 import MB, BitWriter, YuvFrame, encode_h264, mp4_file
from mock_server.media.video import (
    VideoCache,
    VideoSpec,
    card_layout,
    render_card,
    render_video,
    requested_geometry,
    rgb_to_yuv420,
)
from mock_server.responses import VideoFile


def decode(data: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data), mode="r") as container:
        return list(container.decode(video=0))


def plane(frame: av.VideoFrame, index: int) -> bytes:
    """A plane's samples without the line padding."""
    p = frame.planes[index]
    width = frame.width if index == 0 else frame.width // 2
    height = frame.height if index == 0 else frame.height // 2
    raw = bytes(p)
    return b"".join(raw[r * p.line_size : r * p.line_size + width] for r in range(height))


def random_frames(width: int, height: int, count: int, seed: int) -> list[YuvFrame]:
    """Noisy frames (zeros included, to exercise emulation prevention), a few blocks changing."""
    rng = random.Random(seed)
    y = bytearray(rng.randbytes(width * height))
    cb = bytearray(rng.randbytes(width * height // 4))
    cr = bytearray(rng.randbytes(width * height // 4))
    y[: width * 4] = bytes(width * 4)  # runs of zero samples
    frames = []
    for i in range(count):
        if i % 3 == 1:  # some frames identical to the previous one: all P_Skip
            pass
        else:
            for _ in range(rng.randrange(1, 6)):
                y[rng.randrange(len(y))] = rng.randrange(256)
                cb[rng.randrange(len(cb))] = rng.randrange(256)
        frames.append(YuvFrame(width, height, bytes(y), bytes(cb), bytes(cr)))
    return frames


@pytest.mark.parametrize(("width", "height"), [(64, 48), (50, 34), (320, 180), (16, 16)])
def test_encoder_is_lossless_for_every_frame(width, height):
    frames = random_frames(width, height, 8, seed=width * height)
    sps, pps, pictures = encode_h264(frames, width, height)
    data = mp4_file(sps, pps, pictures, width=width, height=height, fps=10)
    decoded = decode(data)
    assert len(decoded) == len(frames)
    for got, want in zip(decoded, frames, strict=True):
        assert (got.width, got.height) == (width, height)
        assert got.format.name == "yuv420p"
        assert plane(got, 0) == want.y
        assert plane(got, 1) == want.cb
        assert plane(got, 2) == want.cr


def test_encoder_refuses_odd_sizes():
    with pytest.raises(ValueError, match="even"):
        encode_h264([], 15, 16)


def test_exp_golomb_codes():
    w = BitWriter()
    for value in (0, 1, 2, 3, 7):
        w.ue(value)
    w.se(-1)
    # 1 010 011 00100 0001000 011 + stop bit
    assert w.trailing_bits() == bytes([0b10100110, 0b01000001, 0b00001110])


def crop_plane(data: bytes, width: int, box: tuple[int, int, int, int]) -> bytes:
    x0, y0, x1, y1 = box
    return b"".join(data[y * width + x0 : y * width + x1] for y in range(y0, y1))


def test_default_video_is_real_size_small_playable_and_shows_the_job():
    spec = VideoSpec(prompt="A girl runs toward the camera.", model="S2V-01", subject=None)
    data = render_video(spec)
    assert data[4:8] == b"ftyp"
    assert len(data) < 300_000  # 1280x720 frames, yet small
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (1280, 720)
        assert container.duration is not None
        assert abs(container.duration / 1_000_000 - 6.0) < 0.01
        frames = list(container.decode(video=0))
    assert len(frames) == 60
    layout = card_layout(1280, 720)
    card, _full, _bar = render_card(spec, layout)
    want = rgb_to_yuv420(card)
    x0, y0 = layout.x * MB, layout.y * MB
    box = (x0, y0, x0 + card.width, y0 + layout.bar_row * MB)
    inside = (0, 0, card.width, layout.bar_row * MB)
    for frame in (frames[0], frames[-1]):  # the card, sample for sample (lossless)
        assert crop_plane(plane(frame, 0), 1280, box) == crop_plane(want.y, card.width, inside)
    background = plane(frames[0], 0)[:1280]  # the top row: flat background
    assert len(set(background)) == 1 and background[0] == want.y[0]
    assert plane(frames[0], 0) != plane(frames[-1], 0)  # the progress bar moved


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"model": "S2V-01"}, (1280, 720, 6)),
        ({"model": "S2V-01", "resolution": "1080P", "duration": 6}, (1920, 1080, 6)),
        ({"model": "video-01"}, (1280, 720, 6)),
        ({"model": "T2V-01", "duration": 10}, (1280, 720, 10)),
        ({"model": "MiniMax-Hailuo-2.3"}, (1366, 768, 6)),
        ({"model": "MiniMax-Hailuo-02", "resolution": "768P", "duration": 10}, (1366, 768, 10)),
        ({"model": "MiniMax-Hailuo-02", "resolution": "512P"}, (912, 512, 6)),
        ({"model": "MiniMax-Hailuo-02", "resolution": "1080P"}, (1920, 1080, 6)),
        ({"model": "I2V-01", "duration": 7}, (1280, 720, 6)),
    ],
)
def test_geometry_follows_resolution_and_duration(body, expected):
    assert requested_geometry(body) == expected


@pytest.mark.parametrize(("width", "height", "seconds"), [(1920, 1080, 6), (1366, 768, 10)])
def test_large_videos_decode_at_their_real_size(width, height, seconds):
    spec = VideoSpec("x", "MiniMax-Hailuo-02", None, width=width, height=height, seconds=seconds)
    data = render_video(spec)
    with av.open(io.BytesIO(data), mode="r") as container:
        frames = list(container.decode(video=0))
        duration = container.duration
    assert {(f.width, f.height) for f in frames} == {(width, height)}
    assert len(frames) == 10 * seconds
    assert duration is not None and abs(duration / 1_000_000 - seconds) < 0.01


def test_padded_file_still_decodes_and_is_never_materialised():
    spec = VideoSpec(prompt="pad", model="S2V-01", subject=None, width=320, height=180, fps=2)
    video = render_video(spec)
    padded = VideoFile(video, min_bytes=3_000_000)
    assert padded.size == 3_000_000
    assert len(padded.head) < len(video) + 64  # the padding exists only as a length
    data = b"".join(padded.chunks(0, padded.size))
    assert data[len(video) + 4 : len(video) + 8] == b"free"
    with av.open(io.BytesIO(data), mode="r") as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 12 and (frames[0].width, frames[0].height) == (320, 180)
    assert b"".join(padded.chunks(100, 5000)) == data[100:5000]
    assert VideoFile(video, min_bytes=0).size == len(video)
    huge = VideoFile(video, min_bytes=5 * 2**32)  # past 4 GiB: a 64-bit box size
    assert huge.size == 5 * 2**32
    assert huge.head[len(video) : len(video) + 8] == b"\x00\x00\x00\x01free"


def test_subject_data_url_is_drawn():
    buf = io.BytesIO()
    Image.new("RGB", (400, 600), (255, 0, 0)).save(buf, "PNG")
    subject = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    spec = VideoSpec("red", "S2V-01", subject, width=320, height=180, fps=2, seconds=1)
    first = decode(render_video(spec))[0].to_image()  # type: ignore[no-untyped-call]
    r, g, b = first.getpixel((40, 40))
    assert r > 200 and g < 60 and b < 60


def test_broken_data_url_falls_back_to_placeholder():
    spec = VideoSpec(prompt="x", model="S2V-01", subject="data:image/png;base64,AAAA", fps=1)
    assert len(decode(render_video(spec))) == 6


def test_cache_renders_each_spec_once():
    cache = VideoCache(max_entries=2)
    a = VideoSpec(prompt="a", model="S2V-01", subject=None, fps=2, seconds=1)
    b = VideoSpec(prompt="b", model="S2V-01", subject=None, fps=2, seconds=1)
    c = VideoSpec(prompt="c", model="S2V-01", subject=None, fps=2, seconds=1)

    async def scenario() -> None:
        first, second = await asyncio.gather(cache.get(a), cache.get(a))
        assert first is second
        assert cache.renders == 1
        await cache.get(b)
        await cache.get(c)  # evicts a
        assert cache.peek(a) is None
        assert cache.renders == 3

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("width", "height", "box"),
    [
        (160, 96, (2, 1, 4, 3)),  # a card in the middle
        (160, 96, (0, 0, 3, 2)),  # at the top left: it covers macroblock (0, 0)
        (160, 96, (7, 4, 3, 2)),  # at the bottom right edge
        (50, 34, (0, 0, 4, 3)),  # the whole (cropped) picture
        (1366, 768, (30, 10, 5, 4)),  # a width that is not whole macroblocks
    ],
)
def test_card_stream_is_lossless_wherever_the_card_sits(width, height, box):
    """A card of noise with a background border, anywhere in the picture: every plain
    macroblock decodes to the background, the card sample for sample, later frames too."""
    from mock_server.media.h264 import encode_card_stream

    bx, by, bw, bh = box
    cols, rows = -(-width // MB), -(-height // MB)
    rng = random.Random(width * 31 + bx)
    bg = (60, 110, 150)
    y = bytearray([bg[0]]) * (cols * MB * rows * MB)
    cb = bytearray([bg[1]]) * (cols * 8 * rows * 8)
    cr = bytearray([bg[2]]) * (cols * 8 * rows * 8)
    for py in range(by * MB + 1, (by + bh) * MB - 1):  # noise inside a 1-sample border
        for px in range(bx * MB + 1, (bx + bw) * MB - 1):
            y[py * cols * MB + px] = rng.randrange(16, 236)
    for py in range(by * 8 + 1, (by + bh) * 8 - 1):
        for px in range(bx * 8 + 1, (bx + bw) * 8 - 1):
            cb[py * cols * 8 + px] = rng.randrange(16, 241)
            cr[py * cols * 8 + px] = rng.randrange(16, 241)

    def payload(mx: int, my: int, y: bytes, cb: bytes, cr: bytes) -> bytes:
        w, cw = cols * MB, cols * 8
        parts = [y[(my * MB + r) * w + mx * MB :][:MB] for r in range(MB)]
        parts += [cb[(my * 8 + r) * cw + mx * 8 :][:8] for r in range(8)]
        parts += [cr[(my * 8 + r) * cw + mx * 8 :][:8] for r in range(8)]
        return b"".join(parts)

    card = {
        (mx, my): payload(mx, my, y, cb, cr)
        for mx in range(bx, bx + bw)
        for my in range(by, by + bh)
    }
    background = bytes([bg[0]]) * 256 + bytes([bg[1]]) * 64 + bytes([bg[2]]) * 64
    changed = bytearray(y)
    for px in range(bx * MB + 1, bx * MB + 15):
        changed[(by * MB + 5) * cols * MB + px] = 235  # frame 2 changes one card macroblock
    update = {(bx, by): payload(bx, by, bytes(changed), cb, cr)}
    sps, pps, pictures = encode_card_stream(
        width=width, height=height, background=background, card=card, updates=[{}, update]
    )
    frames = decode(mp4_file(sps, pps, pictures, width=width, height=height, fps=10))
    assert len(frames) == 3

    def cropped(plane_: bytes, stride: int, w: int, h: int) -> bytes:
        return b"".join(plane_[r * stride : r * stride + w] for r in range(h))

    for frame, luma in zip(frames, (y, y, changed), strict=True):
        assert plane(frame, 0) == cropped(bytes(luma), cols * MB, width, height)
        assert plane(frame, 1) == cropped(bytes(cb), cols * 8, width // 2, height // 2)
        assert plane(frame, 2) == cropped(bytes(cr), cols * 8, width // 2, height // 2)
