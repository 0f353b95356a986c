"""face-api.js's expression network (npm ``@vladmandic/face-api@1.7.15``, MIT) as a Keras model to train from.

``scripts/install-models --train`` fetches the package from the npm registry and keeps only its two weight files
(sha256-pinned) in ``models/work/pretrained/face-api/``. The network (four densely connected blocks of separable
convolutions on a 112x112 RGB face, global average pooling, a 7-way dense layer) is rebuilt here from its published
architecture and fed the product's 48x48 grey crop, upscaled inside the graph, so preprocessing stays
``edge.face.preprocess`` for training and runtime alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edge.face.preprocess import INPUT_SIZE
from edge.types import EMOTIONS

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "models" / "work" / "pretrained" / "face-api"
MANIFEST = "face_expression_model-weights_manifest.json"
PACKAGE = "@vladmandic/face-api@1.7.15"
SIDE = 112  # the network's input side
MEAN_RGB = np.array([122.782, 117.001, 104.298], np.float32)  # face-api's input normalisation, 0..255
# The package's output order; mapped onto EMOTIONS by name.
LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
ALIASES = {"fearful": "fear", "disgusted": "disgust", "surprised": "surprise"}
TO_EMOTIONS = np.array([LABELS.index(next(k for k in LABELS if ALIASES.get(k, k) == e)) for e in EMOTIONS])
BLOCKS = (32, 64, 128, 256)  # channels of dense0..dense3


class PretrainedMissing(FileNotFoundError):
    """The pretrained weight files are not installed."""


def load_weights(folder: Path = WEIGHTS_DIR) -> dict[str, np.ndarray]:
    """Float weights by name from the package's manifest + .bin (uint8-quantized tensors dequantized)."""
    man_path = folder / MANIFEST
    if not man_path.is_file():
        raise PretrainedMissing(f"{man_path} missing: run scripts/install-models --train (fetches {PACKAGE})")
    weights: dict[str, np.ndarray] = {}
    for group in json.loads(man_path.read_text()):
        buf = b"".join((folder / p).read_bytes() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"]))
            q = w.get("quantization")
            if q:
                if q["dtype"] != "uint8":
                    raise ValueError(f"{w['name']}: unsupported quantization {q['dtype']}")
                arr = np.frombuffer(buf, np.uint8, n, off).astype(np.float32) * q["scale"] + q["min"]
                off += n
            else:
                arr = np.frombuffer(buf, np.float32, n, off).copy()
                off += 4 * n
            weights[w["name"]] = arr.reshape(w["shape"]).astype(np.float32)
        if off != len(buf):
            raise ValueError(f"{man_path}: weights use {off} of {len(buf)} bytes")
    return weights


def build_model(weights: dict[str, np.ndarray], dropout: float = 0.0, side: int = SIDE) -> Any:
    """Keras model: (48, 48, 1) grey in [0, 1] -> probabilities over EMOTIONS, initialised from ``weights``."""
    from tensorflow import keras

    lay = keras.layers
    inp = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="face")
    x = lay.Resizing(side, side, interpolation="bilinear", name="upscale")(inp)
    x = lay.Concatenate(name="grey_to_rgb")([x, x, x])
    x = lay.Rescaling(1.0, offset=(-MEAN_RGB / 255.0).tolist(), name="centre")(x)
    pending: list[tuple[Any, list[np.ndarray]]] = []

    def sep(t: Any, name: str, filters: int, stride: int) -> Any:
        layer = lay.SeparableConv2D(filters, 3, strides=stride, padding="same", name=name.replace("/", "_"))
        pending.append((layer, [weights[f"{name}/depthwise_filter"], weights[f"{name}/pointwise_filter"],
                                weights[f"{name}/bias"]]))
        return layer(t)

    for i, filters in enumerate(BLOCKS):
        p = f"dense{i}"
        if i == 0:
            conv = lay.Conv2D(filters, 3, strides=2, padding="same", name="dense0_conv0")
            pending.append((conv, [weights["dense0/conv0/filters"], weights["dense0/conv0/bias"]]))
            o1 = conv(x)
        else:
            o1 = sep(x, f"{p}/conv0", filters, 2)
        o1 = lay.ReLU()(o1)
        o2 = sep(o1, f"{p}/conv1", filters, 1)
        o3 = sep(lay.ReLU()(lay.Add()([o1, o2])), f"{p}/conv2", filters, 1)
        o4 = sep(lay.ReLU()(lay.Add()([o1, o2, o3])), f"{p}/conv3", filters, 1)
        x = lay.ReLU()(lay.Add()([o1, o2, o3, o4]))
    x = lay.GlobalAveragePooling2D()(x)
    if dropout:
        x = lay.Dropout(dropout)(x)
    head = lay.Dense(len(EMOTIONS), activation="softmax", name="probs")
    out = head(x)
    pending.append((head, [weights["fc/weights"][:, TO_EMOTIONS], weights["fc/bias"][TO_EMOTIONS]]))
    model = keras.Model(inp, out, name="face_expression")
    for layer, ws in pending:
        layer.set_weights(ws)
    return model
