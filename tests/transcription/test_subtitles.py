"""Subtitle cues broken at word boundaries (Thai by its word segmenter), and Thai word timings."""

import re

import pytest

from ttservice.jobs import Segment
from ttservice.transcription import export
from ttservice.transcription.subtitles import CueRules, cues, width
from ttservice.words import merge_words, split_words

THAI = (
    "การประชุมคณะกรรมการงบประมาณประจำปีสองพันห้าร้อยหกสิบเจ็ดจะเริ่มขึ้นในวันจันทร์หน้า"
    "เวลาสิบโมงเช้าที่ห้องประชุมใหญ่ชั้นห้าของอาคารสำนักงาน"
)
ENGLISH = (
    "And so my fellow Americans, ask not what your country can do for you, ask what you can do"
    " for your country, and the world will thank you for it."
)


@pytest.mark.parametrize("text", [THAI, ENGLISH, "ประชุม budget meeting วันจันทร์ at 10 o'clock ที่ห้องใหญ่"])
def test_cues_break_at_word_boundaries_within_the_line_and_time_limits(text):
    rules = CueRules()
    segment = Segment(10.0, 24.0, text)
    made = cues([segment], rules)
    assert len(made) >= 2
    boundaries = {0}
    for word in split_words(text):
        boundaries.add(max(boundaries) + len(word))
    at = 0
    for cue in made:
        assert 1 <= len(cue.lines) <= rules.lines
        assert cue.end - cue.start <= rules.cue_seconds + 1e-6
        for line in cue.lines:
            assert width(line) <= rules.line_chars, line
            at = text.index(line, at)
            after = at + len(line)
            assert at in boundaries and (after in boundaries or text[after : after + 1] == " "), line
    assert "".join(line for cue in made for line in cue.lines).replace(" ", "") == text.replace(" ", "")
    assert made[0].start == 10.0 and made[-1].end == 24.0
    assert all(a.end <= b.start + 1e-9 for a, b in zip(made, made[1:], strict=False))


def test_a_thai_line_is_counted_as_it_is_shown_not_by_its_marks():
    assert width("ที่นี่") == 2 and len("ที่นี่") == 6  # two letters, each with a vowel and a tone mark


def test_cue_times_come_from_the_words_when_the_job_has_them():
    words = [
        {"start": 1.0 + i, "end": 1.5 + i, "word": w, "probability": 0.9}
        for i, w in enumerate(f" word{i:02d}" for i in range(14))
    ]
    segment = Segment(1.0, 14.5, "".join(w["word"] for w in words).strip(), words)
    made = cues([segment], CueRules(line_chars=20, lines=1))
    assert [c.lines for c in made][:2] == [("word00 word01 word02",), ("word03 word04 word05",)]
    assert (made[1].start, made[1].end) == (4.0, 6.5)  # word03 starts, word05 ends


def test_a_short_segment_is_one_cue_with_its_own_times():
    [cue] = cues([Segment(0.5, 2.0, "ask not")])
    assert (cue.start, cue.end, cue.lines) == (0.5, 2.0, ("ask not",))


def test_srt_and_vtt_follow_the_rules():
    segments = [Segment(0.0, 14.0, THAI), Segment(14.0, 16.0, "สวัสดีครับ")]
    srt = export.to_srt(segments, CueRules(line_chars=30))
    blocks = srt.strip().split("\n\n")
    assert len(blocks) > 2
    for number, block in enumerate(blocks, 1):
        lines = block.splitlines()
        assert lines[0] == str(number)
        assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", lines[1])
        assert 1 <= len(lines[2:]) <= 2 and all(width(line) <= 30 for line in lines[2:])
    vtt = export.to_vtt(segments, CueRules(line_chars=30))
    assert vtt.startswith("WEBVTT\n\n") and vtt.count(" --> ") == len(blocks)


def test_an_untimed_transcript_is_one_cue():
    text = " ".join([ENGLISH] * 5)
    [cue] = cues([Segment(0.0, 300.0, text, timed=False)])
    assert (cue.start, cue.end) == (0.0, 300.0) and len(cue.lines) > 2
    assert all(width(line) <= 42 for line in cue.lines)


def test_thai_word_timings_are_merged_into_words():
    letters = list("สวัสดีครับ ผมชื่อสมชาย")
    tokens = [
        {"start": i * 0.1, "end": i * 0.1 + 0.1, "word": c, "probability": 0.5 + i / 100}
        for i, c in enumerate(letters)
    ]
    merged = merge_words(tokens)
    assert [w["word"].strip() for w in merged] == [w.strip() for w in split_words("สวัสดีครับ ผมชื่อสมชาย")]
    assert "".join(w["word"] for w in merged) == "สวัสดีครับ ผมชื่อสมชาย"
    first = merged[0]
    assert first["word"] == "สวัสดี" and first["start"] == 0.0 and first["end"] == pytest.approx(0.6)
    assert first["probability"] == 0.5  # the least sure letter's
    assert merged[-1]["end"] == tokens[-1]["end"]


def test_a_token_that_spans_two_words_makes_them_one():
    tokens = [
        {"start": 0.0, "end": 0.4, "word": "สวัส", "probability": 0.9},
        {"start": 0.4, "end": 0.9, "word": "ดีคร", "probability": 0.8},
        {"start": 0.9, "end": 1.2, "word": "ับ", "probability": 0.7},
    ]
    merged = merge_words(tokens)
    assert "".join(w["word"] for w in merged) == "สวัสดีครับ"
    assert merged[0]["start"] == 0.0 and merged[-1]["end"] == 1.2
    assert all(a["end"] <= b["start"] for a, b in zip(merged, merged[1:], strict=False))


def test_a_segment_just_over_the_limits_is_cut_in_even_parts_not_left_with_a_remnant():
    text = "And so my fellow Americans ask not what your country can do for you"
    first, second = cues([Segment(0.0, 7.74, text)])  # 7.74 s: over 7, so two cues
    assert first.lines == ("And so my fellow Americans ask not",)
    assert second.lines == ("what your country can do for you",)
    assert abs((first.end - first.start) - (second.end - second.start)) < 1.0
    [cue] = cues([Segment(0.0, 6.0, text + ", ask what")])
    assert cue.lines == ("And so my fellow Americans ask not what", "your country can do for you, ask what")


def test_english_tokens_in_a_thai_segment_stay_separate_words():
    # Whisper's tokens carry the space before a word; the segmenter's words carry the space after.
    tokens = [" ประ", "ชุม", " the", " budget", " meet", "ing", " ครับ"]
    timed = [{"start": i, "end": i + 1.0, "word": t, "probability": 0.9} for i, t in enumerate(tokens)]
    merged = merge_words(timed)
    assert [w["word"].strip() for w in merged] == ["ประชุม", "the", "budget", "meeting", "ครับ"]
    assert [(w["start"], w["end"]) for w in merged] == [(0, 2), (2, 3), (3, 4), (4, 6), (6, 7)]
