"""Evaluation and benchmark commands for the face path (never imported by the runtime service)."""
