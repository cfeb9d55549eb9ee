"""What validation produces: :class:`JobSpec` (one expanded, valid job) and its hashes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["JobSpec", "spec_hash"]


def spec_hash(body: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of a request body (stable across runs and machines)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class JobSpec:
    """One expanded, valid job: what ``plan`` and ``run`` work on."""

    name: str
    """Unique across all files of a run; safe as a file name."""
    file: str
    """The job file, as the user gave it or as found in a folder."""
    line: int
    """1-based line where the job starts in ``file``."""
    body: dict[str, Any]
    """The exact API request body: API fields only, images as URLs or data URLs, ${VAR} expanded."""
    spec_hash: str
    """sha256 hex of the canonical JSON of ``body`` (see :func:`spec_hash`)."""
    output: str
    """Video file name relative to the out dir (default ``NAME.mp4``)."""
    source_hash: str = ""
    """sha256 hex (as :func:`spec_hash`) of the job's request fields as written in the job file:
    after defaults and the matrix, but before ``${VAR}`` is replaced and before local images
    become data URLs. When ``spec_hash`` changed but ``source_hash`` did not, the job file is
    the same and an environment variable (:attr:`env_vars`) or a local image file
    (:attr:`local_images`) changed. Equal to ``spec_hash`` for a job without ``${...}`` and
    local images; defaults to it when not given."""
    env_vars: tuple[str, ...] = ()
    """Names of the environment variables the job reads through ``${VAR}``, sorted."""
    local_images: tuple[str, ...] = ()
    """The local image files the job reads, as paths relative to the current directory (or
    absolute when written so): the job file's folder joined with the path written, in order."""

    def __post_init__(self) -> None:
        if not self.source_hash:
            object.__setattr__(self, "source_hash", self.spec_hash)

    @property
    def subject_image(self) -> str | None:
        """The image a reviewer looks at, as the job file names it (a URL or a local path; not
        a data URL): the subject reference, else the first frame. For thumbnails."""
        if self.local_images:
            return str(self.local_images[0])
        try:
            image = self.body["subject_reference"][0]["image"][0]
        except (KeyError, IndexError, TypeError):
            image = self.body.get("first_frame_image")
        return image if isinstance(image, str) and not image.startswith("data:") else None
