"""Models: what a name means (`catalog`), the hub and its cache (`hub`), resumable downloads
(`download`), every Whisper language (`languages`), and what a request may ask (`requests`)."""
