"""Keeping API keys out of a recording.

Two layers, both applied to every event before it is written:

- headers that carry credentials (``Authorization``, ``Cookie``, ``X-Api-Key``...) are replaced
  by ``REDACTED`` whatever their value, and the secret part of their value is *learned*;
- every learned secret (and the ones given at start, e.g. ``MINIMAX_API_KEY``) is replaced
  wherever it appears: in bodies, query strings, URLs, JSON keys, in plain, URL-encoded and
  JSON-escaped spellings.

Secrets shorter than :data:`MIN_SECRET` characters are only redacted as header values: replacing
a 3-letter "key" everywhere would mangle the recording without protecting anything.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "REDACTED"
MIN_SECRET = 6

#: Header names (lower case) whose values are credentials.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie"}
)


class Redactor:
    """Remembers secrets and scrubs them out of JSON-like data (thread-safe)."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._lock = threading.Lock()
        self._spellings: tuple[str, ...] = ()
        self._secrets: set[str] = set()
        for secret in secrets:
            if secret:
                self.learn(secret)

    def learn(self, secret: str) -> None:
        """Redact ``secret`` (and its encoded spellings) from now on."""
        secret = secret.strip()
        if len(secret) < MIN_SECRET or secret in self._secrets:
            return
        with self._lock:
            self._secrets.add(secret)
            spellings = set(self._spellings)
            spellings.update(
                {
                    secret,
                    urllib.parse.quote(secret, safe=""),
                    urllib.parse.quote_plus(secret, safe=""),
                    json.dumps(secret)[1:-1],
                    json.dumps(secret, ensure_ascii=False)[1:-1],
                }
            )
            # longest first, so that no spelling is left half-replaced by a shorter one
            self._spellings = tuple(sorted(spellings, key=len, reverse=True))

    def learn_header(self, name: str, value: str) -> None:
        """Learn the secret carried by a credential header (``Bearer <key>`` -> ``<key>``)."""
        if name.lower() not in SECRET_HEADERS:
            return
        scheme, _, rest = value.strip().partition(" ")
        self.learn(rest.strip() if rest.strip() else scheme)
        self.learn(value)

    def text(self, value: str) -> str:
        """``value`` with every learned secret replaced by ``REDACTED``."""
        for spelling in self._spellings:
            if spelling in value:
                value = value.replace(spelling, REDACTED)
        return value

    def scrub(self, value: Any) -> Any:
        """A copy of JSON-like data with every secret replaced (dict keys included)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value

    def headers(self, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
        """Headers for the recording: credential headers redacted (and learned), others scrubbed.

        Repeated headers are joined with ", " as HTTP allows.
        """
        items = headers.items() if isinstance(headers, Mapping) else headers
        result: dict[str, str] = {}
        for name, value in items:
            key = name.lower()
            if key in SECRET_HEADERS:
                self.learn_header(key, value)
                result[key] = REDACTED
                continue
            value = self.text(value)
            result[key] = f"{result[key]}, {value}" if key in result else value
        return result
