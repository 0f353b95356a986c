"""Face pipeline: detection, the shared FER-style preprocessing and expression classification."""
