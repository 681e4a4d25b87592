"""Audio in: decoding and resampling to 16 kHz mono, speech features, voice activity."""
