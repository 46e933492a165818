"""One job's transcription, from its media to its committed segments.

It decodes the media, finds its speech and transcribes it, committing every
segment with the job's progress as it goes. It runs inside a worker process
(`supervision.worker`), which owns the heartbeat and records how the job ended.
A job that already has segments (it was resumed) continues after the last one.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import MEDIA_FROM_ENV, Settings
from ..exceptions import TTServiceError
from ..jobs import Job, Runner, Segment, Store, TranscribeOptions
from ..jobs.logs import JobLogHandler
from ..jobs.record import chunk_of
from ..messages import Message
from ..platform import node_name, trim_heap
from ..words import has_thai, merge_words
from . import device, media, speakers
from .engine import WHISPER_CPP, Engine, ResumePoint, engine_class, for_job
from .export import clock
from .samples import GrowingAudio
from .vad import SAMPLE_RATE

if TYPE_CHECKING:
    import numpy as np

CAPACITY_MARGIN = 1.01  # room for audio a little longer than declared, before the buffer must grow

log = logging.getLogger("ttservice.worker")


def shared_cores(store: Store, settings: Settings, options: TranscribeOptions) -> TranscribeOptions:
    """The options with their CPU threads: as set (TTSERVICE_CPU_THREADS), else this machine's
    cores divided between the jobs running on it, this one among them."""
    if options.cpu_threads:
        return options
    here = settings.host_name or node_name()
    running = sum(1 for job in store.active_jobs() if job.host in (None, here))
    return replace(options, cpu_threads=device.cpu_threads(running))


def thai_advice(store: Store, settings: Settings) -> Message:
    """The Thai fine-tune recommended on this machine, for a warning that the speech may not be English."""
    from ..models import memory

    name = memory.most_accurate(memory.THAI_BY_ACCURACY, settings, memory.speeds_here(store))
    return Message("language.thai_model", model=name) if name else Message("language.no_thai_model")


def check_disk(store: Store, handler: JobLogHandler | None) -> None:
    """Fail the job once its log or the database could not be written: it must not run blind.

    The store has already freed its reserve by then, so recording the failure finds room.
    """
    if store.disk_full is not None:
        raise store.disk_full
    error = handler.write_error if handler else None
    if error is None:
        return
    if error.errno == errno.ENOSPC:
        store.release_reserve()
        raise TTServiceError("log.disk_full")
    raise TTServiceError("log.not_written", error=error.strerror or str(error))


def load(Chosen: type, options: TranscribeOptions) -> Engine:
    """The engine with the job's model loaded; whisper.cpp's log says when the model is first
    written for it (once per model)."""
    if Chosen.name != WHISPER_CPP:
        return Chosen(options)

    def converting(done: int, total: int) -> None:
        if done == 0:
            log.info("Writing %s for whisper.cpp (once): %d layers", options.model, total)

    return Chosen(options, converting)


def _media_path(store: Store, settings: Settings, job: Job, attempt: int | None) -> Path | None:
    """The path this worker reads the job's media at: where it lies, or for an agent's worker
    fetched from the service (`remote`); None if the job is no longer this attempt's."""
    api_url = os.environ.get(MEDIA_FROM_ENV)  # set by an agent for its workers
    if not api_url or attempt is None:
        return Path(job.media_path or "")
    from . import remote  # and httpx: a tenth of a second other workers do not spend starting

    return remote.fetched(store, settings, job, attempt, api_url)


def warm_up(speech_model: bool) -> None:
    """What every job does before its model, done ahead by a worker that waits for its job:
    faster_whisper's imports (the speech finder's too, whichever engine decodes) and, with
    `speech_model`, the speech finder's model (cached by faster_whisper). Without it, the job
    loads that model (~50 ms) in the thread that finds the speech, while its own model loads."""
    from faster_whisper.vad import get_vad_model

    if speech_model:
        get_vad_model()


