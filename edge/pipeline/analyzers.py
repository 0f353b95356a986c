"""Build the face and voice analyzers from config and the verified model manifest."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edge.config import KioskConfig
from edge.runtime import Manifest, load_manifest, load_model

if TYPE_CHECKING:
    from edge.face.expression import FaceAnalyzer
    from edge.voice.model import VoiceAnalyzer

log = logging.getLogger(__name__)


@dataclass
class Analyzers:
    """The loaded analyzers (None where disabled) and the versions of every model in use."""

    face: FaceAnalyzer | None = None
    voice: VoiceAnalyzer | None = None
    versions: dict[str, str] = field(default_factory=dict)


def models_manifest(cfg: KioskConfig) -> Manifest:
    """The manifest of the configured (or default) models folder."""
    return load_manifest(cfg.resolve(cfg.models.dir) if cfg.models.dir else None)


def build_analyzers(cfg: KioskConfig, manifest: Manifest | None = None) -> Analyzers:
    """Load and verify every model the config needs; raises ModelError on any mismatch."""
    manifest = manifest or models_manifest(cfg)
    out = Analyzers()
    threads = cfg.models.threads
    if cfg.analysis.face and cfg.camera.enabled:
        from edge.face.detector import make_detector
        from edge.face.expression import FaceAnalyzer

        detector = make_detector(cfg.models.face_detector, manifest, threads)
        model = load_model(manifest, "face_expression", threads)
        out.face = FaceAnalyzer(detector, model, customer_zone=cfg.analysis.customer_zone,
                                min_face_frac=cfg.analysis.min_face_frac, staff_zones=cfg.privacy.staff_zones)
        out.versions["face_expression"] = model.spec.version
        if model.spec.blend is not None:  # the averaged-in file is a model in use too: its own version
            out.versions[model.spec.blend[0]] = manifest.get(model.spec.blend[0]).version
        det_name = type(detector).__name__
        if "face_detector" in manifest.models and "Haar" not in det_name:
            out.versions["face_detector"] = manifest.get("face_detector").version
        else:
            out.versions["face_detector"] = "opencv-haar"
    if cfg.analysis.voice and cfg.microphone.enabled:
        from edge.voice.model import VoiceAnalyzer

        model = load_model(manifest, cfg.models.voice_model, threads)
        out.voice = VoiceAnalyzer(model, min_speech_ratio=cfg.analysis.min_speech_ratio,
                                  vad_aggressiveness=cfg.analysis.vad_aggressiveness)
        out.versions[cfg.models.voice_model] = model.spec.version
    return out
