"""Face evaluation sets: FER2013 PrivateTest, CK+48, image folders and npz files, each with its label sets."""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.face.expression import LABEL_ALIASES
from edge.types import EMOTIONS

log = logging.getLogger(__name__)

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


class EvalDataError(ValueError):
    """Evaluation data that is missing or malformed (one clear message)."""


@dataclass
class EvalSet:
    """Images plus one or more label sets (EMOTIONS index per image, -1 = not scored under that set)."""

    name: str
    images: list[np.ndarray]
    labels: dict[str, np.ndarray]
    frames: bool = False
    files: list[str] = field(default_factory=list)


def emotion_index(name: str) -> int:
    """EMOTIONS index of a label name or alias (happiness, anger, contempt->disgust, ...); EvalDataError if none."""
    key = LABEL_ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in EMOTIONS:
        raise EvalDataError(f"label {name!r} is not one of {list(EMOTIONS)} (or an alias {sorted(LABEL_ALIASES)})")
    return EMOTIONS.index(key)


def private_rows(data_dir: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """FER2013 PrivateTest row numbers and ``edge.train.face.load_fer``'s arrays (FER+ majority by training's rule)."""
    fer, plus = data_dir / "face" / "fer2013" / "fer2013.npz", data_dir / "face" / "ferplus" / "ferplus.npz"
    if not (fer.is_file() and plus.is_file()):
        raise EvalDataError(f"FER2013/FER+ not found under {data_dir} (expected {fer} and {plus})")
    import importlib

    # The FER+ majority rule of training and the model card; imported by name so mypy stays out of edge/train.
    d = importlib.import_module("edge.train.face").load_fer(data_dir)
    d["major"] = np.where((d["major"] >= 0) & d["keep"], d["major"], -1)  # -1: no usable FER+ majority
    return np.flatnonzero(d["split"] == "PrivateTest"), d


def fer_private(data_dir: Path, limit: int = 0) -> EvalSet:
    """FER2013 PrivateTest rows with FER+ majority labels (training's rule) and the original FER2013 labels."""
    rows, d = private_rows(data_dir)
    idx = rows[: limit or None]
    return EvalSet("FER2013 PrivateTest", list(d["x"][idx]),
                   {"FER+ majority": d["major"][idx], "FER2013 original": d["fer"][idx].astype(np.int64)})


CONTEMPT = ("drop", "disgust")  # contempt has no product class: left out, or scored as disgust
_CONTEMPT_SAYS = {"drop": "dropped", "disgust": "as disgust"}


def _is_contempt(name: str) -> bool:
    return name.strip().lower() == "contempt"


def folder_set(root: Path, frames: bool, contempt: str = "drop") -> EvalSet:
    """Images under ``root/<label>/``; the label folder names must be emotion names or aliases (a contempt folder
    dropped or scored as disgust, as ``contempt`` says)."""
    if not root.is_dir():
        raise EvalDataError(f"image folder {root} not found")
    images, labels, files = [], [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if contempt == "drop" and _is_contempt(sub.name):
            continue
        label = emotion_index(sub.name)
        for f in sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_EXTS):
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                raise EvalDataError(f"cannot read image {f}")
            images.append(img)
            labels.append(label)
            files.append(str(f.relative_to(root)))
    if not images:
        raise EvalDataError(f"no images in {root}/<label>/*.png|jpg")
    return EvalSet(f"folder {root} (contempt {_CONTEMPT_SAYS[contempt]})", images,
                   {"folder labels": np.array(labels)}, frames, files)


def _text(a: np.ndarray, path: Path, name: str) -> np.ndarray:
    """``a`` as str: bytes decoded as UTF-8 (numpy's own cast reads ASCII only); EvalDataError if they are not."""
    if a.dtype.kind != "S":
        return a.astype(str)
    try:
        return np.char.decode(a, "utf-8")
    except UnicodeDecodeError:
        raise EvalDataError(f"{path}: {name} are bytes that are not UTF-8 text") from None


def vote_matrix(path: Path, d: np.lib.npyio.NpzFile, n: int) -> np.ndarray:
    """The (N, 7) vote counts in EMOTIONS order of an npz's ``votes`` (columns named by ``vote_names``, aliases and
    contempt -> disgust as for labels; without names the columns are EMOTIONS); EvalDataError naming the problem.
    One reading for ``edge.train.face --npz`` and ``eval face --npz``."""
    raw = np.asarray(d["votes"])
    names = list(range(len(EMOTIONS)))
    if "vote_names" in d.files:
        names = []
        for i, v in enumerate(_text(np.asarray(d["vote_names"]), path, "vote_names")):
            try:
                names.append(emotion_index(str(v)))
            except EvalDataError as exc:
                raise EvalDataError(f"{path}: vote_names row {i}: {exc}") from None
    if raw.ndim != 2 or raw.shape != (n, len(names)):
        hint = "" if "vote_names" in d.files else f" (without vote_names the columns must be {', '.join(EMOTIONS)})"
        raise EvalDataError(f"{path}: votes must be (N, {len(names)}) = ({n}, {len(names)}), got {raw.shape}{hint}")
    if not np.issubdtype(raw.dtype, np.number) or not np.all(np.isfinite(raw)) or (raw < 0).any():
        raise EvalDataError(f"{path}: votes must be finite counts or shares >= 0")
    votes = np.zeros((n, len(EMOTIONS)), np.float32)
    for col, idx in enumerate(names):
        votes[:, idx] += raw[:, col]
    return votes


def clear_majority(votes: np.ndarray) -> np.ndarray:
    """Each row's class index where its votes have a clear majority (more than half, or a unique top), else -1."""
    top = votes.max(1)
    clear = (top > 0) & ((top > votes.sum(1) / 2) | ((votes == top[:, None]).sum(1) == 1))
    return np.where(clear, votes.argmax(1), -1)


def _vote_labels(path: Path, d: np.lib.npyio.NpzFile, n: int) -> np.ndarray:
    """Class names of each row's clear vote majority, "" for a tie."""
    major = clear_majority(vote_matrix(path, d, n))
    return np.where(major >= 0, np.array(EMOTIONS)[np.maximum(major, 0)], "")


def npz_set(path: Path, frames: bool, contempt: str = "drop", split: str | None = None) -> EvalSet:
    """``images`` (N,H,W[,C]) uint8 and ``labels`` (N,): names, or indices into ``label_names`` (contempt dropped
    or scored as disgust, as ``contempt`` says), or training's ``votes`` (+ ``vote_names``: each row's clear
    majority, ties left out). With a ``usage`` array only the rows of ``split`` are scored (default PrivateTest:
    the faces training kept out; "all" scores every row)."""
    if not path.is_file():
        raise EvalDataError(f"npz {path} not found")
    try:
        d = np.load(path, allow_pickle=False)
        if not isinstance(d, np.lib.npyio.NpzFile):
            raise EvalDataError(f"{path}: a single array (.npy), not an .npz with arrays 'images' and 'labels'")
        if "images" not in d.files or not {"labels", "votes"} & set(d.files):
            raise EvalDataError(f"{path} needs arrays 'images' and 'labels' (or training's 'votes') (has {d.files})")
        images = d["images"]
        from_votes = "labels" not in d.files
        raw = _vote_labels(path, d, len(images)) if from_votes else d["labels"]
        names_raw = d["label_names"] if "label_names" in d.files else None
        usage = _text(d["usage"], path, "usage") if "usage" in d.files else None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:  # not an npz; object arrays (pickles) refused
        if isinstance(exc, EvalDataError):
            raise
        raise EvalDataError(f"{path}: not a readable .npz of plain arrays ({exc}); store labels as strings or "
                            "integers, not Python objects") from None
    if usage is not None and split != "all":
        want = split or "PrivateTest"
        if usage.shape != raw.shape or not (usage == want).any():
            raise EvalDataError(f"{path}: usage names no {want} row for each image (has {sorted(set(usage))[:5]}); "
                                "choose --split, or --split all to score every row")
        log.info("%s: scoring the %d %s rows of %d (usage; --split all scores every row)", path,
                 int((usage == want).sum()), want, len(usage))
        images, raw = images[usage == want], raw[usage == want]
    elif usage is None and split not in (None, "all"):
        raise EvalDataError(f"{path}: --split {split} needs a 'usage' array naming each row's split")
    if from_votes:
        tied = raw == ""
        if tied.any():
            log.info("%s: %d row(s) without a clear vote majority left out", path, int(tied.sum()))
        images, raw = images[~tied], raw[~tied]
    if len(images) == 0 or raw.ndim != 1 or len(images) != len(raw) or images.ndim not in (3, 4):
        raise EvalDataError(f"{path}: images {images.shape} and labels {raw.shape} do not match (N,H,W[,C]) / (N,) "
                            "with N > 0")
    if images.shape[1] == 0 or images.shape[2] == 0 or (images.ndim == 4 and images.shape[3] not in (1, 3, 4)):
        raise EvalDataError(f"{path}: images {images.shape} are not (N,H,W) grey or (N,H,W,C) with C 1, 3 or 4 "
                            "and H, W > 0")
    if images.dtype != np.uint8:
        raise EvalDataError(f"{path}: images must be uint8 grey or BGR levels 0..255, got {images.dtype} (float "
                            "images in 0..1 would be scored as black faces: multiply by 255 and cast)")
    if raw.dtype.kind in "US":
        names = _text(raw, path, "labels")  # bytes labels (b"angry") are their text
    else:
        if names_raw is None or raw.dtype.kind not in "iu":
            raise EvalDataError(f"{path}: integer labels need an array 'label_names' naming each index (or store "
                                "the class names as labels); their order is not guessed")
        if raw.min() < 0 or raw.max() >= len(names_raw):
            raise EvalDataError(f"{path}: label indices outside 0..{len(names_raw) - 1}")
        names = _text(names_raw, path, "label_names")[raw.astype(np.int64)]
    keep = np.array([not (contempt == "drop" and _is_contempt(str(n))) for n in names], bool)
    try:
        labels = np.array([emotion_index(str(n)) for n in names[keep]], np.int64)
    except EvalDataError as exc:
        raise EvalDataError(f"{path}: {exc}") from None
    if not keep.any():
        raise EvalDataError(f"{path}: no image left once contempt is dropped")
    return EvalSet(f"npz {path} (contempt {_CONTEMPT_SAYS[contempt]})", [im for im, k in zip(images, keep,
                   strict=True) if k], {"npz labels": labels}, frames)




def ckplus_set(data_dir: Path, contempt: str = "drop") -> EvalSet:
    """CK+48 crops with class-name labels; contempt (no product class) is dropped or scored as disgust."""
    path = data_dir / "face" / "ckplus48" / "ckplus48.npz"
    if not path.is_file():
        raise EvalDataError(f"CK+48 not found: {path}")
    d = np.load(path, allow_pickle=False)
    names = d["labels"].astype(str)
    keep = names != "contempt" if contempt == "drop" else np.ones(len(names), bool)
    labels = np.array([emotion_index(n) for n in names[keep]])
    return EvalSet(f"CK+48 ({int(keep.sum())} crops, contempt {'dropped' if contempt == 'drop' else 'as disgust'})",
                   list(d["images"][keep]), {"CK+ labels": labels})
