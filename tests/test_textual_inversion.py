"""Embeddings from real files in A1111 and diffusers formats, used by name in prompts."""

import torch
from network_files import a1111_embedding, diffusers_embedding, safetensors_embedding, sdxl_embedding

from modules.prompting.conditioning import CHUNK_TOKENS, PromptEncoder
from modules.textual_inversion import EmbeddingDatabase, read_embedding


def test_every_format_is_read(tmp_path):
    vectors = torch.randn(3, 64)
    assert torch.equal(read_embedding(a1111_embedding(tmp_path / "a.pt", vectors)).vectors[64], vectors)
    assert torch.equal(read_embedding(safetensors_embedding(tmp_path / "b.safetensors", vectors)).vectors[64], vectors)
    single = read_embedding(diffusers_embedding(tmp_path / "c.bin", vectors[0]))
    assert single.vectors[64].shape == (1, 64)
    xl = read_embedding(sdxl_embedding(tmp_path / "d.safetensors", torch.randn(2, 768), torch.randn(2, 1280)))
    assert xl.vectors_for([768, 1280]) is not None and xl.vectors_for([64]) is None
    assert len(read_embedding(tmp_path / "a.pt").short_hash) == 12


def test_database_skips_bad_files_and_notices_changes(tmp_path):
    db = EmbeddingDatabase(tmp_path)
    a1111_embedding(tmp_path / "good.pt", torch.randn(2, 64))
    (tmp_path / "bad.pt").write_bytes(b"not a pickle")
    assert db.refresh()
    assert list(db.embeddings) == ["good"] and "bad.pt" in db.errors
    assert not db.refresh()
    safetensors_embedding(tmp_path / "new.safetensors", torch.randn(1, 64))
    assert db.refresh() and set(db.embeddings) == {"good", "new"}
    assert set(db.compatible([64])) == {"good", "new"} and db.compatible([768]) == {}


def _encoder(demo_model, embeddings: dict) -> PromptEncoder:
    enc = PromptEncoder(demo_model.prompt_encoder.slots, torch.device("cpu"), torch.float32)
    enc.set_embeddings({name: [v] for name, v in embeddings.items()}, version=tuple(embeddings))
    return enc


def test_embedding_vectors_replace_the_name_in_the_prompt(demo_model):
    vectors = torch.randn(3, 64)
    enc = _encoder(demo_model, {"mystyle": vectors})
    chunks, used = enc.tokenize("a house in mystyle")
    assert used == ("mystyle",)
    assert len(chunks[0].tokens) == len(enc.tokenize("a house in")[0][0].tokens) + 3
    with_embedding = enc.encode("a house in mystyle")
    assert with_embedding.embeddings_used == ("mystyle",)
    other = _encoder(demo_model, {"mystyle": torch.randn(3, 64)}).encode("a house in mystyle")
    assert not torch.allclose(with_embedding.embeds, other.embeds)  # the vectors themselves matter
    plain = enc.encode("a house in")
    assert torch.allclose(with_embedding.embeds[:, :4], plain.embeds[:, :4], atol=1e-6)  # before it: unchanged
    token_layer = demo_model.text_encoders[0].get_input_embeddings()
    assert not token_layer._forward_hooks and not token_layer._forward_pre_hooks  # the patch was removed


def test_an_embedding_is_never_split_across_chunks(demo_model):
    enc = _encoder(demo_model, {"bigstyle": torch.randn(8, 64)})
    chunks, _ = enc.tokenize(" ".join(["cat"] * 70) + " bigstyle")
    assert [len(c.tokens) for c in chunks] == [70, 8]
    assert enc.encode(" ".join(["cat"] * 70) + " bigstyle").embeds.shape[1] == 2 * (CHUNK_TOKENS + 2)


def test_prompts_naming_unusable_embeddings_get_a_warning(engine, demo_model, tmp_path):
    from modules.jobs.generation import RunSettings, Txt2Img
    from modules.jobs.generation_params import GenerationParams
    from modules.prompting.lora import LoraLibrary
    from modules.prompting.networks import Networks

    a1111_embedding(tmp_path / "wideone.pt", torch.randn(2, 768))  # an SD 1.x embedding: wrong width here
    (tmp_path / "broken.pt").write_bytes(b"junk")
    networks = Networks(EmbeddingDatabase(tmp_path), LoraLibrary(tmp_path / "Lora"))
    params = GenerationParams(prompt="a wideone house, broken style", steps=1, width=64, height=64, seed=1)
    result = engine.call("t", lambda ctx: Txt2Img(demo_model, params, ctx, RunSettings(), networks).run())
    assert any("wideone does not fit" in w for w in result.warnings)
    assert any("broken.pt was skipped" in w for w in result.warnings)
    assert result.images
