"""What a model name means, what a model can do, the languages, the devices: no process, no network."""

import os
import stat

import pytest

from ttservice.exceptions import ModelError, RequestError
from ttservice.jobs import TranscribeOptions
from ttservice.models import catalog, requests
from ttservice.models.languages import LANGUAGES, language_code
from ttservice.supervision import proctree
from ttservice.transcription import device


def test_names_resolve_to_the_bundled_model_a_repo_or_a_folder(tiny_en_dir):
    bundled = catalog.resolve("tiny.en")
    assert bundled.kind == "bundled" and bundled.folder == tiny_en_dir
    assert catalog.resolve("base") == catalog.ModelRef("base", "hub", "Systran/faster-whisper-base")
    assert catalog.resolve("org/whisper-x").repo_id == "org/whisper-x"
    folder = catalog.resolve(str(tiny_en_dir))
    assert folder.kind == "folder" and folder.folder == tiny_en_dir


def test_thai_fine_tunes_have_short_names_and_are_told_their_language():
    ref = catalog.resolve("th-medium-distil")
    assert ref == catalog.ModelRef("th-medium-distil", "hub", "biodatlab/distill-whisper-th-medium")
    assert catalog.english_only_by_name("typhoon-turbo") is False
    for model in ("th-medium", "biodatlab/whisper-th-medium-combined"):
        options, _, _ = requests.checked(TranscribeOptions(model=model))
        assert options.language == "th"  # tuned for Thai alone: never left to detection
    options, _, _ = requests.checked(TranscribeOptions(model="th-medium", language="en"))
    assert options.language == "en"  # a language the user names is kept
    options, _, _ = requests.checked(TranscribeOptions(model="base"))
    assert options.language is None


@pytest.mark.parametrize(
    "name, sentence",
    [
        ("no such model!", "is not a model name TTService knows"),
        ("/no/such/dir", "The model folder /no/such/dir does not exist."),
        ("", "Name a model"),
    ],
)
def test_a_name_that_means_no_model_is_one_sentence(name, sentence):
    with pytest.raises(ModelError, match=sentence.replace(".", r"\.")):
        catalog.resolve(name)


def test_a_folder_that_is_not_a_ctranslate2_model_is_refused(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"not really")
    with pytest.raises(ModelError, match="is not a CTranslate2 Whisper model folder"):
        catalog.resolve(str(tmp_path))


def test_known_names_are_faster_whispers_own_without_importing_it():
    from faster_whisper.utils import _MODELS

    assert catalog.known_models() == _MODELS


def test_english_only_is_read_from_the_vocabulary_and_guessed_from_the_name(tiny_en_dir, base_model_dir):
    assert catalog.multilingual(tiny_en_dir) is False  # vocabulary.txt: 51,864 tokens
    assert catalog.multilingual(base_model_dir) is True  # vocabulary.json: 51,865
    assert catalog.english_only_by_name("base.en") is True
    assert catalog.english_only_by_name("distil-large-v3") is True
    assert catalog.english_only_by_name("large-v3") is False
    assert catalog.english_only_by_name("org/whisper-small.en") is True
    assert catalog.english_only_by_name("org/whisper-small") is None


def test_every_whisper_language_is_known_by_code_and_name():
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    assert set(LANGUAGES) == set(_LANGUAGE_CODES)
    assert language_code("Thai") == "th" and language_code("TH") == "th" and language_code("auto") is None
    with pytest.raises(RequestError, match="'klingon' is not a language Whisper knows"):
        language_code("klingon")


def test_an_english_only_model_refuses_other_languages_and_translation(base_model_dir):
    with pytest.raises(RequestError, match="tiny.en is English-only, so it cannot transcribe Thai;"):
        requests.checked(TranscribeOptions(model="tiny.en", language="th"))
    with pytest.raises(RequestError, match="cannot translate; choose a multilingual model such as base"):
        requests.checked(TranscribeOptions(model="tiny.en", task="translate"))
    options, ref, folder = requests.checked(TranscribeOptions(model="tiny.en", language="English"))
    assert options.language == "en" and folder is not None
    options, _, _ = requests.checked(TranscribeOptions(model=str(base_model_dir), language="thai"))
    assert options.language == "th"


def test_the_cpu_runs_int8_and_cuda_without_a_gpu_is_one_sentence():
    assert device.resolve("cpu") == device.Device("cpu", 0, "int8")
    assert device.resolve("cpu", compute_type="int8").compute_type == "int8"
    with pytest.raises(ModelError, match="is not a device"):
        device.resolve("tpu")
    if device.cuda_devices() == 0:
        assert device.resolve("auto").kind == "cpu"
        with pytest.raises(ModelError, match="TTSERVICE_DEVICE=cuda, but CTranslate2 finds no usable CUDA"):
            device.resolve("cuda")
    else:
        assert device.resolve("auto") == device.Device("cuda", 0, "float16")


def test_gpu_memory_is_read_from_nvidia_smi_where_there_is_one(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert proctree.gpu_memory([os.getpid()]) is None  # no nvidia-smi: nothing to show
    fake = tmp_path / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\necho '{os.getpid()}, 1536'\necho '1, 99999'\necho 'garbage'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    assert proctree.gpu_memory([os.getpid()]) == 1536 * 2**20


def test_a_gpu_whose_cuda_libraries_are_missing_is_not_taken(monkeypatch):
    monkeypatch.setattr(device, "cuda_devices", lambda: 1)  # a GPU the driver sees
    monkeypatch.setattr(device, "missing_cuda_libraries", lambda: ["libcudnn_ops.so.9"])
    assert device.resolve("auto") == device.Device("cpu", 0, "int8")  # every job would fail there
    with pytest.raises(ModelError, match="libcudnn_ops.so.9 cannot be loaded: install nvidia-cublas-cu12"):
        device.resolve("cuda")
    monkeypatch.setattr(device, "missing_cuda_libraries", lambda: [])
    assert device.resolve("auto") == device.Device("cuda", 0, "float16")
    with pytest.raises(ModelError, match="There is no CUDA device 1: CTranslate2 finds 1."):
        device.resolve("cuda", 1)


@pytest.mark.parametrize(
    "name", ["ṱo " * 120, "/" + "a" * 300, "~no-such-user-here/model", "~\x00", "models\x00/x", "a\x00b"]
)
def test_names_no_file_can_have_are_one_sentence_too(name):
    """What schemathesis sent: a name too long for a file, a home of no such user, a NUL."""
    with pytest.raises(ModelError, match="does not exist|not a model name"):
        catalog.resolve(name)


def test_a_media_path_no_file_can_have_is_one_sentence():
    from ttservice.exceptions import MediaError
    from ttservice.transcription import media

    for path in ("x" * 300 + ".wav", "~no-such-user-here/talk.wav"):
        with pytest.raises(MediaError, match="does not exist"):
            media.check_file(path, 10)
