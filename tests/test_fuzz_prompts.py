"""Fuzzing the prompt language and its encoding: any text, however odd, parses without raising, and
every weight and every encoded vector stays finite.

The runs are derandomized (hypothesis derives its examples from each test's name) and keep no example
database, so CI sees the same examples every time.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modules import prompt_parser as pp
from modules.prompting.conditioning import CHUNK_TOKENS, MAX_EMPHASIS, EncoderOptions, PromptEncoder

# Weights A1111's syntax may carry that are no usable number, or overflow a float.
NASTY_WEIGHTS = [
    "1.2.3",
    "1e309",
    "nan",
    "inf",
    "-inf",
    "-1e309",
    "9" * 400,
    "-" + "9" * 400,
    ".",
    "..",
    "0",
    "-0",
    "1e-400",
    "." + "0" * 400 + "1",
    "3.4e38",
    "-1",
    "",
]
SYNTAX = [
    "(",
    ")",
    "[",
    "]",
    ":",
    "|",
    "\\",
    " AND ",
    "AND",
    " BREAK ",
    "BREAK",
    "<lora:x:",
    ">",
    "<hypernet:y:nan>",
    "[a:b:",
    "[a|b|",
    ":0.5]",
    "::",
    "\n",
    "\t",
    " ",
]
WORDS = ["cat", "a", "e", "ſ", "ß", "\u0301", "\u200b", "\ufeff", "\u3000", "猫", "😀", "\x00", "\ud800", "\U0010ffff"]

fragment = st.one_of(
    st.sampled_from(SYNTAX),
    st.sampled_from(WORDS),
    st.sampled_from(NASTY_WEIGHTS).map(lambda w: f"(a:{w})"),
    st.sampled_from(NASTY_WEIGHTS).map(lambda w: f"[a:b:{w}]"),
    st.sampled_from(NASTY_WEIGHTS).map(lambda w: f" AND b :{w}"),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=6),  # any code point, surrogates too
)
prompts = st.lists(fragment, max_size=30).map("".join)
FUZZ = settings(
    derandomize=True, database=None, deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow]
)


def _finite(value: float) -> bool:
    """A real number that is not inf or nan (BREAK's weight is the int -1, as in A1111)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@FUZZ
@given(prompts, st.integers(1, 150), st.one_of(st.none(), st.integers(1, 60)), st.booleans())
def test_a1111_parser_functions_never_raise(prompt, steps, hires_steps, old_scheduling):
    (schedule,) = pp.get_learned_conditioning_prompt_schedules([prompt], steps, hires_steps, old_scheduling)
    assert schedule and all(isinstance(text, str) and end >= 1 for end, text in schedule)
    for _, text in schedule:
        parts = pp.parse_prompt_attention(text)
        assert parts and all(_finite(weight) for _, weight in parts)
    indexes, texts, _ = pp.get_multicond_prompt_list([prompt])
    assert len(indexes[0]) >= 1 and all(_finite(weight) for _, weight in indexes[0])
    assert all(isinstance(text, str) for text in texts)
    stripped, _ = pp.extract_extra_networks(prompt)
    assert len(stripped) <= len(prompt)


@FUZZ
@given(prompts, st.integers(1, 60))
def test_parse_prompt_weights_are_finite(prompt, steps):
    parsed = pp.parse_prompt(prompt, steps)
    assert parsed.subprompts
    for sub in parsed.subprompts:
        assert _finite(sub.weight)
        for entry in sub.schedule:
            assert all(_finite(float(weight)) for _, weight in pp.parse_prompt_attention(entry.text))


@pytest.mark.parametrize("weight", NASTY_WEIGHTS)
def test_nasty_emphasis_and_and_weights_parse_to_finite_numbers(weight):
    for text, value in pp.parse_prompt_attention(f"x (a:{weight}) [b] ((c:{weight}))"):
        assert _finite(value), (text, value)
    indexes, _, _ = pp.get_multicond_prompt_list([f"a :{weight} AND b:{weight}"])
    assert all(_finite(value) for _, value in indexes[0])


@pytest.fixture(scope="module")
def half_encoder(demo_model) -> PromptEncoder:
    """The demo model's text encoder, handing out float16 conditioning as it does on a GPU."""
    return PromptEncoder(demo_model.prompt_encoder.slots, torch.device("cpu"), torch.float16)


def _check_encoding(encoder: PromptEncoder, prompt: str, options: EncoderOptions, clip_skip: int = 1) -> None:
    chunks, _ = encoder.tokenize(prompt, options)
    assert all(len(chunk.tokens) <= CHUNK_TOKENS for chunk in chunks)
    assert all(_finite(float(w)) and abs(w) <= 1.8e308 for chunk in chunks for w in chunk.weights)
    embeds = encoder.encode(prompt, clip_skip, options).embeds
    assert embeds.shape[1] == max(1, len(chunks)) * (CHUNK_TOKENS + 2)
    assert bool(torch.isfinite(embeds).all()), prompt


emphasis_modes = st.sampled_from(("Original", "No norm", "Ignore", "None"))


@settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(prompts, emphasis_modes, st.integers(1, 3))
def test_encoded_prompts_are_finite(demo_model, half_encoder, prompt, emphasis, clip_skip):
    options = EncoderOptions(emphasis=emphasis)
    _check_encoding(demo_model.prompt_encoder, prompt, options, clip_skip)
    _check_encoding(half_encoder, prompt, options, clip_skip)


HUGE = "9" * 40


@pytest.mark.parametrize(
    "prompt",
    [
        f"(a:{HUGE}) b",
        f"(a:-{HUGE})",
        f"(a:{'9' * 400})",
        f"((((a:{HUGE}))))",
        f"(a:{HUGE}) (b:-{HUGE})",
        "(a:1) (b:-1)",
        "(a:0) (b:0)",
        "a (b:1.2.3) c",
        "(a:1e309) (b:nan) (c:inf) (d:-1e309)",
        "a\ud800b",
        "\x00",
    ],
)
@pytest.mark.parametrize("emphasis", ["Original", "No norm"])
def test_extreme_emphasis_gives_finite_conditioning(demo_model, half_encoder, prompt, emphasis):
    _check_encoding(demo_model.prompt_encoder, prompt, EncoderOptions(emphasis=emphasis))
    _check_encoding(half_encoder, prompt, EncoderOptions(emphasis=emphasis))


def test_huge_weights_act_as_the_largest_allowed_one(demo_model):
    encoder = demo_model.prompt_encoder
    options = EncoderOptions(emphasis="No norm")
    capped = encoder.encode(f"a (red:{HUGE})", options=options).embeds
    largest = encoder.encode(f"a (red:{MAX_EMPHASIS:g})", options=options).embeds
    assert torch.equal(capped, largest)


@pytest.mark.parametrize(
    "prompt",
    ["cat " * 2500, "(" * 10_000, "[a:" * 3334, "😀" * 10_000, ("(a:" + "9" * 30 + ")") * 300, "a BREAK " * 1250],
)
def test_ten_thousand_character_prompts_encode(demo_model, prompt):
    assert len(prompt) >= 9_900
    _check_encoding(demo_model.prompt_encoder, prompt, EncoderOptions())
    parsed = pp.parse_prompt(prompt, 20)
    assert parsed.subprompts[0].schedule[-1].end_at_step == 20
