"""A customer's own labelled faces for ``edge.train.face --npz``: read, checked whole, one clear error per problem."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from edge.face.preprocess import INPUT_SIZE
from edge.types import EMOTIONS

SPLITS = ("Training", "PublicTest", "PrivateTest")
log = logging.getLogger(__name__)


class CustomDataError(ValueError):
    """The npz cannot be trained on; the message names the file and what is wrong."""


def _names(path: Path, raw: np.ndarray, what: str) -> list[int]:
    """EMOTIONS indices of class names or their aliases (happiness, anger, contempt -> disgust, ...)."""
    from edge.eval.face_data import EvalDataError, emotion_index

    if raw.dtype.kind == "S":  # bytes names are their UTF-8 text
        try:
            raw = np.char.decode(raw, "utf-8")
        except UnicodeDecodeError:
            raise CustomDataError(f"{path}: {what}: bytes that are not UTF-8 text") from None
    out = []
    for i, n in enumerate(raw):
        try:
            out.append(emotion_index(str(n)))
        except EvalDataError as exc:
            raise CustomDataError(f"{path}: {what} row {i}: {exc}") from None
    return out


def _images(path: Path, x: np.ndarray) -> np.ndarray:
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1:] != (INPUT_SIZE, INPUT_SIZE) or len(x) == 0:
        raise CustomDataError(f"{path}: images must be (N, {INPUT_SIZE}, {INPUT_SIZE}) face crops with N > 0 "
                              f"(made with edge.face.preprocess.crop_face), got shape {x.shape}")
    if x.dtype != np.uint8:
        raise CustomDataError(f"{path}: images must be uint8 grey levels 0..255, got {x.dtype} (float crops in "
                              "0..1 would train on near-black faces: multiply by 255 and cast to uint8)")
    return x


def votes_matrix(path: Path, d: np.lib.npyio.NpzFile, n: int) -> np.ndarray:
    """The (N, 7) vote counts in EMOTIONS order of an npz's ``votes`` (``edge.eval.face_data.vote_matrix``)."""
    from edge.eval.face_data import EvalDataError, vote_matrix

    try:
        return vote_matrix(path, d, n)
    except EvalDataError as exc:
        raise CustomDataError(str(exc)) from None


def _labels(path: Path, d: np.lib.npyio.NpzFile, n: int) -> np.ndarray:
    raw = np.asarray(d["labels"])
    if raw.shape != (n,):
        raise CustomDataError(f"{path}: labels must be one per image, shape ({n},), got {raw.shape}")
    if raw.dtype.kind in "US":
        lab = np.array(_names(path, raw, "labels"))
    elif raw.dtype.kind in "iu" and "label_names" in d.files:
        names = _names(path, d["label_names"], "label_names")
        bad = (raw < 0) | (raw >= len(names))
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise CustomDataError(f"{path}: {int(bad.sum())} label(s) outside 0..{len(names) - 1} (first at row "
                                  f"{first}: {int(raw[first])}); unlabelled rows must be removed")
        lab = np.array(names)[raw]
    elif raw.dtype.kind in "iu":
        raise CustomDataError(f"{path}: integer labels need 'label_names' (or store class names as labels)")
    else:
        raise CustomDataError(f"{path}: labels must be class names or integer indices, got {raw.dtype}")
    return np.eye(len(EMOTIONS), dtype=np.float32)[lab]


def _default_split(path: Path, n: int, subject: np.ndarray | None, seed: int) -> np.ndarray:
    """A seeded 80/10/10 split: whole subjects when ``subject`` is given (one person's faces never on both sides
    of the split), else single faces (with a warning: faces of one person may then score their own model)."""
    rng = np.random.default_rng(seed)
    if subject is None:
        log.warning("%s: no 'subject' or 'usage' array: faces are split one by one, so one person's faces can be in "
                    "Training and in the test splits and the test figures flatter the model; add 'subject' (one id "
                    "per face) to split by person", path)
        r = rng.random(n)
    else:
        ids, inv = np.unique(subject, return_inverse=True)
        if len(ids) < 3:
            raise CustomDataError(f"{path}: 'subject' names {len(ids)} person(s); a split by person needs at least 3 "
                                  "(or give 'usage')")
        r = rng.random(len(ids))[inv]
    return np.where(r < 0.8, "Training", np.where(r < 0.9, "PublicTest", "PrivateTest"))


def _subjects(path: Path, d: np.lib.npyio.NpzFile, n: int) -> np.ndarray | None:
    if "subject" not in d.files:
        return None
    raw = np.asarray(d["subject"])
    if raw.shape != (n,) or raw.dtype.kind not in "iuUS":
        raise CustomDataError(f"{path}: subject must be one id (integer or text) per image, shape ({n},), got "
                              f"shape {raw.shape} of {raw.dtype}")
    return raw.astype(str)


def load_custom(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """A customer's npz: images (N,48,48) uint8 and labels (N,) (names, or indices with label_names) or votes (N,7)
    with vote_names; optional usage (Training / PublicTest / PrivateTest per row, else a seeded 80/10/10 split, by
    person when the optional subject array gives one id per face). Raises CustomDataError naming the file and the
    problem."""
    try:
        d = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CustomDataError(f"{path}: not a readable .npz of arrays ({exc})") from None
    with d:
        if "images" not in d.files or not {"labels", "votes"} & set(d.files):
            raise CustomDataError(f"{path}: needs 'images' and 'labels' (or 'votes'); it holds {sorted(d.files)}")
        try:
            x = _images(path, np.asarray(d["images"]))
            votes = votes_matrix(path, d, len(x)) if "votes" in d.files else _labels(path, d, len(x))
            usage = np.asarray(d["usage"]).astype(str) if "usage" in d.files else None
            subject = _subjects(path, d, len(x))
        except ValueError as exc:  # e.g. object arrays, refused without allow_pickle
            if isinstance(exc, CustomDataError):
                raise
            raise CustomDataError(f"{path}: {exc}") from None
    if usage is not None:
        unknown = sorted(set(usage.tolist()) - set(SPLITS))
        if usage.shape != (len(x),) or unknown:
            raise CustomDataError(f"{path}: usage must name one of {', '.join(SPLITS)} per image; got shape "
                                  f"{usage.shape}, unknown values {unknown[:5]}")
        split = usage
    else:
        split = _default_split(path, len(x), subject, seed)
    for need in ("Training", "PublicTest", "PrivateTest"):
        if not (split == need).any():
            raise CustomDataError(f"{path}: no {need} rows (training needs Training faces, PublicTest faces to "
                                  "choose the checkpoint and PrivateTest faces to score the file; drop 'usage' for "
                                  "a seeded 80/10/10 split)")
    from edge.eval.face_data import clear_majority

    soft = votes / np.maximum(votes.sum(1, keepdims=True), 1e-9)
    major = clear_majority(votes)
    keep = votes.sum(1) > 0
    classes = sorted({int(c) for c in major[keep & (split == "Training")] if c >= 0})
    if len(classes) < 2:  # a one-class model gives that class to every face (and scores itself perfect)
        raise CustomDataError(f"{path}: the Training faces hold {len(classes)} emotion class(es) with a clear "
                              "majority; at least 2 are needed")
    for need in ("PublicTest", "PrivateTest"):
        if not ((split == need) & keep & (major >= 0)).any():
            raise CustomDataError(f"{path}: no {need} face with a clear majority label (tied votes only): it "
                                  "cannot be scored")
    return {"x": x, "soft": soft, "major": major, "keep": keep, "fer": np.full(len(x), -1), "split": split}
