"""Getting events out and commands in: MQTT, the outbox, remote config, the retained current state, Home Assistant."""
