"""The images a job refers to: local files and inline data URLs checked, files made data URLs.

Wherever the API takes an image (``subject_reference[].image[]``, ``first_frame_image``,
``last_frame_image``) a local path (relative to the job file) is read, checked
(:mod:`mmgen.jobfile.images`) and replaced by a data URL; inline data URLs are decoded and
checked the same way; http(s) URLs are kept (not fetched). Each file and data URL is checked
once per run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmgen.jobfile import images
from mmgen.schemas.documents import DocPath
from mmgen.schemas.messages import truncate

__all__ = ["ImageChecker", "image_slots"]

_IMAGE_KEYS = ("first_frame_image", "last_frame_image")


def image_slots(job: dict[str, Any]) -> Iterator[tuple[DocPath, str]]:
    """Every place of the job where the API takes an image, holding a non-empty string."""
    refs = job.get("subject_reference")
    if isinstance(refs, list):
        for i, ref in enumerate(refs):
            if isinstance(ref, dict) and isinstance(ref.get("image"), list):
                for j, image in enumerate(ref["image"]):
                    if isinstance(image, str) and image:
                        yield ("subject_reference", i, "image", j), image
    for key in _IMAGE_KEYS:
        value = job.get(key)
        if isinstance(value, str) and value:
            yield (key,), value


@dataclass(frozen=True)
class ResolvedImage:
    """What a job sends for one image, and the local file it came from (if any)."""

    url: str
    local_path: str | None = None


@dataclass
class ImageChecker:
    """Checks images with a cache shared by every job of a run."""

    _cache: dict[str, str | images.ImageError] = field(default_factory=dict)

    def resolve(self, value: str, job_file: str) -> ResolvedImage:
        """The URL to send for ``value`` as written in ``job_file``; raise ImageError."""
        kind = images.classify(value)
        if kind == "url":
            return ResolvedImage(value)
        if kind == "data":
            return ResolvedImage(self._cached(value, lambda: _checked_data_url(value)))
        path, shown = Path(value), value
        if not path.is_absolute():
            path = Path(job_file).parent / path
            shown = f"{value} (relative to the job file's folder)"
        try:
            key = f"path:{path.resolve()}"
        except (OSError, ValueError):
            raise images.ImageError(f"not a usable file path: {truncate(repr(value))}") from None
        return ResolvedImage(
            self._cached(key, lambda: images.load_local_image(path, shown)), str(path)
        )

    def _cached(self, key: str, check: Any) -> str:
        cached = self._cache.get(key)
        if cached is None:
            try:
                cached = check()
            except images.ImageError as err:
                cached = err
            self._cache[key] = cached
        if isinstance(cached, images.ImageError):
            raise cached
        return str(cached)


def _checked_data_url(value: str) -> str:
    images.check_data_url(value)
    return value
