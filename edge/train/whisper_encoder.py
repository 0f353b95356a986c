"""Rebuild the first encoder layers of smart-turn v3.2's Whisper-tiny (int8 ONNX) as a float Keras model.

The ONNX file (pipecat-ai 1.14.0, BSD-2-Clause; Whisper weights MIT) is only read at training time: its int8 weights
are dequantized and loaded into a Keras graph of the same maths (two 1-D convolutions with GELU, sinusoidal positions,
pre-norm transformer blocks, 6 heads). The product exports that graph, with our trained head, to its own int8 TFLite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

D_MODEL, N_HEADS, D_FF, N_MELS_W = 384, 6, 1536, 80
LN_EPS = 1e-5
# The smart-turn ONNX graph names its weight matrices by number: per encoder layer, q, k, v, out, fc1, fc2.
LAYER_WEIGHTS = (
    ("val_17", "val_25", "val_32", "val_75", "val_79", "val_88"),
    ("val_92", "val_100", "val_107", "val_148", "val_152", "val_161"),
    ("val_165", "val_173", "val_180", "val_221", "val_225", "val_234"),
)


def onnx_weights(path: Path) -> dict[str, np.ndarray]:
    """Every initializer of the ONNX file, int8 tensors dequantized by their DequantizeLinear node (float32)."""
    import onnx
    from onnx import helper, numpy_helper

    g = onnx.load(str(path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    out = {k: v.astype(np.float32) for k, v in init.items() if v.dtype == np.float32}
    for n in g.node:
        if n.op_type != "DequantizeLinear" or n.input[0] not in init:
            continue
        q, scale, zero = (init[i] for i in n.input[:3])
        axis = next((helper.get_attribute_value(a) for a in n.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        if scale.size > 1:
            shape[axis] = scale.size
        w = (q.astype(np.float32) - zero.astype(np.float32).reshape(shape)) * scale.reshape(shape)
        name = n.output[0].replace("_DequantizeLinear_Output", "")
        out[name] = w.astype(np.float32)
    return out


def sinusoids(length: int, channels: int = D_MODEL) -> np.ndarray:
    """Whisper's fixed sinusoidal positions (equal to the file's ``embed_positions`` to 2e-5)."""
    inc = np.log(10000.0) / (channels // 2 - 1)
    t = np.arange(length)[:, None] * np.exp(-inc * np.arange(channels // 2))[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


def build_encoder(w: dict[str, np.ndarray], frames: int, taps: tuple[int, ...] = (2,), pool: bool = True) -> Any:
    """Keras model: Whisper log-mel (N, frames, 80) -> per tap k, the output of k blocks normalised by block k's
    input layer norm (``layer_norm_2k`` of the ONNX graph), averaged over time unless ``pool`` is False."""
    import tensorflow as tf
    from tensorflow import keras

    lay = keras.layers
    p = "inner.encoder."

    def gelu(name: str) -> Any:
        return lay.Activation(lambda t: keras.activations.gelu(t, approximate=False), name=name)

    inp = keras.Input((frames, N_MELS_W), name="mel")
    c1 = lay.Conv1D(D_MODEL, 3, padding="same", name="conv1")
    x = gelu("gelu_c1")(c1(inp))
    x = lay.ZeroPadding1D(1)(x)
    c2 = lay.Conv1D(D_MODEL, 3, strides=2, padding="valid", name="conv2")
    x = gelu("gelu_c2")(c2(x))
    pos = tf.constant(sinusoids(frames // 2)[None])
    x = lay.Lambda(lambda t: t + pos, name="positions")(x)
    weights: list[tuple[Any, list[np.ndarray]]] = [
        (c1, [w[p + "conv1.weight"].transpose(2, 1, 0), w[p + "conv1.bias"]]),
        (c2, [w[p + "conv2.weight"].transpose(2, 1, 0), w[p + "conv2.bias"]]),
    ]
    outs = []
    hd = D_MODEL // N_HEADS
    for i in range(max(taps) + 1):
        lp = f"{p}layers.{i}."
        ln1 = lay.LayerNormalization(epsilon=LN_EPS, name=f"l{i}_ln1")
        weights.append((ln1, [w[lp + "self_attn_layer_norm.weight"], w[lp + "self_attn_layer_norm.bias"]]))
        if i in taps:
            y = ln1(x)
            outs.append(lay.GlobalAveragePooling1D(name=f"mean{i}")(y) if pool else y)
        if i == max(taps):
            break
        att = lay.MultiHeadAttention(N_HEADS, hd, name=f"l{i}_attn")
        ln2 = lay.LayerNormalization(epsilon=LN_EPS, name=f"l{i}_ln2")
        fc1, fc2 = lay.Dense(D_FF, name=f"l{i}_fc1"), lay.Dense(D_MODEL, name=f"l{i}_fc2")
        h = ln1(x)
        x = x + att(h, h)
        x = x + fc2(gelu(f"l{i}_gelu")(fc1(ln2(x))))
        q, k, v, o, f1, f2 = LAYER_WEIGHTS[i]
        kb = np.zeros(D_MODEL, np.float32)  # Whisper's key projection has no bias
        weights += [
            (att, [w[q].reshape(D_MODEL, N_HEADS, hd), w[lp + "self_attn.q_proj.bias"].reshape(N_HEADS, hd),
                   w[k].reshape(D_MODEL, N_HEADS, hd), kb.reshape(N_HEADS, hd),
                   w[v].reshape(D_MODEL, N_HEADS, hd), w[lp + "self_attn.v_proj.bias"].reshape(N_HEADS, hd),
                   w[o].reshape(N_HEADS, hd, D_MODEL), w[lp + "self_attn.out_proj.bias"]]),
            (ln2, [w[lp + "final_layer_norm.weight"], w[lp + "final_layer_norm.bias"]]),
            (fc1, [w[f1], w[lp + "fc1.bias"]]),
            (fc2, [w[f2], w[lp + "fc2.bias"]]),
        ]
    model = keras.Model(inp, outs if len(outs) > 1 else outs[0], name="whisper_tiny_encoder")
    for layer, vals in weights:
        layer.set_weights(vals)
    return model
