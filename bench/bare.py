"""The baseline the benchmarks compare TTService with: the same engine, unsupervised.

python bench/bare.py AUDIO   prints one segment per line, like `ttservice transcribe`.

It decodes the file and runs TTService's engine (faster-whisper with the default
settings: bundled tiny.en, float32, greedy, VAD, sequential windows) in this one
process: no CLI, no worker process, no database, no heartbeat, no log. What
`ttservice transcribe` costs beyond this is the cost of supervision.
"""

import sys

from faster_whisper.audio import decode_audio

from ttservice.engine import SAMPLE_RATE, FasterWhisperEngine
from ttservice.jobs import TranscribeOptions

options = TranscribeOptions()
segments, _ = FasterWhisperEngine(options).transcribe(decode_audio(sys.argv[1], SAMPLE_RATE), options)
for segment in segments:
    print(segment.text, flush=True)
