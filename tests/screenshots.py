"""Where browser tests put screenshots: docs/ when EDGE_EMOTION_DOC_SCREENSHOTS=1, else a temp folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def shot_path(name: str) -> Path:
    """Path for screenshot ``name``: docs/``name`` to refresh the documentation, otherwise a scratch file."""
    if os.environ.get("EDGE_EMOTION_DOC_SCREENSHOTS") == "1":
        return DOCS / name
    folder = Path(tempfile.gettempdir()) / "edge-emotion-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
