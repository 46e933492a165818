"""Transcription: media in, segments out, inside one job's worker process.

`media` probes and decodes, `vad` finds the speech as the audio arrives,
`features` and `engine` turn it into segments with faster-whisper or whisper.cpp,
`pipeline` commits them to the store as they come, and `export` renders them as files.
"""

# The engines a job may name (here, so that the CLI's help lists them without importing NumPy).
FASTER_WHISPER, WHISPER_CPP, AUTO = "faster-whisper", "whisper.cpp", "auto"
ENGINES = (AUTO, FASTER_WHISPER, WHISPER_CPP)
