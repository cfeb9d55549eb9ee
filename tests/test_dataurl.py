"""The one data-URL decoder: strict for job files, lenient for records, reports and the mock."""

from __future__ import annotations

import base64

import pytest

from mmgen.dataurl import (
    DataUrl,
    DataUrlError,
    data_url_bytes,
    data_url_bytes_strict,
    parse_data_url,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
B64 = base64.b64encode(PNG).decode()


def test_base64_and_percent_encoded() -> None:
    assert parse_data_url(f"data:image/PNG;base64,{B64}") == DataUrl("image/png", True, PNG)
    assert parse_data_url("DATA:text/plain;charset=utf-8,a%20b") == DataUrl(
        "text/plain", False, b"a b"
    )
    assert parse_data_url("data:,x") == DataUrl("", False, b"x")


@pytest.mark.parametrize("text", ["https://example.org/a.png", "images/a.png", "data:no-comma"])
def test_other_strings_are_not_data_urls(text: str) -> None:
    assert parse_data_url(text) is None and data_url_bytes(text) is None


def test_strict_refuses_what_lenient_skips() -> None:
    spaced = f"data:image/png;base64,{B64[:8]} \n{B64[8:]}"
    assert data_url_bytes(spaced) == PNG  # lenient: stray characters skipped
    with pytest.raises(DataUrlError):
        data_url_bytes_strict(spaced)
    with pytest.raises(DataUrlError):
        data_url_bytes_strict("data:image/png,not-base64")
    assert data_url_bytes("data:image/png;base64,abc") is None  # does not decode at all
    assert data_url_bytes_strict(f"data:image/png;base64,{B64}") == PNG


def test_max_bytes_decodes_the_start_only() -> None:
    start = data_url_bytes(f"data:image/png;base64,{B64}", max_bytes=10)
    assert start is not None and PNG.startswith(start) and 10 <= len(start) < len(PNG)
