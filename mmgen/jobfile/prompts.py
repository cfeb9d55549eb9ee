"""Checks of a prompt's text that save a paid request: camera commands and invisible characters.

**Camera commands.** The MiniMax-Hailuo and ``*-Director`` models read camera movements written
in square brackets inside the prompt: ``[Pan left]``, or up to three combined,
``[Truck left, Pan right, Zoom in]``. The documented set is Truck left/right, Pan left/right,
Push in/Pull out, Pedestal up/down, Tilt up/down, Zoom in/out, Shake, Tracking shot and Static
shot, "up to 3 combined movements" (the ``prompt`` field of MiniMax's official T2V-01-Director
/ I2V-01-Director model card, https://replicate.com/minimax/video-01-director, read 2026-12;
MiniMax's API reference, https://platform.minimax.io/docs/api-reference/video-generation-t2v
and ``-i2v``, gives the bracket syntax for the MiniMax-Hailuo and ``*-Director`` models). On the
other models (S2V-01, T2V-01, I2V-01, I2V-01-live, video-01) the brackets are sent as words.

- an unknown command on a model that reads them is an error, with "did you mean";
- more than 3 commands in one bracket is an error;
- a known command on a model that does not read them is a warning.

**Invisible characters.** MiniMax refuses a prompt with invisible characters (code 1042) after
the request has used rate-limit budget. Every control character (C0 and C1, except the ordinary
newline and tab), format character (zero-width spaces and joiners, byte order marks, bidi
marks and overrides, the soft hyphen), line/paragraph separator and Hangul filler is an error,
with its position and code point. A zero-width joiner between two symbols (an emoji sequence
such as a family) is part of the emoji, not an invisible character.

:func:`prompt_findings` returns data (:class:`Finding`, with the offset of the character in the
prompt); :mod:`mmgen.jobfile.checking` locates them in the file.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Final

__all__ = [
    "CAMERA_COMMANDS",
    "CAMERA_MODELS",
    "MAX_CAMERA_COMMANDS",
    "Finding",
    "camera_findings",
    "invisible_characters",
    "prompt_findings",
]

CAMERA_COMMANDS: Final = (
    "Truck left",
    "Truck right",
    "Pan left",
    "Pan right",
    "Push in",
    "Pull out",
    "Pedestal up",
    "Pedestal down",
    "Tilt up",
    "Tilt down",
    "Zoom in",
    "Zoom out",
    "Shake",
    "Tracking shot",
    "Static shot",
)
"""The camera commands MiniMax documents (see the module docstring for the source)."""

MAX_CAMERA_COMMANDS: Final = 3
"""At most this many commands combined in one bracket."""

CAMERA_MODELS: Final = frozenset(
    {
        "MiniMax-Hailuo-2.3",
        "MiniMax-Hailuo-2.3-Fast",
        "MiniMax-Hailuo-02",
        "T2V-01-Director",
        "I2V-01-Director",
    }
)
"""The models that read camera commands."""

_BRACKET = re.compile(r"\[([^\[\]]*)\]")
_KNOWN = {" ".join(c.split()).casefold(): c for c in CAMERA_COMMANDS}
_ALLOWED_CONTROLS = frozenset("\n\t")
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0\u034f")
"""Invisible letters and marks outside the control/format categories."""
_ZWJ = "\u200d"


@dataclass(frozen=True)
class Finding:
    """One thing found in a prompt: at character ``offset`` (0-based), an error or a warning."""

    offset: int
    message: str
    severity: str = "error"


def prompt_findings(prompt: str, model: str, *, camera: bool | None = None) -> list[Finding]:
    """Every finding in ``prompt`` for ``model``, in the order of the text.

    ``camera`` says whether the model reads camera commands (default: it is one of
    :data:`CAMERA_MODELS`).
    """
    found = camera_findings(prompt, model, camera=camera) + invisible_characters(prompt)
    return sorted(found, key=lambda f: f.offset)


def camera_findings(prompt: str, model: str, *, camera: bool | None = None) -> list[Finding]:
    """The camera-command findings of ``prompt`` (see :func:`prompt_findings`)."""
    reads_camera = model in CAMERA_MODELS if camera is None else camera
    found: list[Finding] = []
    for match in _BRACKET.finditer(prompt):
        written = match.group(0)
        commands = [part.strip() for part in match.group(1).split(",")]
        known = [_KNOWN.get(" ".join(c.split()).casefold()) for c in commands]
        if not reads_camera:
            if any(known):
                found.append(
                    Finding(
                        match.start(),
                        f"{written}: {model} does not take camera commands, the words are sent "
                        "as they are; use a MiniMax-Hailuo or *-Director model, or describe the "
                        "movement in words",
                        "warning",
                    )
                )
            continue
        problems = [_unknown(c) for c, k in zip(commands, known, strict=True) if k is None]
        if len(commands) > MAX_CAMERA_COMMANDS:
            problems.append(
                f"{len(commands)} camera commands in one bracket; at most "
                f"{MAX_CAMERA_COMMANDS} combine (split them over the prompt)"
            )
        if problems:
            found.append(Finding(match.start(), f"{written}: {'; '.join(problems)}"))
    return found


def _unknown(command: str) -> str:
    if not command:
        return "empty camera command"
    close = get_close_matches(command.casefold(), list(_KNOWN), n=1, cutoff=0.6)
    if close:
        return f"unknown camera command {command!r}; did you mean {_KNOWN[close[0]]!r}?"
    return f"unknown camera command {command!r} (known: {', '.join(CAMERA_COMMANDS)})"


def invisible_characters(prompt: str) -> list[Finding]:
    """An error per invisible or control character in ``prompt``."""
    if prompt.isprintable() and _FILLERS.isdisjoint(prompt):  # no Cc, Cf, Zl, Zp: the usual
        return []
    found: list[Finding] = []
    for offset, char in enumerate(prompt):
        if not _invisible(prompt, offset, char):
            continue
        name = unicodedata.name(char, "control character")
        found.append(
            Finding(
                offset,
                f"invisible character U+{ord(char):04X} {name} (character {offset + 1} of the "
                "prompt): MiniMax refuses invisible characters (1042); delete it, e.g. retype "
                "the words around it",
            )
        )
    return found


def _invisible(prompt: str, offset: int, char: str) -> bool:
    if char in _ALLOWED_CONTROLS:
        return False
    if char in _FILLERS:
        return True
    category = unicodedata.category(char)
    if category not in ("Cc", "Cf", "Zl", "Zp"):
        return False
    if char == _ZWJ and 0 < offset < len(prompt) - 1:
        before, after = prompt[offset - 1], prompt[offset + 1]
        return not (_symbol(before) and _symbol(after))
    return True


def _symbol(char: str) -> bool:
    """An emoji-like character a zero-width joiner may join (or the variation selector after
    one)."""
    return unicodedata.category(char) in ("So", "Sk") or char == "\ufe0f"
