"""The pure judgement: fusion, anonymous visits, alert and cue policy, hints and their config (no I/O)."""
