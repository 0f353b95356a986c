"""Benchmarks and long checks: pipeline stages, alert timing, tablet latency, soak (never imported by the service)."""
