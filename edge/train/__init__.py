"""Training pipelines (``train`` extra). The runtime never imports this package."""
