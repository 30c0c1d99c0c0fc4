"""Conditioning that changes during sampling: editing, alternation, AND, and their use in the loop."""

import pytest
import torch

from modules.jobs.generation import RunSettings, Txt2Img
from modules.jobs.generation_params import GenerationParams
from modules.prompting.conditioning import Conditioning, PromptEncoder
from modules.prompting.step_conditioning import PAD_EMPTY, PAD_LAST, StepBatch, StepConditioning, Timeline
from modules.sampling.guidance import combine


@pytest.fixture
def encoder(demo_model):
    return PromptEncoder(demo_model.prompt_encoder.slots, torch.device("cpu"), torch.float32)


def cond_of(encoder, text):
    return encoder.encode(text).embeds


def test_prompt_editing_switches_after_the_given_step(encoder):
    sc = StepConditioning(encoder, ["a [cat:dog:3] on grass"], [""], steps=10)
    cat, dog = cond_of(encoder, "a cat on grass"), cond_of(encoder, "a dog on grass")
    for step in range(10):
        expected = cat if step <= 3 else dog  # A1111: steps 0..3 use the first text
        assert torch.equal(sc.at(step).cond, expected), step


def test_fractional_when_and_alternation(encoder):
    sc = StepConditioning(encoder, ["[cow|horse] and [sun::0.5]"], [""], steps=10)
    cow_sun, horse_sun = cond_of(encoder, "cow and sun"), cond_of(encoder, "horse and sun")
    cow, horse = cond_of(encoder, "cow and "), cond_of(encoder, "horse and ")
    # A1111 compares its 0-based step counter with the 1-based ends, so step 0 and 1 share a word.
    expected = [cow_sun, cow_sun, horse_sun, cow_sun, horse_sun, cow_sun, horse, cow, horse, cow]
    for step, cond in enumerate(expected):
        assert torch.equal(sc.at(step).cond, cond), step


def test_each_distinct_text_is_encoded_once(encoder):
    StepConditioning(encoder, ["a [cat:dog:5]"] * 3, ["ugly"] * 3, steps=20)
    assert encoder.encoder_calls == 4  # "a cat", "a dog", "ugly", and the empty prompt (pad_cond_uncond)


def test_and_parts_get_their_weights_and_combine_as_composable_diffusion(encoder):
    sc = StepConditioning(encoder, ["a cat :1.2 AND a dog :0.8", "a bird"], ["", "blurry"], steps=4)
    batch = sc.at(0)
    assert batch.images == 2
    assert batch.part_image.tolist() == [0, 0, 1]
    assert torch.allclose(batch.part_weight, torch.tensor([1.2, 0.8, 1.0]))
    assert torch.equal(batch.cond[0], cond_of(encoder, "a cat")[0])
    noise = torch.randn(5, 4, 8, 8)
    guided = combine(noise[:2], noise[2:], batch, 7.0)
    u0, u1 = noise[0], noise[1]
    expected0 = u0 + 7.0 * (1.2 * (noise[2] - u0) + 0.8 * (noise[3] - u0))
    assert torch.allclose(guided[0], expected0, atol=1e-5)
    assert torch.allclose(guided[1], u1 + 7.0 * (noise[4] - u1), atol=1e-5)


def test_prompt_and_negative_keep_their_lengths_unless_a_padding_is_chosen(encoder):
    """A1111: by default cond and uncond of different lengths stay as they are (separate UNet calls);
    pad_cond_uncond pads the shorter with empty-prompt chunks, pad_cond_uncond_v0 fits the negative to the
    prompt with its last vector."""
    long_text = " ".join(["ugly"] * 100)
    batch = StepConditioning(encoder, ["short"], [long_text], steps=4).at(0)
    assert (batch.cond.shape[1], batch.uncond.shape[1]) == (77, 154)
    empty = cond_of(encoder, "")
    same, key = batch.matched("", empty)
    assert same is batch and key is None
    padded, key = batch.matched(PAD_EMPTY, empty)
    assert key == "Pad conds" and padded.cond.shape[1] == 154
    assert torch.equal(padded.cond[:, 77:], empty) and torch.equal(padded.uncond, batch.uncond)
    cut, key = batch.matched(PAD_LAST, empty)
    assert key == "Pad conds v0" and torch.equal(cut.uncond, batch.uncond[:, :77])
    longer = StepConditioning(encoder, [long_text], ["short"], steps=4).at(0)
    fitted, _ = longer.matched(PAD_LAST, empty)
    assert torch.equal(fitted.uncond[:, 77:], longer.uncond[:, 76:77].expand(-1, 77, -1))


def test_and_parts_of_different_lengths_repeat_their_last_vector(encoder):
    """A1111's reconstruct_multicond_batch: a shorter AND part is padded with copies of its own last vector."""
    long_text = " ".join(["tree"] * 100)
    batch = StepConditioning(encoder, [f"a cat AND {long_text}"], [""], steps=4).at(0)
    cat = cond_of(encoder, "a cat")
    assert batch.cond.shape[1] == 154
    assert torch.equal(batch.cond[0, :77], cat[0]) and torch.equal(batch.cond[0, 77:], cat[0, 76:].expand(77, -1))


