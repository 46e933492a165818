"""Transcription: media in, segments out, inside one job's worker process.

`media` probes and decodes, `vad` finds the speech as the audio arrives,
`features` and `engine` turn it into segments with faster-whisper, `pipeline`
commits them to the store as they come, and `export` renders them as files.
"""
