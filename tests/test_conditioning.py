"""Prompt encoding on the demo model's real CLIP tokenizer and text encoder."""

import torch

from modules.prompting.conditioning import CHUNK_TOKENS, PromptEncoder, Segment, split_into_chunks


def words(n: int) -> str:
    return " ".join(["cat"] * n)  # "cat" is one CLIP token


def test_chunk_boundaries_at_75_and_76_tokens(demo_model):
    enc = demo_model.prompt_encoder
    assert enc.encode(words(75)).embeds.shape[1] == 77
    assert enc.encode(words(76)).embeds.shape[1] == 154
    assert enc.token_count(words(76)) == (76, 150)
    assert enc.encode(words(100)).embeds.shape[1] == 154


def test_break_closes_the_chunk(demo_model):
    chunks, _ = demo_model.prompt_encoder.tokenize("cat BREAK dog")
    assert [len(c.tokens) for c in chunks] == [1, 1]
    assert demo_model.prompt_encoder.encode("cat BREAK dog").chunks == 2


def test_comma_backtrack_moves_the_words_after_the_last_comma():
    tokens = [Segment([*list(range(70)), 9, 1, 2, 3, 4, 5, 6])]  # 9 is the comma, 77 tokens in all
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


def test_emphasis_modes(demo_model):
    from modules.prompting.conditioning import EncoderOptions

    enc = demo_model.prompt_encoder
    plain = enc.encode("a red house").embeds
    weighted = "a (red:1.5) house"
    no_norm = enc.encode(weighted, options=EncoderOptions(emphasis="No norm")).embeds
    assert torch.allclose(no_norm[:, 2], plain[:, 2] * 1.5)  # BOS, "a", "red": only red is scaled
    assert torch.equal(no_norm[:, 3:], plain[:, 3:])
    original = enc.encode(weighted).embeds
    assert torch.allclose(original, no_norm * (plain.mean() / no_norm.mean()), atol=1e-6)
    assert torch.equal(
        enc.encode(weighted, options=EncoderOptions(emphasis="Ignore")).embeds, enc.encode("a red house").embeds
    )
    literal, _ = enc.tokenize(weighted, EncoderOptions(emphasis="None"))
    assert len(literal[0].tokens) > len(enc.tokenize("a red house")[0][0].tokens)  # brackets are tokens


def test_a_2000_token_prompt_works(demo_model):
    cond = demo_model.prompt_encoder.encode(", ".join(["cat"] * 1000))
    assert cond.chunks >= 2000 // 75 and torch.isfinite(cond.embeds).all()
