"""TTService: local transcription with supervised worker processes."""

__version__ = "0.1.0"