def transcribe_job(
    store: Store,
    settings: Settings,
    job_id: int,
    handler: JobLogHandler | None = None,
    warm: Engine | None = None,
    attempt: int | None = None,
) -> bool:
    """Transcribe the job's media, committing as it goes; False if the job stopped being ours.

    `warm` is a model loaded ahead (the warm worker's); it is used if it is the one
    the job asks for, and freed otherwise. Every write names `attempt`: once another
    run of the job was claimed, this one's change nothing.
    """
    job = store.get_job(job_id)
    options = shared_cores(store, settings, job.options)
    path = _media_path(store, settings, job, attempt)
    if path is None:
        log.info("The job is no longer this attempt's to run")
        return False
    if options.speakers and job.progress >= 1.0:  # labelled again, or it stopped while labelling
        log.info("The transcript is whole: only its speakers are labelled")
        if warm is not None:  # a warm worker's model is not needed
            warm.unload()
        label(store, job_id, path, options, attempt)
        return True
    info = media.probe(path, settings.max_upload_bytes)
    resume = ResumePoint.from_segments(store.segments(job_id))
    chosen = for_job(options)
    Chosen = engine_class(chosen)
    # The media decodes, and its speech is found, while the model loads and while the
    # first windows are decoded: the first text waits for neither. The model loads here,
    # in the main thread, where it is used: loaded in another thread it cost ~30 MB more
    # RSS (malloc arenas).
    if warm is not None and (warm.name != chosen or not warm.serves(options)):
        warm.unload()  # the job's own model is loaded below
        warm = None
    log.info("Decoding %s (%.1f MB); %s model %s for %s", job.filename, info.size / 2**20,
             "loaded" if warm else "loading", options.model, chosen)  # fmt: skip
    decoded = GrowingAudio(int((info.declared_duration or 0) * SAMPLE_RATE * CAPACITY_MARGIN))

    def decode() -> None:
        try:
            media.decode_into(info, decoded)
        finally:  # whatever happened, nobody may wait for more samples
            if not decoded.done:
                decoded.finish(TTServiceError("media.decoding_stopped", name=info.path.name))
        trim_heap()  # decoding in its own thread leaves a malloc arena of freed memory (~20 MB)

    threads = ThreadPoolExecutor(2, thread_name_prefix="decode")
    threads.submit(decode)  # PyAV only, imported by the probe already
    # faster_whisper is imported here, while the media decodes, and before the speech finder's
    # thread starts: that thread imports its `vad` while this one imports the package for the
    # model, and two threads importing one package at once can deadlock in Python's import locks
    # (`_DeadlockError`; CI saw jobs fail with it).
    import faster_whisper  # noqa: F401

    preparing = threads.submit(Chosen.prepare, decoded, options, resume, info.declared_duration)
    threads.shutdown(wait=False)
    engine = warm or load(Chosen, options)
    store.set_engine(job_id, engine.name, attempt=attempt)
    log.info("Model %s runs on %s with %d CPU threads", options.model, engine.describe(),
             options.cpu_threads)  # fmt: skip
    prepared = preparing.result()
    duration = prepared.duration
    offset = resume.after if resume else 0.0
    language = options.language or (job.detected_language if resume else None)
    store.set_media_info(job_id, duration, language, attempt=attempt)
    log.info("Audio: %s long", clock(duration))
    started = time.monotonic()
    if resume:
        log.info("Resuming after the last saved segment, at %s", clock(offset))
    # `ttservice transcribe` prints the transcript once it is whole: its first text need not come early.
    live = job.runner is not Runner.FOREGROUND
    segments, info_ = engine.transcribe(prepared, replace(options, language=language), resume, live)
    store.set_media_info(job_id, duration, info_.language, info_.language_probability, attempt=attempt)
    if info_.language_probability is not None:
        log.info("Language: %s (detected, probability %.2f)", info_.language, info_.language_probability)
    else:
        log.info("Language: %s", info_.language)
    count = 0
    for segment in segments:
        check_disk(store, handler)
        if segment.words and has_thai(segment.text):  # Whisper times Thai a letter at a time
            segment = replace(segment, words=merge_words(segment.words))
        duration = prepared.duration  # the declared length until all of the media is decoded
        if prepared.audio.done:
            segment = ending_by(segment, duration)
        processed = min(segment.end, duration)
        if not store.add_segments(job_id, [segment], processed, processed / duration, attempt=attempt):
            log.warning("job %s is no longer processing; stopping", job_id)
            return False
        count += 1
        wall = time.monotonic() - started
        speed = (processed - offset) / wall if wall > 0 else 0.0
        eta = (duration - processed) / speed if speed > 0 else 0.0
        chunk, chunks = chunk_of(processed, duration)
        log.info("[%s -> %s] %s", clock(segment.start), clock(segment.end), segment.text)
        log.info("Processing chunk %d/%d - Speed: %.1fx realtime - ETA %s", chunk, chunks, speed, clock(eta))
    check_disk(store, handler)
    if not engine.multilingual and engine.doubt.much:
        warning = Message(
            "language.maybe_not_english", share=engine.doubt.share, thai=thai_advice(store, settings)
        )
        log.warning("%s", warning)
        store.add_warning(job_id, warning)
    duration = prepared.duration
    store.set_media_info(job_id, duration, info_.language, attempt=attempt)
    if not store.add_segments(job_id, [], duration, 1.0, attempt=attempt):
        log.warning("job %s is no longer processing; stopping", job_id)
        return False
    wall = time.monotonic() - started
    log.info(
        "Done: %d segments, %s of audio in %.1f s (%.1fx realtime)",
        count,
        clock(duration - offset),
        wall,
        (duration - offset) / max(wall, 1e-6),
    )
    if options.speakers:
        # The worker ends with its job, and the transcript is whole: the diarizer takes the
        # model's memory, and hears the samples decoded already.
        engine.unload()
        trim_heap()
        audio = prepared.audio.result() if prepared.audio.done and prepared.audio.error is None else None
        label(store, job_id, path, options, attempt, audio)
    return True


def ending_by(segment: Segment, duration: float) -> Segment:
    """The segment, and its words, ending no later than the file. Whisper can end the last text of
    a file at the end of its 30-s window: faster-whisper ended a 26.7-s recording's at 30.8 s, a
    subtitle shown after the file has ended."""
    if segment.end <= duration:
        return segment
    words = segment.words and [
        {**w, "start": min(w["start"], duration), "end": min(w["end"], duration)} for w in segment.words
    ]
    return replace(segment, start=min(segment.start, duration), end=duration, words=words)


def label(
    store: Store,
    job_id: int,
    path: Path,
    options: TranscribeOptions,
    attempt: int | None,
    samples: np.ndarray | None = None,
) -> None:
    """Label the job's speakers; a failure is a warning beside the transcript, which it keeps."""
    log.info("Labelling speakers (%s)", options.speakers)
    warning = speakers.label_job(store, job_id, path, options.speakers, attempt, options.cpu_threads, samples)
    if warning is not None:
        log.warning("%s", warning)
        store.add_warning(job_id, warning)
