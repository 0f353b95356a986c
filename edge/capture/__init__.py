"""Camera and microphone capture threads plus media helpers (files, streams, devices)."""

from edge.capture.audio import AudioSource, classify_audio_source
from edge.capture.media import (
    MediaError,
    classify_video_source,
    iter_video_file,
    list_input_devices,
    open_video,
    read_audio_file,
    resolve_input_device,
)
from edge.capture.video import VideoSource

__all__ = [
    "AudioSource",
    "MediaError",
    "VideoSource",
    "classify_audio_source",
    "classify_video_source",
    "iter_video_file",
    "list_input_devices",
    "open_video",
    "read_audio_file",
    "resolve_input_device",
]
