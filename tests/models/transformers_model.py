"""A Transformers-format Whisper for the tests, made from the multilingual test model's own weights.

The CTranslate2 `model.bin` is read (its layout: ctranslate2's specs/model_spec.py `_serialize`),
its fused attention split back into q, k and v, and every tensor written under the name
Transformers gives it, with the `safetensors` library: the files a fine-tune on the hub has.
Converted back by TTService, it must be the same model.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np

CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
TIMESTAMP_ONWARDS = "<|0.00|>"


def read_ct2(path: Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 model.bin, aliases resolved."""
    variables: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:

        def string() -> str:
            (n,) = struct.unpack("<H", f.read(2))
            return f.read(n)[:-1].decode()

        f.read(4)  # binary version
        string()  # spec name
        f.read(4)  # spec revision
        (count,) = struct.unpack("<I", f.read(4))
        for _ in range(count):
            name = string()
            (rank,) = struct.unpack("<B", f.read(1))
            shape = struct.unpack("<" + "I" * rank, f.read(4 * rank))
            (dtype,) = struct.unpack("<B", f.read(1))
            (size,) = struct.unpack("<I", f.read(4))
            variables[name] = np.frombuffer(f.read(size), dtype=CT2_DTYPES[dtype]).reshape(shape)
        (aliases,) = struct.unpack("<I", f.read(4))
        for _ in range(aliases):
            alias = string()
            variables[alias] = variables[string()]
    return variables


def _attention(out: dict, v: dict, ct2: str, hf: str, self_attention: bool) -> None:
    if self_attention:
        q, k, val = np.split(v[f"{ct2}/linear_0/weight"], 3)
        qb, kb, vb = np.split(v[f"{ct2}/linear_0/bias"], 3)
        last = 1
    else:
        q, qb = v[f"{ct2}/linear_0/weight"], v[f"{ct2}/linear_0/bias"]
        k, val = np.split(v[f"{ct2}/linear_1/weight"], 2)
        kb, vb = np.split(v[f"{ct2}/linear_1/bias"], 2)
        last = 2
    assert not kb.any(), "Whisper's k projection has no bias"
    out.update({f"{hf}.q_proj.weight": q, f"{hf}.q_proj.bias": qb, f"{hf}.k_proj.weight": k})
    out.update({f"{hf}.v_proj.weight": val, f"{hf}.v_proj.bias": vb})
    out[f"{hf}.out_proj.weight"] = v[f"{ct2}/linear_{last}/weight"]
    out[f"{hf}.out_proj.bias"] = v[f"{ct2}/linear_{last}/bias"]


def _norm(out: dict, v: dict, ct2: str, hf: str) -> None:
    out[f"{hf}.weight"], out[f"{hf}.bias"] = v[f"{ct2}/gamma"], v[f"{ct2}/beta"]


def _layer(out: dict, v: dict, ct2: str, hf: str, cross: bool) -> None:
    _attention(out, v, f"{ct2}/self_attention", f"{hf}.self_attn", True)
    _norm(out, v, f"{ct2}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm")
    if cross:
        _attention(out, v, f"{ct2}/attention", f"{hf}.encoder_attn", False)
        _norm(out, v, f"{ct2}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm")
    for i, fc in ((0, "fc1"), (1, "fc2")):
        out[f"{hf}.{fc}.weight"] = v[f"{ct2}/ffn/linear_{i}/weight"]
        out[f"{hf}.{fc}.bias"] = v[f"{ct2}/ffn/linear_{i}/bias"]
    _norm(out, v, f"{ct2}/ffn/layer_norm", f"{hf}.final_layer_norm")


def _layers(v: dict, side: str) -> int:
    return len({m[1] for k in v if (m := re.match(rf"{side}/layer_(\d+)/", k))})


def transformers_tensors(v: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for side in ("encoder", "decoder"):
        for i in range(_layers(v, side)):
            _layer(out, v, f"{side}/layer_{i}", f"model.{side}.layers.{i}", cross=side == "decoder")
        out[f"model.{side}.embed_positions.weight"] = v[f"{side}/position_encodings/encodings"]
        _norm(out, v, f"{side}/layer_norm", f"model.{side}.layer_norm")
    for conv in ("conv1", "conv2"):
        out[f"model.encoder.{conv}.weight"] = v[f"encoder/{conv}/weight"]
        out[f"model.encoder.{conv}.bias"] = v[f"encoder/{conv}/bias"]
    out["model.decoder.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    return {name: np.ascontiguousarray(array) for name, array in out.items()}


def make_transformers_model(ct2_folder: Path, folder: Path, tokenizer: str = "json", shards: int = 1) -> Path:
    """Write a Transformers-format Whisper into `folder` from the CTranslate2 one in `ct2_folder`.

    `tokenizer`: "json" (tokenizer.json), "bpe" (vocab.json, merges.txt and the added tokens in
    tokenizer_config.json, as older repos have) or "none". `shards` > 1 writes sharded safetensors
    with their index.
    """
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    variables = read_ct2(ct2_folder / "model.bin")
    tensors = transformers_tensors(variables)
    ct2_config = json.loads((ct2_folder / "config.json").read_text())
    tok = json.loads((ct2_folder / "tokenizer.json").read_text())
    heads = int(variables["encoder/num_heads"])
    enc_layers, dec_layers = _layers(variables, "encoder"), _layers(variables, "decoder")
    vocab_size, width = variables["decoder/embeddings/weight"].shape
    config = {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "d_model": int(width),
        "encoder_layers": enc_layers,
        "encoder_attention_heads": heads,
        "decoder_layers": dec_layers,
        "decoder_attention_heads": int(variables["decoder/num_heads"]),
        "encoder_ffn_dim": int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "num_mel_bins": int(variables["encoder/conv1/weight"].shape[1]),
        "vocab_size": int(vocab_size),
        "max_source_positions": int(variables["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(variables["decoder/position_encodings/encodings"].shape[0]),
        "torch_dtype": "float16",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    ids = {t["content"]: t["id"] for t in tok["added_tokens"]}
    generation = {
        "alignment_heads": ct2_config["alignment_heads"],
        "suppress_tokens": ct2_config["suppress_ids"],
        "begin_suppress_tokens": ct2_config["suppress_ids_begin"],
        "lang_to_id": {t: i for t, i in ids.items() if i in set(ct2_config["lang_ids"])},
        "no_timestamps_token_id": ids["<|notimestamps|>"],
    }
    (folder / "generation_config.json").write_text(json.dumps(generation, indent=2))
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {"feature_extractor_type": "WhisperFeatureExtractor", "feature_size": config["num_mel_bins"]}
        )
    )
    if tokenizer == "json":
        (folder / "tokenizer.json").write_text(json.dumps(tok))
    elif tokenizer == "bpe":
        model = tok["model"]
        (folder / "vocab.json").write_text(json.dumps(model["vocab"]))
        merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
        (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
        decoder = {
            str(t["id"]): {"content": t["content"], "special": t["special"]} for t in tok["added_tokens"]
        }
        (folder / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": decoder}))
    names = sorted(tensors)
    if shards == 1:
        save_file(tensors, str(folder / "model.safetensors"))
        return folder
    weight_map = {}
    for i in range(shards):
        part = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        chosen = names[i::shards]
        save_file({n: tensors[n] for n in chosen}, str(folder / part))
        weight_map.update({n: part for n in chosen})
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    return folder
