"""The offline CLIP tokenizers match open_clip's own BPE tokenizer."""

import json

import pytest
from open_clip.tokenizer import SimpleTokenizer

from modules.prompting.clip_tokenizer import load_clip_tokenizer, write_vocab_files

PROMPTS = [
    "a photo of a cat",
    "Hello, World! 123 wow!!! ok !",
    "(masterpiece:1.2), an astronaut riding a horse on mars, [highly detailed] <lora:x:0.5>",
    "  Mixed   CASE\twhitespace\nand don't-stop ",
    "café naïve Привет 東京 🚀",
]


@pytest.fixture(scope="module")
def reference() -> SimpleTokenizer:
    return SimpleTokenizer()


@pytest.mark.parametrize("pad_token", ["<|endoftext|>", "!"])
@pytest.mark.parametrize("prompt", PROMPTS)
def test_ids_match_open_clip(pad_token, prompt, reference):
    tokenizer = load_clip_tokenizer(pad_token)
    assert tokenizer(prompt).input_ids == [49406, *reference.encode(prompt), 49407]


@pytest.mark.parametrize(("pad_token", "pad_id"), [("<|endoftext|>", 49407), ("!", 0)])
def test_special_ids_and_padding(pad_token, pad_id):
    tokenizer = load_clip_tokenizer(pad_token)
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (49406, 49407, pad_id)
    assert len(tokenizer) == 49408
    assert tokenizer.model_max_length == 77
    ids = tokenizer("a cat", padding="max_length", max_length=tokenizer.model_max_length).input_ids
    assert ids == [49406, 320, 2368, 49407] + [pad_id] * 73


def test_truncates_to_77():
    tokenizer = load_clip_tokenizer()
    ids = tokenizer("cat " * 200, truncation=True, max_length=tokenizer.model_max_length).input_ids
    assert len(ids) == 77 and ids[0] == 49406 and ids[-1] == 49407


def test_cached_per_pad_token():
    assert load_clip_tokenizer("!") is load_clip_tokenizer("!")
    assert load_clip_tokenizer("!") is not load_clip_tokenizer("<|endoftext|>")


def test_rejects_unknown_pad_token():
    with pytest.raises(ValueError):
        load_clip_tokenizer("<pad>")


def test_cache_dir_holds_vocab_files(tmp_path, reference):
    tokenizer = load_clip_tokenizer("!", cache_dir=tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    merges = (tmp_path / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab) == 49408 and sorted(vocab.values()) == list(range(49408))
    assert vocab["!"] == 0 and vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert merges[0] == "#version: 0.2" and len(merges) == 1 + 48894
    assert tokenizer(PROMPTS[2]).input_ids == [49406, *reference.encode(PROMPTS[2]), 49407]


def test_vocab_equals_open_clip_encoder(tmp_path, reference):
    vocab = json.loads((write_vocab_files(tmp_path) / "vocab.json").read_text(encoding="utf-8"))
    expected = dict(reference.encoder)
    expected["<|startoftext|>"] = expected.pop("<start_of_text>")
    expected["<|endoftext|>"] = expected.pop("<end_of_text>")
    assert vocab == expected


def test_existing_vocab_files_are_reused(tmp_path):
    write_vocab_files(tmp_path)
    stamp = (tmp_path / "vocab.json").stat().st_mtime_ns
    write_vocab_files(tmp_path)
    assert (tmp_path / "vocab.json").stat().st_mtime_ns == stamp
