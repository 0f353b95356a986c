"""Model runtime: manifest verification and the TFLite interpreter wrapper."""

from edge.runtime.manifest import Manifest, ModelError, ModelSpec, load_manifest
from edge.runtime.tflite import Model, interpreter_class, load_model

__all__ = ["Manifest", "ModelError", "ModelSpec", "Model", "interpreter_class", "load_manifest", "load_model"]
