"""The files faster-whisper reads beside a converted model.bin: the tokenizer (the repo's, or
one built from its byte-level BPE files), CTranslate2's vocabulary, and the feature extractor's
settings (so that nothing is fetched from the hub when a job loads the model)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..exceptions import ModelError

BPE_FILES = ("vocab.json", "merges.txt")
# Whisper's language tokens are the ones between these two.
SOT, TRANSLATE = "<|startoftranscript|>", "<|translate|>"


def available(names) -> bool:
    """Whether these files give a tokenizer: tokenizer.json, or the BPE files it is built from."""
    names = set(names)
    return "tokenizer.json" in names or all(f in names for f in BPE_FILES)


def _added_tokens(folder: Path) -> dict[int, str]:
    """Special and added tokens by id, from whichever of the tokenizer's files has them."""
    found: dict[int, str] = {}
    path = folder / "tokenizer_config.json"
    if path.is_file():
        decoder = json.loads(path.read_text(encoding="utf-8")).get("added_tokens_decoder") or {}
        found.update({int(i): t["content"] for i, t in decoder.items()})
    path = folder / "added_tokens.json"
    if path.is_file():
        found.update({i: t for t, i in json.loads(path.read_text(encoding="utf-8")).items()})
    return found


def tokenizer_json(folder: Path) -> str:
    """The repo's tokenizer.json, or one built with the `tokenizers` library from its byte-level BPE
    files (vocab.json, merges.txt) and added tokens, as Whisper's fast tokenizer is built."""
    if (folder / "tokenizer.json").is_file():
        return (folder / "tokenizer.json").read_text(encoding="utf-8")
    if not all((folder / f).is_file() for f in BPE_FILES):
        raise ModelError("convert.no_tokenizer", folder=str(folder))
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    for token_id, content in sorted(_added_tokens(folder).items()):
        if tokenizer.token_to_id(content) is not None:
            continue
        if token_id != tokenizer.get_vocab_size(with_added_tokens=True):
            raise ModelError("convert.tokens_out_of_order", token=content, folder=str(folder))
        special = not re.fullmatch(r"<\|\d+\.\d\d\|>", content)  # timestamps are plain added tokens
        tokenizer.add_tokens([AddedToken(content, special=special, normalized=not special)])
    return tokenizer.to_str()


def vocabulary(tokenizer: str, size: int) -> list[str]:
    """CTranslate2's vocabulary: every token by id, then Whisper's timestamps up to the model's size."""
    data = json.loads(tokenizer)
    by_id = {i: t for t, i in data["model"]["vocab"].items()}
    by_id.update({t["id"]: t["content"] for t in data.get("added_tokens", [])})
    tokens = [by_id[i] for i in sorted(by_id)][:size]
    tokens += ["<|%.2f|>" % (i * 0.02) for i in range(size - len(tokens))]
    return tokens


def preprocessor(folder: Path, mel_bins: int) -> str:
    """The repo's preprocessor_config.json, or Whisper's with the model's mel bins (80; v3: 128)."""
    path = folder / "preprocessor_config.json"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    return json.dumps(
        {
            "feature_extractor_type": "WhisperFeatureExtractor",
            "feature_size": mel_bins,
            "sampling_rate": 16000,
            "hop_length": 160,
            "chunk_length": 30,
            "n_fft": 400,
            "n_samples": 480000,
            "nb_max_frames": 3000,
            "padding_side": "right",
            "padding_value": 0.0,
            "return_attention_mask": False,
        },
        indent=2,
    )
