"""Audio backends: PulseAudio (pulsectl)."""
