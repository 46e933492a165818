"""The baseline the benchmarks compare TTService with: the same engine, unsupervised.

python bench/bare.py AUDIO   prints one segment per line, like `ttservice transcribe`.

It runs TTService's engine (faster-whisper with the settings of the environment,
by default: bundled tiny.en, int8 on the CPU, 5 beams, VAD, batched clips;
TTSERVICE_MODEL and TTSERVICE_DEVICE as for ttservice) in this one process, and
decodes the file while the model loads, as the worker of `ttservice transcribe`
does (its first batch full: nobody reads the text before the end): no CLI, no worker
process, no database, no heartbeat, no log. What `ttservice transcribe` costs
beyond this is the cost of supervision.
"""

import sys
from concurrent.futures import ThreadPoolExecutor

from faster_whisper.audio import decode_audio

from ttservice.config import Settings
from ttservice.jobs import TranscribeOptions
from ttservice.transcription.fasterwhisper import FasterWhisperEngine
from ttservice.transcription.vad import SAMPLE_RATE

options = TranscribeOptions.from_settings(Settings.from_env())
with ThreadPoolExecutor(1) as decoder:
    preparing = decoder.submit(
        lambda: FasterWhisperEngine.prepare(decode_audio(sys.argv[1], SAMPLE_RATE), options)
    )
    engine = FasterWhisperEngine(options)
    prepared = preparing.result()
segments, _ = engine.transcribe(prepared, options, live=False)  # as `ttservice transcribe` decodes
for segment in segments:
    print(segment.text, flush=True)