def test_a_schedules_shorter_texts_end_in_empty_chunks(encoder):
    """A1111 encodes an AND part's schedule as one batch, so a shorter text there gets the empty prompt's chunks
    (not its own last vector, which only pads AND parts against each other)."""
    long_text = " ".join(["tree"] * 100)
    sc = StepConditioning(encoder, [f"a [cat:{long_text}:2]"], [f"[ugly:{long_text}:1]"], steps=4)
    first = sc.at(0)
    assert first.cond.shape[1] == first.uncond.shape[1] == 154
    assert torch.equal(first.cond[0, :77], cond_of(encoder, "a cat")[0])
    assert torch.equal(first.cond[0, 77:], cond_of(encoder, "")[0])
    assert torch.equal(first.uncond[0, 77:], cond_of(encoder, "")[0])
    assert torch.equal(sc.at(3).cond[0], cond_of(encoder, f"a {long_text}")[0])


class _ConstantEncoder:
    """Every text is one chunk of ones (and, with `pooled`, a pooled output of ones, as SDXL's encoders give)."""

    def __init__(self, pooled: bool) -> None:
        self.pooled = pooled

    def encode(self, text, clip_skip=1, options=None, variant=()):
        return Conditioning(torch.ones(1, 77, 4), torch.ones(1, 3) if self.pooled else None)


def test_an_empty_negative_prompt_is_zeros_for_models_with_a_pooled_output():
    """A1111's SDXL (force_zero_negative_prompt): a negative prompt empty at every step is all zeros, text and
    pooled; a negative with text, an empty prompt and the padding chunk are encoded as usual."""
    sc = StepConditioning(_ConstantEncoder(pooled=True), ["", "a cat"], ["", "[:ugly:2]"], steps=4)
    batch = sc.at(0)
    assert not batch.uncond[0].any() and not batch.uncond_pooled[0].any()
    assert batch.uncond[1].all() and batch.cond.all() and batch.cond_pooled.all() and sc.empty_chunk.all()
    assert StepConditioning(_ConstantEncoder(pooled=False), ["a"], [""], steps=4).at(0).uncond.all()


def _first_rows_seen(engine, model, sampler: str) -> list[torch.Tensor]:
    """The first UNet row's text conditioning (the prompt's) at each UNet call of a 6-step "a [red:blue:2] house"."""
    seen = []
    handle = model.unet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["encoder_hidden_states"][0].clone()), with_kwargs=True
    )
    params = GenerationParams(prompt="a [red:blue:2] house", steps=6, width=64, height=64, seed=1, sampler_name=sampler)
    try:
        engine.call("t", lambda ctx: Txt2Img(model, params, ctx, RunSettings()).run(), timeout=120)
    finally:
        handle.remove()
    return seen


def test_the_sampling_loop_uses_the_edited_conditioning_at_the_right_step(engine, demo_model):
    seen = _first_rows_seen(engine, demo_model, "Euler")
    red = demo_model.prompt_encoder.encode("a red house").embeds[0]
    blue = demo_model.prompt_encoder.encode("a blue house").embeds[0]
    assert len(seen) == 6
    assert [torch.equal(s, red) for s in seen] == [True, True, True, False, False, False]
    assert all(torch.equal(s, blue) for s in seen[3:])


def test_step_batch_without_and_is_plain_cfg():
    batch = StepBatch(torch.zeros(1, 77, 8), torch.zeros(1, 77, 8), None, None, torch.tensor([0]), torch.tensor([1.0]))
    noise = torch.randn(2, 4, 4, 4)
    assert torch.allclose(combine(noise[:1], noise[1:], batch, 5.0), noise[:1] + 5.0 * (noise[1:] - noise[:1]))


def test_second_order_samplers_count_prompt_editing_in_model_calls(engine, demo_model):
    """A1111 schedules prompts over model calls: Heun's 6 steps are 12 calls (11 made), so [red:blue:2] switches
    after 3 calls, in the middle of step 2."""
    seen = _first_rows_seen(engine, demo_model, "Heun")
    red = demo_model.prompt_encoder.encode("a red house").embeds[0]
    assert len(seen) == 11
    assert [torch.equal(s, red) for s in seen] == [True] * 3 + [False] * 8


def test_a_hires_pass_times_prompt_editing_over_both_passes(encoder):
    """A1111 ≥ 1.6: in the hires pass a fraction of 1 or more counts in the hires steps, a smaller one is over."""
    red, blue = cond_of(encoder, "a red house"), cond_of(encoder, "a blue house")
    hires = StepConditioning(encoder, ["a [red:blue:1.5] house"], [""], Timeline(20, 10))
    assert [torch.equal(hires.at(step).cond, red) for step in range(10)] == [True] * 6 + [False] * 4
    old = StepConditioning(encoder, ["a [red:blue:1.5] house"], [""], Timeline(20, 10, use_old_scheduling=True))
    assert torch.equal(old.at(0).cond, red) and torch.equal(old.at(2).cond, blue)
