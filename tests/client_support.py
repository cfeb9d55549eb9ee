"""Shared setup of the MiniMaxClient tests (test_client_api, test_client_retries): constants
and answer builders; their fixtures (``sleeps``, ``router``, ``client``) are in conftest."""

from __future__ import annotations

import ssl
from typing import Any

from mmgen.api.client import RetryPolicy

BASE = "https://api.test.invalid"
KEY = "sk-test-key-0123456789"
CREATE = "/v1/video_generation"
QUERY = "/v1/query/video_generation"
RETRIEVE = "/v1/files/retrieve"
BODY = {
    "model": "S2V-01",
    "prompt": "A girl runs toward the camera.",
    "subject_reference": [{"type": "character", "image": ["https://example.org/f.jpg"]}],
}
ATTEMPTS = 4

#: One TLS context for every test client (building one costs ~25 ms).
TLS = ssl.create_default_context()


def policy(**kw: Any) -> RetryPolicy:
    base: dict[str, Any] = {
        "attempts": ATTEMPTS,
        "initial_wait": 1.0,
        "max_wait": 5.0,
        "multiplier": 2.0,
        "jitter": False,
    }
    base.update(kw)
    return RetryPolicy(**base)


def ok(**fields: Any) -> dict[str, Any]:
    return {**fields, "base_resp": {"status_code": 0, "status_msg": "success"}}


def err(code: int, msg: str = "nope") -> dict[str, Any]:
    return {"base_resp": {"status_code": code, "status_msg": msg}}
