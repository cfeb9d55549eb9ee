"""The mock's MP4s decode with FFmpeg (PyAV), frame for frame and pixel for pixel."""

from __future__ import annotations

import asyncio
import base64
import io
import random

import av
import pytest
from PIL import Image

from mock_server.h264 import BitWriter, YuvFrame, encode_h264, mp4_file
from mock_server.video import VideoCache, VideoSpec, render_frames, render_video, rgb_to_yuv420


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


def test_default_video_is_small_playable_and_shows_the_job():
    spec = VideoSpec(prompt="A girl runs toward the camera.", model="S2V-01", subject=None)
    data = render_video(spec)
    assert data[4:8] == b"ftyp"
    assert len(data) < 300_000
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (320, 180)
        assert container.duration is not None
        assert abs(container.duration / 1_000_000 - 6.0) < 0.01
        frames = list(container.decode(video=0))
    assert len(frames) == 60
    expected = [rgb_to_yuv420(f) for f in render_frames(spec)]
    assert plane(frames[0], 0) == expected[0].y
    assert plane(frames[-1], 0) == expected[-1].y
    assert plane(frames[0], 0) != plane(frames[-1], 0)  # the progress bar moved


def test_subject_data_url_is_drawn():
    buf = io.BytesIO()
    Image.new("RGB", (400, 600), (255, 0, 0)).save(buf, "PNG")
    subject = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    spec = VideoSpec(prompt="red", model="S2V-01", subject=subject, fps=2, seconds=1)
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
