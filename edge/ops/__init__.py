"""Operating kiosks: systemd liveness, health figures, opening hours, and the fleet tools for operators."""
