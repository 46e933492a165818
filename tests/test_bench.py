"""What the benchmarks compute, where a mistake would quietly skew a figure: Thai error rates,
the share of speech time labelled with the right speaker."""

import pytest

from bench.speakers import right_share
from bench.thai import thai_error_rates, thai_recordings


def test_thai_error_rates_ignore_spacing_case_and_punctuation_but_not_words():
    reference = "สวัสดีครับ ผมชื่อสมชาย วันนี้ประชุมเรื่อง AI"
    assert thai_error_rates(reference, "สวัสดีครับผมชื่อสมชาย  วันนี้ประชุมเรื่อง ai.") == (0.0, 0.0)
    cer, wer = thai_error_rates(reference, "สวัสดีค่ะ ผมชื่อสมชาย วันนี้ประชุมเรื่อง AI")
    assert 0 < cer < 15 and 0 < wer < 25  # one word of a few: ครับ became ค่ะ
    assert thai_error_rates(reference, "") == (100.0, 100.0)
    # the two spellings of sara am (ำ and ํา) are one letter to a reader
    assert thai_error_rates("น้ำ", "น\u0e49\u0e4d\u0e32") == (0.0, 0.0)


def test_thai_recordings_pair_audio_with_its_transcript(tmp_path):
    for name in ("a.wav", "a.txt", "b.mp3", "b.txt", "c.wav", "notes.txt"):
        (tmp_path / name).write_text("ข้อความ" if name.endswith(".txt") else "")
    assert [p.name for p, _ in thai_recordings(tmp_path)] == ["a.wav", "b.mp3"]  # c.wav has no text
    with pytest.raises(FileNotFoundError):
        thai_recordings(tmp_path / "missing")


def test_speech_time_labelled_right_is_counted_under_the_best_mapping_of_labels():
    truth = [(0.0, 4.0, "A"), (5.0, 7.0, "B"), (8.0, 10.0, "A")]
    assert right_share(truth, [[0.0, 4.0, "S2"], [5.0, 7.0, "S1"], [8.0, 10.0, "S2"]]) == 1.0  # names differ
    one = right_share(truth, [[0.0, 10.0, "S1"]])  # everyone one speaker: A's 6 s of 8 right
    assert one == pytest.approx(0.75, abs=0.02)
    assert right_share(truth, [[0.0, 4.0, "S1"], [5.0, 10.0, "S2"]]) == pytest.approx(0.75, abs=0.02)
    assert right_share(truth, []) == 0.0
