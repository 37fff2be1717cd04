"""Analysis of run records: scaling curves, difficulty bins, FLOPs, compute-optimal TTS, the study's numbers."""
