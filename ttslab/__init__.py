"""ttslab: reproducible external test-time scaling (Best-of-N, beam search, DVTS with PRMs)."""

__version__ = "0.1.0"
