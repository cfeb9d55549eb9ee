"""Checks of the images a job refers to, before any money is spent.

MiniMax accepts a public http(s) URL or a base64 data URL of a JPG, PNG or WebP image under
20 MB whose short edge is over 300 px and whose aspect ratio lies between 2:5 and 5:2. A job
file may also name a local file (relative to the job file): it is checked here and sent as a
data URL. The format is read from the bytes, never from the file name. http(s) URLs are not
fetched (only their shape is checked).

Nothing here prints; failures are returned as :class:`ImageError` messages for the caller to
locate in the job file.
"""

from __future__ import annotations

import base64
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from mmgen.dataurl import DataUrlError, data_url_bytes_strict

MAX_IMAGE_BYTES = 20 * 1024 * 1024
"""Images must be smaller than this (the API's "under 20 MB")."""
MIN_SHORT_EDGE = 300
"""The short edge must be longer than this many pixels."""
MIN_ASPECT, MAX_ASPECT = 2 / 5, 5 / 2
"""Width / height must lie within these bounds (inclusive)."""

#: Pillow format name -> MIME subtype used in the data URL.
_MIME = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp"}
_DATA_URL = re.compile(r"data:image/(jpeg|jpg|png|webp);base64,")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_HTTP_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$")


class ImageError(ValueError):
    """An image cannot be used; the message says why (without echoing the data)."""


@dataclass(frozen=True)
class CheckedImage:
    """An image that passed every check."""

    mime: str  # e.g. "image/png"
    width: int
    height: int
    size: int  # bytes

    def data_url(self, data: bytes) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(data).decode('ascii')}"


def check_image_bytes(data: bytes) -> CheckedImage:
    """Check real format, size, dimensions and aspect ratio of an encoded image."""
    if len(data) >= MAX_IMAGE_BYTES:
        raise ImageError(f"image is {_mb(len(data))}; it must be under 20 MB")
    if not data:
        raise ImageError("image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format or ""
                width, height = img.size
                if fmt not in _MIME:
                    raise ImageError(
                        f"image format {fmt or 'unknown'} is not accepted (JPG, PNG or WebP only)"
                    )
                img.load()  # decode fully: catches truncated or corrupt files
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image (JPG, PNG or WebP expected)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("image has too many pixels to be checked safely") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageError(f"image is damaged or truncated ({_short(str(err))})") from None
    short = min(width, height)
    if short <= MIN_SHORT_EDGE:
        raise ImageError(
            f"image is {width}x{height} px; its short edge must be over {MIN_SHORT_EDGE} px"
        )
    ratio = width / height
    if not MIN_ASPECT <= ratio <= MAX_ASPECT:
        raise ImageError(
            f"image is {width}x{height} px; its aspect ratio must be between 2:5 and 5:2"
        )
    return CheckedImage(f"image/{_MIME[fmt]}", width, height, len(data))


def load_local_image(path: Path, shown: str | None = None) -> str:
    """Check a local image file and return it as a data URL.

    ``shown`` is how messages name the file (default: ``path``), e.g. as written in a job file.
    """
    name = _short(str(path) if shown is None else shown)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ImageError(f"{name} is not a file")
        if size >= MAX_IMAGE_BYTES:
            raise ImageError(f"image is {_mb(size)}; it must be under 20 MB")
        data = path.read_bytes()
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"image file not found: {name}") from None
    except OSError as err:
        raise ImageError(f"cannot read image file {name}: {err.strerror or err}") from None
    except ValueError:  # e.g. a NUL character, which no file name can hold
        raise ImageError(f"not a usable file path: {name}") from None
    checked = check_image_bytes(data)
    return checked.data_url(data)


def check_data_url(url: str) -> None:
    """Check an inline ``data:image/...;base64,`` URL: decode it and check the image."""
    match = _DATA_URL.match(url)
    if match is None:
        raise ImageError("data URL must look like data:image/<jpeg|png|webp>;base64,<data>")
    declared = "jpeg" if match.group(1) == "jpg" else match.group(1)
    try:
        data = data_url_bytes_strict(url)
    except DataUrlError:
        raise ImageError("data URL holds invalid base64") from None
    checked = check_image_bytes(data)
    if checked.mime != f"image/{declared}":
        raise ImageError(f"data URL says image/{declared} but holds {checked.mime}")


def classify(value: str) -> str:
    """``"url"``, ``"data"`` or ``"path"``; raise ImageError for other URL schemes."""
    if value.startswith(("http://", "https://")):
        if not _HTTP_URL.match(value):
            raise ImageError("not a valid http(s) URL")
        return "url"
    if value.startswith("data:"):
        return "data"
    if _SCHEME.match(value):
        scheme = value.split(":", 1)[0]
        raise ImageError(
            f"{scheme}: URLs are not accepted (http(s) URL, data URL or local path only)"
        )
    return "path"


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
