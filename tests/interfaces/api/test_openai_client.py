"""The official `openai` package as the client, pointed at TTService: unchanged, it transcribes,
translates, streams and lists models."""

from __future__ import annotations

import re

import jiwer
import openai
import pytest

from ttservice.jobs import JobStatus, Runner

from ...conftest import JFK_TXT, JFK_WAV, words
from .conftest import KEY, OTHER_KEY

pytestmark = pytest.mark.model

SRT_BLOCK = re.compile(r"(\d+)\n(\d\d:\d\d:\d\d,\d\d\d) --> (\d\d:\d\d:\d\d,\d\d\d)\n(.+?)\n(?:\n|$)", re.S)
VTT_CUE = re.compile(r"(\d\d:\d\d:\d\d\.\d\d\d) --> (\d\d:\d\d:\d\d\.\d\d\d)\n(.+?)\n(?:\n|$)", re.S)


@pytest.fixture(scope="module")
def client(api) -> openai.OpenAI:
    return openai.OpenAI(base_url=api.url + "/v1", api_key=KEY, max_retries=0, timeout=120)


def wer(text: str) -> float:
    return jiwer.wer(" ".join(words(JFK_TXT.read_text())), " ".join(words(text)))


def transcribe(client, **kwargs):
    with open(JFK_WAV, "rb") as audio:
        return client.audio.transcriptions.create(file=audio, model="whisper-1", **kwargs)


def seconds(stamp: str) -> float:
    h, m, s = stamp.replace(",", ".").split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_json_gives_the_words_of_the_recording(client, api):
    result = transcribe(client)
    assert wer(result.text) < 0.2, result.text
    job = api.store.list_jobs(limit=1)[0]
    assert job.runner is Runner.API and job.status is JobStatus.COMPLETED and job.filename == "jfk.wav"


def test_text_srt_and_vtt_come_as_text_that_parses(client):
    text = transcribe(client, response_format="text")
    assert isinstance(text, str) and wer(text) < 0.2
    srt = transcribe(client, response_format="srt")
    blocks = SRT_BLOCK.findall(srt)
    assert blocks and [int(b[0]) for b in blocks] == list(range(1, len(blocks) + 1))
    assert all(seconds(b[1]) < seconds(b[2]) <= 11.5 for b in blocks)
    assert wer(" ".join(b[3] for b in blocks)) < 0.2
    vtt = transcribe(client, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n")
    cues = VTT_CUE.findall(vtt)
    assert len(cues) == len(blocks) and all(seconds(a) < seconds(b) for a, b, _ in cues)


def test_verbose_json_has_segments_and_words_when_asked(client, api):
    result = transcribe(
        client,
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        prompt="President Kennedy's inaugural address.",
        temperature=0.2,
    )
    job = api.store.list_jobs(limit=1)[0]
    assert job.options.prompt == "President Kennedy's inaugural address." and job.options.temperature == 0.2
    assert job.options.word_timestamps
    assert result.task == "transcribe" and result.language == "english"
    assert 10.5 < result.duration < 11.5
    assert [s.id for s in result.segments] == list(range(len(result.segments)))
    assert all(s.start < s.end for s in result.segments)
    assert " ".join(s.text for s in result.segments) == result.text
    spoken = [w.word for w in result.words]
    assert wer(" ".join(spoken)) < 0.2
    assert all(a.start <= b.start for a, b in zip(result.words, result.words[1:], strict=False))
    plain = transcribe(client, response_format="verbose_json")
    assert getattr(plain, "words", None) is None  # only when asked for


def test_stream_sends_deltas_as_segments_commit_then_the_whole_text(client):
    with open(JFK_WAV, "rb") as audio:
        events = list(client.audio.transcriptions.create(file=audio, model="whisper-1", stream=True))
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    assert len(deltas) >= 2 and events[-1].type == "transcript.text.done"
    assert "".join(d.delta for d in deltas) == events[-1].text
    assert wer(events[-1].text) < 0.2


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # translations: deprecated by OpenAI
def test_translation_with_a_multilingual_model(client, base_model_dir):
    with open(JFK_WAV, "rb") as audio:
        result = client.audio.translations.create(file=audio, model=str(base_model_dir))
    assert wer(result.text) < 0.3, result.text


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_an_english_only_model_refuses_another_language_in_one_sentence(client):
    with pytest.raises(openai.BadRequestError) as refused:
        transcribe(client, language="th")
    error = refused.value.body
    assert error["param"] is None or isinstance(error["param"], str)
    assert "English" in error["message"] and error["message"].count(". ") == 0
    with pytest.raises(openai.BadRequestError) as refused:
        with open(JFK_WAV, "rb") as audio:
            client.audio.translations.create(file=audio, model="whisper-1")
    assert "translat" in refused.value.body["message"]


def test_models_lists_what_is_installed(client):
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "whisper-1" and "tiny.en" in ids
    assert client.models.retrieve("tiny.en").owned_by == "ttservice"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("large-v3")  # known, but not downloaded here


def test_a_wrong_key_is_refused_and_either_key_works(api):
    wrong = openai.OpenAI(base_url=api.url + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        wrong.models.list()
    assert refused.value.status_code == 401 and "key" in refused.value.body["message"]
    other = openai.OpenAI(base_url=api.url + "/v1", api_key=OTHER_KEY, max_retries=0)
    assert any(m.id == "tiny.en" for m in other.models.list())


def test_diarized_json_names_the_speakers_as_openais_diarizing_model_does(client, base_model_dir, tmp_path):
    from ...speech import dialogue

    path, truth = dialogue(tmp_path / "dialogue.wav", tmp_path)
    with open(path, "rb") as audio:
        result = client.audio.transcriptions.create(
            file=audio, model=str(base_model_dir), response_format="diarized_json"
        )
    assert {s.speaker for s in result.segments} == {"A", "B"} and result.segments[0].speaker == "A"
    assert result.segments[0].type == "transcript.text.segment" and result.duration > 20
    with open(path, "rb") as audio:
        named = client.audio.transcriptions.create(
            file=audio, model=str(base_model_dir), response_format="diarized_json",
            known_speaker_names=["Anna", "Bernd"],
        )  # fmt: skip
    assert [s.speaker for s in named.segments] == [
        {"A": "Anna", "B": "Bernd"}[s.speaker] for s in result.segments
    ]
