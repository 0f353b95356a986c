"""Load a manifest-declared TFLite model into ai-edge-litert (or tflite_runtime) and run it."""

from __future__ import annotations

import importlib
import logging
from typing import Any

import numpy as np

from edge.runtime.manifest import Manifest, ModelError, ModelSpec, TensorSpec

log = logging.getLogger(__name__)

_BACKENDS = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")


def interpreter_class() -> tuple[Any, str]:
    """Return (Interpreter class, backend module name): ai-edge-litert first, tflite_runtime as fallback."""
    errors = []
    for mod in _BACKENDS:
        try:
            return importlib.import_module(mod).Interpreter, mod
        except ImportError as exc:
            errors.append(f"{mod}: {exc}")
    raise ModelError("no TFLite interpreter installed (pip install ai-edge-litert); tried " + "; ".join(errors))


def _check_tensor(spec: ModelSpec, kind: str, declared: TensorSpec, actual: dict[str, Any]) -> None:
    shape = tuple(int(v) for v in actual["shape"])
    dtype = np.dtype(actual["dtype"]).name
    problems = []
    if shape != declared.shape:
        problems.append(f"shape {shape} != declared {declared.shape}")
    if dtype != declared.dtype:
        problems.append(f"dtype {dtype} != declared {declared.dtype}")
    scale, zero = actual.get("quantization", (0.0, 0))
    if declared.quantization is not None:
        ds, dz = declared.quantization
        if int(zero) != dz or not np.isclose(float(scale), ds, rtol=1e-5, atol=0.0):
            problems.append(f"quantization ({scale}, {zero}) != declared ({ds}, {dz})")
    elif float(scale) != 0.0 or int(zero) != 0:  # null declares an unquantized tensor, not "unchecked"
        problems.append(f"quantization ({scale}, {zero}) but the manifest declares none (null)")
    if problems:
        raise ModelError(f"model '{spec.name}' {kind} tensor does not match the manifest: " + "; ".join(problems))


class Model:
    """A verified interpreter: ``infer`` takes float input and returns float output (de)quantized as declared."""

    def __init__(self, spec: ModelSpec, interpreter: Any, backend: str) -> None:
        """Wrap an allocated interpreter for ``spec``."""
        self.spec = spec
        self.backend = backend
        self._interp = interpreter
        self._in = interpreter.get_input_details()[0]
        self._out = interpreter.get_output_details()[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Declared input shape."""
        return self.spec.input.shape

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Run one batch; quantizes float input and dequantizes output when the model is integer."""
        scale, zero = self._in["quantization"]
        dtype = np.dtype(self._in["dtype"])
        if dtype.kind in "iu" and scale:
            info = np.iinfo(dtype)
            q = np.clip(np.round(np.asarray(x, np.float32) / scale + zero), info.min, info.max).astype(dtype)
        else:
            q = np.asarray(x, dtype=dtype)
        self._interp.set_tensor(self._in["index"], q.reshape(self._in["shape"]))
        self._interp.invoke()
        y = self._interp.get_tensor(self._out["index"])
        oscale, ozero = self._out["quantization"]
        if np.dtype(self._out["dtype"]).kind in "iu" and oscale:
            return (y.astype(np.float32) - ozero) * oscale
        return y.astype(np.float32)

    def outputs(self) -> list[np.ndarray]:
        """All output tensors of the last ``infer`` call, dequantized (for multi-output models)."""
        res = []
        for det in self._interp.get_output_details():
            y = self._interp.get_tensor(det["index"])
            s, z = det["quantization"]
            quantized = np.dtype(det["dtype"]).kind in "iu" and s
            res.append((y.astype(np.float32) - z) * s if quantized else y.astype(np.float32))
        return res


class BlendedModel(Model):
    """An entry whose manifest ``blend`` names a second model: ``infer`` returns (1 - w) x its own output + w x the
    other's on the same input (both verified; same input, output shape and labels)."""

    def __init__(self, own: Model, other: Model, weight: float) -> None:
        """Average ``own`` with ``other`` at ``weight``."""
        self.spec, self.backend = own.spec, own.backend
        self.own, self.other, self.weight = own, other, float(weight)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Both models on ``x``, outputs averaged."""
        return (1.0 - self.weight) * self.own.infer(x) + self.weight * self.other.infer(x)

    def outputs(self) -> list[np.ndarray]:
        """The blended output of the last ``infer`` (single-output models only)."""
        return [(1.0 - self.weight) * self.own.outputs()[0] + self.weight * self.other.outputs()[0]]


def load_model(manifest: Manifest, name: str, threads: int = 1) -> Model:
    """Verify ``name``'s file (sha256) and tensors against the manifest, then return a ready Model (a BlendedModel
    when its entry blends in another entry)."""
    spec = manifest.get(name)
    if spec.blend is not None:
        other_name, weight = spec.blend
        other = manifest.get(other_name)
        if other.blend is not None:
            raise ModelError(f"model '{name}' blends '{other_name}', which blends again: one level only")
        own, theirs = _load_one(manifest, name, threads), _load_one(manifest, other_name, threads)  # each verified
        for field, a, b in (("input shape", spec.input.shape, other.input.shape),
                            ("output shape", spec.output.shape, other.output.shape),
                            ("labels", spec.labels, other.labels)):
            if a != b:
                raise ModelError(f"model '{name}' cannot blend '{other_name}': {field} {list(a)} != {list(b)}")
        return BlendedModel(own, theirs, weight)
    return _load_one(manifest, name, threads)


def _load_one(manifest: Manifest, name: str, threads: int) -> Model:
    """One verified interpreter for ``name``."""
    spec = manifest.get(name)
    content = spec.read_verified()
    cls, backend = interpreter_class()
    try:
        interp = cls(model_content=content, num_threads=int(threads))
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"model '{name}': {spec.path} cannot be loaded by {backend}: {exc}") from exc
    if len(interp.get_input_details()) != 1:
        raise ModelError(f"model '{name}': {spec.path} has {len(interp.get_input_details())} inputs; the manifest "
                         "declares one")
    _check_tensor(spec, "input", spec.input, interp.get_input_details()[0])
    _check_tensor(spec, "output", spec.output, interp.get_output_details()[0])
    log.info("loaded model %s v%s (%s, %d thread(s))", name, spec.version, backend, threads)
    return Model(spec, interp, backend)
