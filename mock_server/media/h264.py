"""A tiny, dependency-free H.264 + MP4 writer: lossless I_PCM macroblocks and skipped blocks.

Why not PyAV/FFmpeg: the mock ships in the runtime package (``mmgen run --mock``), and a 35 MB
binary wheel is a heavy price for a few seconds of test video. H.264 has a lossless macroblock
type, ``I_PCM``, whose samples are stored raw; with it an encoder is a bit writer:

- one IDR picture made of I_PCM macroblocks (about 384 bytes per 16x16 block), then
- P pictures in which unchanged macroblocks are skipped (``P_Skip``: copy the block of the
  previous picture, motion vector 0) and changed ones are I_PCM again.

The stream is Constrained Baseline profile, CAVLC, picture order type 2 (no B pictures), the
deblocking filter off (so decoded pictures equal the input bit for bit), cropped to any even size.
The container is a plain ISO BMFF (``ftyp``, ``moov`` first for progressive playback, ``mdat``)
with an ``avcC`` sample entry, which every player, ffprobe and PyAV read.

The input is a sequence of planar YUV 4:2:0 pictures (:class:`YuvFrame`), limited range BT.601.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

MB = 16  # macroblock size in luma samples
_EMULATION = re.compile(b"\x00\x00(?=[\x00-\x03])")


@dataclass(frozen=True)
class YuvFrame:
    """One picture: Y plane ``width x height``, Cb and Cr planes ``width/2 x height/2``."""

    width: int
    height: int
    y: bytes
    cb: bytes
    cr: bytes


class BitWriter:
    """MSB-first bit writer with the Exp-Golomb codes of H.264 (clause 9.1)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self._acc = 0
        self._bits = 0

    def u(self, value: int, bits: int) -> None:
        self._acc = (self._acc << bits) | (value & ((1 << bits) - 1))
        self._bits += bits
        while self._bits >= 8:
            self._bits -= 8
            self.buf.append((self._acc >> self._bits) & 0xFF)
        self._acc &= (1 << self._bits) - 1

    def ue(self, value: int) -> None:
        code = value + 1
        length = code.bit_length()
        self.u(0, length - 1)
        self.u(code, length)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align_zero(self) -> None:
        if self._bits:
            self.u(0, 8 - self._bits)

    def raw(self, data: bytes) -> None:
        """Append byte-aligned data (I_PCM samples)."""
        assert self._bits == 0, "raw bytes need byte alignment"
        self.buf += data

    def trailing_bits(self) -> bytes:
        """``rbsp_trailing_bits()``: a stop bit, then zeros to the byte boundary."""
        self.u(1, 1)
        self.align_zero()
        return bytes(self.buf)


def nal_unit(nal_ref_idc: int, nal_unit_type: int, rbsp: bytes) -> bytes:
    """Wrap an RBSP into a NAL unit (header byte + emulation prevention)."""
    return bytes([(nal_ref_idc << 5) | nal_unit_type]) + _EMULATION.sub(b"\x00\x00\x03", rbsp)


