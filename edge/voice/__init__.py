"""Voice emotion: VAD gating, gain-normalised log-mel features and the int8 voice-emotion analyzer."""
