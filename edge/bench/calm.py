"""Calm (neutral/happy) customer visits for the false-alert benchmark: real speech and real faces, nothing angry.

Three sets (docs/bench/alerts.md): every staged neutral/calm/happy speech clip, one visit per speaker, behind
CREMA-D actor 1001's neutral/happy face; the same speech behind FER2013 PrivateTest faces (a different person
per visit); and silent visits of FER2013 PrivateTest faces (the customer listens while staff talk). PrivateTest
faces are held out from the face model's training and selection; their FER+ majority label picks neutral/happy.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edge.demo.scenario import DATA_DIR, Clip, Part, crema_clip
from edge.eval.speakers import canonical_speaker
from edge.types import EMOTIONS

CALM = {"neutral": "NEU", "calm": "NEU", "happy": "HAP", "happiness": "HAP"}
FER_CODES = {"neutral": "NEU", "happy": "HAP"}
FPS, SIZE, FACE_PX = 15.0, (480, 360), 220  # the CREMA-D clips' frame rate and size; a face ~60 % of frame height
SILENT_VISIT_S = 20.0


def speech_rows(data: Path = DATA_DIR) -> Iterator[tuple[str, str, str, Path]]:
    """(corpus, speaker, lower-case emotion, audio file) of every staged speech corpus manifest row; the speaker by
    the one code its voice is known by (``canonical_speaker``), so one voice is one speaker in every set."""
    for corpus in ("ravdess", "emodb", "urdu", "ased", "crema-d"):
        manifest = data / "speech" / corpus / "MANIFEST.csv"
        if manifest.is_file():
            with manifest.open() as fh:
                for row in csv.DictReader(fh):
                    yield (corpus, canonical_speaker(corpus, row["speaker"]), row.get("emotion", "").lower(),
                           manifest.parent / row["path"])


def held_out_speakers(models: Path | None = None) -> set[str] | None:
    """``corpus:speaker`` ids the shipped voice model was never trained on (its metrics JSON), None if not listed."""
    from edge.runtime.manifest import default_models_dir

    path = (models or default_models_dir()) / "voice_emotion.metrics.json"
    held = json.loads(path.read_text()).get("held_out_speakers") if path.is_file() else None
    return None if held is None else set(held)


def is_unseen(corpus: str, speaker: str, held: set[str] | None) -> bool:
    """Whether the voice model never heard this speaker (model 0.1.x, which lists none: RAVDESS Actor_19-24, EmoDB)."""
    if corpus == "crema-d":
        return True
    if held is None:
        return corpus == "emodb" or (corpus == "ravdess" and "Actor_19" <= speaker <= "Actor_24")
    # by the one code a voice is known by: a second code of a trained voice (ASED 52 is 39) is not unseen
    return f"{corpus}:{canonical_speaker(corpus, speaker)}" in held


def calm_visits(data: Path = DATA_DIR, held: set[str] | None = None) -> dict[str, list[tuple[str, Path]]]:
    """Speaker -> [(video code NEU/HAP, audio file)] of neutral/calm/happy speech of the speakers the voice model
    never heard (``is_unseen``: the shipped model's held-out speakers, or 0.1.x's rule when ``held`` is None)."""
    visits: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    for corpus, speaker, emo, path in speech_rows(data):
        if emo in CALM and is_unseen(corpus, speaker, held):
            visits[f"{corpus}:{speaker}"].append((CALM[emo], path))
    return dict(visits)


def fer_faces(data: Path = DATA_DIR) -> dict[str, list[tuple[int, np.ndarray]]]:
    """NEU/HAP -> [(FER2013 row, 48×48 gray face)] of PrivateTest rows whose FER+ majority is neutral/happy.

    The majority follows training's rule and keep mask (``face_data.private_rows``), as the face evaluation does.
    """
    from edge.eval.face_data import private_rows

    rows, d = private_rows(data)
    out: dict[str, list[tuple[int, np.ndarray]]] = {"NEU": [], "HAP": []}
    for i in rows:
        code = FER_CODES.get(EMOTIONS[d["major"][i]]) if d["major"][i] >= 0 else None
        if code is not None:
            out[code].append((int(i), d["x"][i]))
    return out


def fer_original_labels(data: Path = DATA_DIR) -> dict[int, str]:
    """FER2013 row -> the *original* FER2013 label (product class name) of every PrivateTest row: a face FER+'s
    taggers call calm may carry an agitated original label (the two label sets disagree on ~37 % of faces)."""
    from edge.eval.face_data import private_rows

    rows, d = private_rows(data)
    return {int(i): EMOTIONS[int(d["fer"][i])] for i in rows}


def face_clip(row: int, face48: np.ndarray) -> Clip:
    """A 2 s silent clip of one still face, swaying a few pixels with sensor noise, centred in a 480×360 frame."""
    rng = np.random.default_rng(row)
    face = cv2.resize(face48, (FACE_PX, FACE_PX), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    w, h = SIZE
    frames = []
    for k in range(int(2 * FPS)):
        canvas = np.full((h, w), 110.0, np.float32)
        dx, dy = round(4 * np.sin(2 * np.pi * k / 30)), round(2 * np.cos(2 * np.pi * k / 30))
        y, x = (h - FACE_PX) // 2 + dy, (w - FACE_PX) // 2 + dx
        canvas[y:y + FACE_PX, x:x + FACE_PX] = face
        img = np.clip(canvas + rng.normal(0, 2.0, canvas.shape), 0, 255).astype(np.uint8)
        frames.append(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    return Clip(f"fer{row}", tuple(frames), FPS, np.zeros(0, np.float32))


def calm_sets(silent_visits: int, gain: float = 1.0, data: Path = DATA_DIR
              ) -> Iterator[tuple[str, str, list[Part]]]:
    """(set, visit name, parts) of every calm visit (speech of unseen speakers only); speech replayed at ``gain``."""
    from edge.capture.media import read_audio_file

    crema = {code: crema_clip(code, data) for code in ("NEU", "HAP")}
    faces = fer_faces(data)
    speech = sorted(calm_visits(data, held_out_speakers()).items())
    for n, (speaker, items) in enumerate(speech):
        audio = [np.clip(read_audio_file(p, 16000) * gain, -1, 1).astype(np.float32) for _, p in items]
        yield "speech, CREMA-D face", speaker, [Part(c, crema[c], a) for (c, _), a in zip(items, audio, strict=True)]
        mine = {c: face_clip(*faces[c][n % len(faces[c])]) for c in ("NEU", "HAP")}
        yield "speech, FER faces", speaker, [Part(c, mine[c], a) for (c, _), a in zip(items, audio, strict=True)]
    silence = np.zeros(int(SILENT_VISIT_S * 16000), np.float32)
    for k in range(silent_visits):
        code = ("NEU", "HAP")[k % 2]
        row, face = faces[code][len(speech) + k // 2]  # faces not used behind speech
        yield "silent, FER faces", f"fer:{row}", [Part(code, face_clip(row, face), silence)]