@dataclass(frozen=True)
class StreamParams:
    width: int
    height: int
    log2_max_frame_num: int = 8

    @property
    def mb_cols(self) -> int:
        return (self.width + MB - 1) // MB

    @property
    def mb_rows(self) -> int:
        return (self.height + MB - 1) // MB

    @property
    def level_idc(self) -> int:
        mbs = self.mb_cols * self.mb_rows
        return 31 if mbs <= 3600 else 40 if mbs <= 8192 else 51

    def sps(self) -> bytes:
        w = BitWriter()
        w.u(66, 8)  # profile_idc: Baseline
        w.u(0b11000000, 8)  # constraint_set0/1: Constrained Baseline
        w.u(self.level_idc, 8)
        w.ue(0)  # seq_parameter_set_id
        w.ue(self.log2_max_frame_num - 4)
        w.ue(2)  # pic_order_cnt_type 2: output order = decoding order
        w.ue(1)  # max_num_ref_frames
        w.u(0, 1)  # gaps_in_frame_num_value_allowed_flag
        w.ue(self.mb_cols - 1)
        w.ue(self.mb_rows - 1)
        w.u(1, 1)  # frame_mbs_only_flag
        w.u(1, 1)  # direct_8x8_inference_flag
        crop_right = (self.mb_cols * MB - self.width) // 2  # CropUnitX = 2 for 4:2:0
        crop_bottom = (self.mb_rows * MB - self.height) // 2  # CropUnitY = 2 (frames only)
        if crop_right or crop_bottom:
            w.u(1, 1)
            w.ue(0)
            w.ue(crop_right)
            w.ue(0)
            w.ue(crop_bottom)
        else:
            w.u(0, 1)
        w.u(0, 1)  # vui_parameters_present_flag
        return nal_unit(3, 7, w.trailing_bits())

    def pps(self) -> bytes:
        w = BitWriter()
        w.ue(0)  # pic_parameter_set_id
        w.ue(0)  # seq_parameter_set_id
        w.u(0, 1)  # entropy_coding_mode_flag: CAVLC
        w.u(0, 1)  # bottom_field_pic_order_in_frame_present_flag
        w.ue(0)  # num_slice_groups_minus1
        w.ue(0)  # num_ref_idx_l0_default_active_minus1
        w.ue(0)  # num_ref_idx_l1_default_active_minus1
        w.u(0, 1)  # weighted_pred_flag
        w.u(0, 2)  # weighted_bipred_idc
        w.se(0)  # pic_init_qp_minus26
        w.se(0)  # pic_init_qs_minus26
        w.se(0)  # chroma_qp_index_offset
        w.u(1, 1)  # deblocking_filter_control_present_flag
        w.u(0, 1)  # constrained_intra_pred_flag
        w.u(0, 1)  # redundant_pic_cnt_present_flag
        return nal_unit(3, 8, w.trailing_bits())

    def slice_header(self, w: BitWriter, *, idr: bool, frame_num: int) -> None:
        w.ue(0)  # first_mb_in_slice
        w.ue(7 if idr else 5)  # slice_type: I or P (all slices of the picture alike)
        w.ue(0)  # pic_parameter_set_id
        w.u(frame_num % (1 << self.log2_max_frame_num), self.log2_max_frame_num)
        if idr:
            w.ue(0)  # idr_pic_id
        else:
            w.u(0, 1)  # num_ref_idx_active_override_flag
            w.u(0, 1)  # ref_pic_list_modification_flag_l0
        if idr:
            w.u(0, 1)  # no_output_of_prior_pics_flag
            w.u(0, 1)  # long_term_reference_flag
        else:
            w.u(0, 1)  # adaptive_ref_pic_marking_mode_flag
        w.se(0)  # slice_qp_delta
        w.ue(1)  # disable_deblocking_filter_idc: off, so PCM stays lossless


def _band(frame: YuvFrame, cols: int, my: int) -> tuple[bytes, bytes, bytes]:
    """All samples of one macroblock row (to find unchanged rows quickly)."""
    w, cw = cols * MB, cols * MB // 2
    return (
        frame.y[my * MB * w : (my + 1) * MB * w],
        frame.cb[my * 8 * cw : (my + 1) * 8 * cw],
        frame.cr[my * 8 * cw : (my + 1) * 8 * cw],
    )


