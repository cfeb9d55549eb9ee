"""The one ``data:`` URL decoder (RFC 2397), shared by job files, records, reports and the mock.

``data:[<media type>][;base64],<data>``: :func:`parse_data_url` gives the media type, whether
the payload is base64 and the bytes it carries (base64-decoded, else percent-decoded).
``strict`` decoding refuses anything but the base64 alphabet (what a job file may send);
lenient decoding skips stray characters, as browsers do, and gives None when the payload still
does not decode. ``max_bytes`` decodes only the start of a long payload (a preview needs no
more).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

__all__ = ["DataUrl", "DataUrlError", "data_url_bytes", "data_url_bytes_strict", "parse_data_url"]


class DataUrlError(ValueError):
    """A ``data:`` URL whose base64 payload does not decode (strict decoding only)."""


@dataclass(frozen=True)
class DataUrl:
    """What a ``data:`` URL holds."""

    media_type: str
    """Lower case, parameters dropped (``image/png``); empty when the URL names none."""
    base64: bool
    data: bytes


def parse_data_url(
    url: str, *, strict: bool = False, max_bytes: int | None = None
) -> DataUrl | None:
    """The parts of a ``data:`` URL; None when ``url`` is not one (or, lenient, when its base64
    payload does not decode). Strict: a bad base64 payload raises :class:`DataUrlError`."""
    if url[:5].lower() != "data:":
        return None
    header, sep, payload = url[5:].partition(",")
    if not sep:
        return None
    params = header.split(";")
    is_base64 = params[-1].strip().lower() == "base64"
    media_type = params[0].strip().lower()
    if max_bytes is not None:
        payload = payload[: (max_bytes + 2) // 3 * 4] if is_base64 else payload[: max_bytes * 3]
    if not is_base64:
        return DataUrl(media_type, False, unquote_to_bytes(payload))
    try:
        data = base64.b64decode(payload, validate=strict)
    except (binascii.Error, ValueError):
        if strict:
            raise DataUrlError("data URL holds invalid base64") from None
        return None
    return DataUrl(media_type, True, data)


def data_url_bytes(url: str, *, max_bytes: int | None = None) -> bytes | None:
    """The bytes a ``data:`` URL carries (lenient); None for other strings or a payload that
    does not decode."""
    parsed = parse_data_url(url, max_bytes=max_bytes)
    return None if parsed is None else parsed.data


def data_url_bytes_strict(url: str) -> bytes:
    """The bytes of a base64 ``data:`` URL, strictly decoded; :class:`DataUrlError` otherwise."""
    parsed = parse_data_url(url, strict=True)
    if parsed is None or not parsed.base64:
        raise DataUrlError("not a base64 data URL")
    return parsed.data
