"""Prompt encoding on the demo model's real CLIP tokenizer and text encoder."""
import torch

from modules.conditioning import CHUNK_TOKENS, PromptEncoder, split_into_chunks


def words(n: int) -> str:
    return " ".join(["cat"] * n)  # "cat" is one CLIP token


def test_chunk_boundaries_at_75_and_76_tokens(demo_model):
    enc = demo_model.prompt_encoder
    assert enc.encode(words(75)).embeds.shape[1] == 77
    assert enc.encode(words(76)).embeds.shape[1] == 154
    assert enc.token_count(words(76)) == (76, 150)
    assert enc.encode(words(100)).embeds.shape[1] == 154


def test_break_closes_the_chunk(demo_model):
    chunks = demo_model.prompt_encoder.tokenize("cat BREAK dog")
    assert [len(c.tokens) for c in chunks] == [1, 1]
    assert demo_model.prompt_encoder.encode("cat BREAK dog").chunks == 2


def test_comma_backtrack_moves_the_words_after_the_last_comma():
    tokens = [(list(range(70)) + [9] + [1, 2, 3, 4, 5, 6], 1.0)]  # 9 is the comma, 77 tokens in all
    chunks = split_into_chunks(tokens, comma_token=9, comma_backtrack=20)
    assert len(chunks[0].tokens) == 71 and chunks[0].tokens[-1] == 9
    assert chunks[1].tokens == [1, 2, 3, 4, 5, 6]
    plain = split_into_chunks(tokens, comma_token=9, comma_backtrack=0)
    assert len(plain[0].tokens) == CHUNK_TOKENS


def _manual(model, text: str, clip_skip: int) -> torch.Tensor:
    tok, te = model.tokenizers[0], model.text_encoders[0]
    ids = tok(text, padding="max_length", max_length=77, return_tensors="pt").input_ids
    out = te(ids, output_hidden_states=True)
    if clip_skip == 1:
        return out.last_hidden_state
    return getattr(te, "text_model", te).final_layer_norm(out.hidden_states[-clip_skip])


def test_plain_prompt_and_clip_skip_equal_a_manual_encode(demo_model):
    with torch.no_grad():
        for skip in (1, 2, 3):
            ours = demo_model.prompt_encoder.encode("a red house by the sea", skip).embeds
            assert torch.allclose(ours, _manual(demo_model, "a red house by the sea", skip), atol=1e-6), skip


def test_emphasis_scales_tokens_and_restores_the_mean(demo_model):
    enc = demo_model.prompt_encoder
    plain = enc.encode("a red house").embeds
    weighted = enc.encode("a (red:1.5) house").embeds
    assert torch.allclose(weighted.mean(), plain.mean(), atol=1e-5)
    assert not torch.allclose(weighted, plain)


def test_second_encode_comes_from_the_cache(demo_model):
    enc = PromptEncoder(demo_model.prompt_encoder.slots, torch.device("cpu"), torch.float32, cache_size=2)
    enc.encode("one")
    enc.encode("one")
    assert enc.encoder_calls == 1
    enc.encode("one", clip_skip=2)
    assert enc.encoder_calls == 2  # clip skip is part of the key
    enc.encode("two")
    enc.encode("three")
    enc.encode("one")
    assert enc.encoder_calls == 5  # evicted by the LRU limit of 2