def pad_frame(frame: YuvFrame, params: StreamParams) -> YuvFrame:
    """Extend a frame to whole macroblocks by repeating its last column and row."""
    cw, ch = params.mb_cols * MB, params.mb_rows * MB
    if (frame.width, frame.height) == (cw, ch):
        return frame

    def pad(plane: bytes, w: int, h: int, to_w: int, to_h: int) -> bytes:
        rows = [plane[r * w : (r + 1) * w] for r in range(h)]
        rows = [row + row[-1:] * (to_w - w) for row in rows]
        rows += [rows[-1]] * (to_h - h)
        return b"".join(rows)

    w2, h2 = frame.width // 2, frame.height // 2
    return YuvFrame(
        cw,
        ch,
        pad(frame.y, frame.width, frame.height, cw, ch),
        pad(frame.cb, w2, h2, cw // 2, ch // 2),
        pad(frame.cr, w2, h2, cw // 2, ch // 2),
    )


def encode_h264(
    frames: Sequence[YuvFrame], width: int, height: int
) -> tuple[bytes, bytes, list[bytes]]:
    """Encode frames: (SPS, PPS, one NAL unit per picture), NAL units without start codes."""
    if width % 2 or height % 2 or width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive and even, not {width}x{height}")
    params = StreamParams(width, height)
    cols, rows = params.mb_cols, params.mb_rows
    pictures: list[bytes] = []
    prev: YuvFrame | None = None
    for index, raw in enumerate(frames):
        if (raw.width, raw.height) != (width, height):
            raise ValueError("all frames must have the stream's size")
        frame = pad_frame(raw, params)
        w = BitWriter()
        if prev is None:
            params.slice_header(w, idr=True, frame_num=0)
            for my in range(rows):
                for block in _macroblocks_row(frame, cols, my):
                    w.ue(25)  # mb_type I_PCM in an I slice
                    w.align_zero()  # pcm_alignment_zero_bit
                    w.raw(block)
            pictures.append(nal_unit(3, 5, w.trailing_bits()))
        else:
            params.slice_header(w, idr=False, frame_num=index)
            skip = 0
            for my in range(rows):
                if _band(frame, cols, my) == _band(prev, cols, my):
                    skip += cols
                    continue
                new_row = _macroblocks_row(frame, cols, my)
                old_row = _macroblocks_row(prev, cols, my)
                for block, old in zip(new_row, old_row, strict=True):
                    if block == old:
                        skip += 1
                        continue
                    w.ue(skip)  # mb_skip_run
                    skip = 0
                    w.ue(30)  # mb_type I_PCM in a P slice (5 + 25)
                    w.align_zero()
                    w.raw(block)
            if skip:
                w.ue(skip)
            pictures.append(nal_unit(2, 1, w.trailing_bits()))
        prev = frame
    return params.sps(), params.pps(), pictures


def _macroblocks_row(frame: YuvFrame, cols: int, my: int) -> list[bytes]:
    """The I_PCM payload (256 Y + 64 Cb + 64 Cr samples) of each macroblock of MB row ``my``."""
    w, cw = cols * MB, cols * MB // 2
    y, cb, cr = frame.y, frame.cb, frame.cr
    row: list[bytes] = []
    for mx in range(cols):
        parts = [y[(my * MB + r) * w + mx * MB :][:MB] for r in range(MB)]
        parts += [cb[(my * 8 + r) * cw + mx * 8 :][:8] for r in range(8)]
        parts += [cr[(my * 8 + r) * cw + mx * 8 :][:8] for r in range(8)]
        row.append(b"".join(parts))
    return row


# --- MP4 (ISO BMFF) ------------------------------------------------------------------------


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def mp4_file(
    sps: bytes, pps: bytes, pictures: Sequence[bytes], *, width: int, height: int, fps: int
) -> bytes:
    """An MP4 file holding one H.264 video track, ``moov`` before ``mdat``."""
    samples = [struct.pack(">I", len(p)) + p for p in pictures]
    timescale = fps * 1000
    media_duration = len(samples) * 1000
    movie_duration = len(samples) * 1000 // fps  # in the movie timescale (1000)
    avcc = _box(
        b"avcC",
        bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]),
        struct.pack(">H", len(sps)),
        sps,
        bytes([1]),
        struct.pack(">H", len(pps)),
        pps,
    )
    avc1 = _box(
        b"avc1",
        bytes(6),
        struct.pack(">H", 1),  # data_reference_index
        bytes(16),
        struct.pack(">HH", width, height),
        struct.pack(">II", 0x480000, 0x480000),  # 72 dpi
        bytes(4),
        struct.pack(">H", 1),  # frame_count
        bytes([12]) + b"mmgen mock".ljust(31, b"\0"),  # compressorname (pascal string)
        struct.pack(">Hh", 0x18, -1),
        avcc,
    )

    def moov(chunk_offset: int) -> bytes:
        stbl = _box(
            b"stbl",
            _full_box(b"stsd", 0, 0, struct.pack(">I", 1), avc1),
            _full_box(b"stts", 0, 0, struct.pack(">III", 1, len(samples), 1000)),
            _full_box(b"stss", 0, 0, struct.pack(">II", 1, 1)),
            _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, len(samples), 1)),
            _full_box(
                b"stsz",
                0,
                0,
                struct.pack(">II", 0, len(samples)),
                b"".join(struct.pack(">I", len(s)) for s in samples),
            ),
            _full_box(b"stco", 0, 0, struct.pack(">II", 1, chunk_offset)),
        )
        minf = _box(
            b"minf",
            _full_box(b"vmhd", 0, 1, bytes(8)),
            _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1))),
            stbl,
        )
        mdia = _box(
            b"mdia",
            _full_box(
                b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, media_duration, 0x55C4, 0)
            ),
            _full_box(b"hdlr", 0, 0, bytes(4), b"vide", bytes(12), b"VideoHandler\0"),
            minf,
        )
        tkhd = _full_box(
            b"tkhd",
            0,
            3,  # enabled, in movie
            struct.pack(">IIIII", 0, 0, 1, 0, movie_duration),
            bytes(8),
            struct.pack(">hhhH", 0, 0, 0, 0),
            _MATRIX,
            struct.pack(">II", width << 16, height << 16),
        )
        mvhd = _full_box(
            b"mvhd",
            0,
            0,
            struct.pack(">IIII", 0, 0, 1000, movie_duration),
            struct.pack(">IH", 0x10000, 0x100),
            bytes(10),
            _MATRIX,
            bytes(24),
            struct.pack(">I", 2),
        )
        return _box(b"moov", mvhd, _box(b"trak", tkhd, mdia))

    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso2avc1mp41")
    head = len(ftyp) + len(moov(0)) + 8
    mdat = _box(b"mdat", *samples)
    return ftyp + moov(head) + mdat


