"""Where ``mmgen run --mock`` keeps a rehearsal: apart from the real API's out dir.

A rehearsal's records name the mock's tasks; committed beside the real records they would make
the first real run resume tasks MiniMax never had. So ``run --mock`` without ``--out`` writes to
:data:`MOCK_OUT_DIR`, a folder that ignores itself in git (its own ``.gitignore``), and the real
``mmgen-out/`` never sees it. An explicit ``--out`` (or ``MMGEN_OUT``) still wins.
"""

from __future__ import annotations

from pathlib import Path

#: The default out dir of ``mmgen run --mock`` (``mmgen-out/`` is the real API's).
MOCK_OUT_DIR = Path("mmgen-mock-out")

_IGNORE_ALL = "# mmgen run --mock's rehearsal state: never committed\n*\n"


def rehearsal_out_dir(path: Path = MOCK_OUT_DIR) -> Path:
    """Create the rehearsal out dir (if needed) with a ``.gitignore`` that ignores it whole;
    return it. An existing ``.gitignore`` is left as it is."""
    path.mkdir(parents=True, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.exists():
        ignore.write_text(_IGNORE_ALL, encoding="utf-8")
    return path