# --- a card on a flat background: a real-size picture for the price of a small one ------------


def _ue_bits(value: int) -> str:
    code = format(value + 1, "b")
    return "0" * (len(code) - 1) + code


# Intra_16x16 macroblocks with no residual (cbp 0) in an I slice: mb_type, chroma mode,
# mb_qp_delta 0, then the Intra16x16DC coeff_token for no coefficient, whose code depends on nC:
# "1" for nC < 2, "000011" for nC >= 8 (a neighbour is I_PCM, nN = 16; clause 9.2.1).
_VERTICAL = _ue_bits(1) + _ue_bits(2) + "1"  # I_16x16_0_0_0, chroma vertical
_HORIZONTAL = _ue_bits(2) + _ue_bits(1) + "1"  # I_16x16_1_0_0, chroma horizontal
_NO_COEFF = {False: "1", True: "000011"}
_PCM_IN_I = _ue_bits(25)


def _bits_to_bytes(bits: str) -> bytes:
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


def encode_card_stream(
    *,
    width: int,
    height: int,
    background: bytes,
    card: dict[tuple[int, int], bytes],
    updates: Sequence[dict[tuple[int, int], bytes]],
) -> tuple[bytes, bytes, list[bytes]]:
    """A stream whose first picture is ``card`` (I_PCM payloads by macroblock (x, y)) on a flat
    background, followed by one P picture per entry of ``updates`` (the macroblocks that change).

    ``background`` is the I_PCM payload of one background macroblock. Every other macroblock is
    Intra_16x16 with no residual, predicted from its neighbour (horizontally along the top row,
    vertically below it), so it costs about one byte: a 1920x1080 picture is a few kilobytes plus
    the card. The background colour spreads from macroblock (0, 0) (coded as ``background``
    unless the card covers it), so the card's outer rows and columns must be background too.
    """
    if width % 2 or height % 2 or width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive and even, not {width}x{height}")
    params = StreamParams(width, height)
    cols, rows = params.mb_cols, params.mb_rows
    pcm = dict(card)
    pcm.setdefault((0, 0), background)
    head = BitWriter()
    params.slice_header(head, idr=True, frame_num=0)
    out = bytearray(head.buf)
    bits = format(head._acc, f"0{head._bits}b") if head._bits else ""
    parts: list[str] = []
    by_row: dict[int, list[int]] = {}
    for mx, my in pcm:
        by_row.setdefault(my, []).append(mx)
    for my in range(rows):
        pcm_here = set(by_row.get(my, ()))
        # plain macroblocks next to an I_PCM one (left or above) need the long coeff_token
        beside = {x for x in by_row.get(my - 1, ()) if x not in pcm_here}
        beside |= {x + 1 for x in pcm_here if x + 1 < cols and x + 1 not in pcm_here}
        pattern = _HORIZONTAL if my == 0 else _VERTICAL
        plain, long = pattern + _NO_COEFF[False], pattern + _NO_COEFF[True]
        mx = 0
        for x in sorted(pcm_here | beside):
            if x > mx:
                parts.append(plain * (x - mx))
            if x in pcm_here:
                bits += "".join(parts) + _PCM_IN_I
                parts.clear()
                bits += "0" * (-len(bits) % 8)  # pcm_alignment_zero_bit
                out += _bits_to_bytes(bits)
                bits = ""
                out += pcm[(x, my)]
            else:
                parts.append(long)
            mx = x + 1
        if mx < cols:
            parts.append(plain * (cols - mx))
    bits += "".join(parts) + "1"  # rbsp_stop_one_bit
    bits += "0" * (-len(bits) % 8)
    out += _bits_to_bytes(bits)
    pictures = [nal_unit(3, 5, bytes(out))]
    for index, changed in enumerate(updates, start=1):
        w = BitWriter()
        params.slice_header(w, idr=False, frame_num=index)
        last = -1
        for (mx, my), payload in sorted(changed.items(), key=lambda item: item[0][::-1]):
            address = my * cols + mx
            w.ue(address - last - 1)  # mb_skip_run
            w.ue(30)  # I_PCM in a P slice
            w.align_zero()
            w.raw(payload)
            last = address
        if last < cols * rows - 1:
            w.ue(cols * rows - 1 - last)
        pictures.append(nal_unit(2, 1, w.trailing_bits()))
    return params.sps(), params.pps(), pictures
