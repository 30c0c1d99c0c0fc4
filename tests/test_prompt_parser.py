"""Tests of the prompt language: modules/prompt.lark and modules/prompt_parser.py.

Expected values marked "A1111 docstring" or "A1111 wiki" are copied from AUTOMATIC1111's
documentation of the same functions; the others are worked out by hand in the comments.
"""

from __future__ import annotations

import itertools
import math
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modules import prompt_parser as pp
from modules.prompt_parser import (
    MAX_WEIGHT,
    EmbeddingMatch,
    ExtraNetwork,
    ScheduledText,
    extract_extra_networks,
    find_embeddings,
    get_learned_conditioning_prompt_schedules,
    get_multicond_prompt_list,
    parse_prompt,
    parse_prompt_attention,
)


def schedule(prompt: str, steps: int = 10, *args) -> list:
    return get_learned_conditioning_prompt_schedules([prompt], steps, *args)[0]


def alternating(first: str, second: str, steps: int = 10) -> list:
    return [[step, first if step % 2 else second] for step in range(1, steps + 1)]


# ---- Prompt editing and alternation ----------------------------------------------------------

A1111_SCHEDULES = [  # A1111 docstring of get_learned_conditioning_prompt_schedules, 10 steps
    ("test", [[10, "test"]]),
    ("a [b:3]", [[3, "a "], [10, "a b"]]),
    ("a [b: 3]", [[3, "a "], [10, "a b"]]),
    ("a [[[b]]:2]", [[2, "a "], [10, "a [[b]]"]]),
    ("[(a:2):3]", [[3, ""], [10, "(a:2)"]]),
    ("a [b : c : 1] d", [[1, "a b  d"], [10, "a  c  d"]]),
    ("a[b:[c:d:2]:1]e", [[1, "abe"], [2, "ace"], [10, "ade"]]),
    ("a [unbalanced", [[10, "a [unbalanced"]]),
    ("a [b:.5] c", [[5, "a  c"], [10, "a b c"]]),
    # The docstring expects [[5, 'a  c'], [10, 'a {b|d{ c']] here, marked "not handling
    # this right now": A1111's code returns the prompt as it is, as the `|` is outside any
    # alternation.  This follows the code.
    ("a [{b|d{:.5] c", [[10, "a [{b|d{:.5] c"]]),
    ("((a][:b:c [d:3]", [[3, "((a][:b:c "], [10, "((a][:b:c d"]]),
    ("[a|(b:1.1)]", alternating("a", "(b:1.1)")),
    ("[fe|]male", alternating("female", "male")),
    ("[fe|||]male", [[step, "female" if step % 4 == 1 else "male"] for step in range(1, 11)]),
]


@pytest.mark.parametrize("prompt, expected", A1111_SCHEDULES)
def test_a1111_docstring_schedules(prompt, expected):
    assert schedule(prompt) == expected


@pytest.mark.parametrize(
    "prompt, expected",
    [  # A1111 docstring, hires pass of 10 after 10
        ("a [b:.5] c", [[10, "a b c"]]),
        ("a [b:1.5] c", [[5, "a  c"], [10, "a b c"]]),
    ],
)
def test_a1111_docstring_hires_schedules(prompt, expected):
    assert schedule(prompt, 10, 10) == expected


def test_a1111_wiki_prompt_editing_example():
    prompt = (
        "fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75]"
        "[ in foreground::0.6][: in background:0.25] [shoddy:masterful:0.5]"
    )
    assert schedule(prompt, 100) == [  # A1111 wiki and source comment
        [25, "fantasy landscape with a mountain and an oak in foreground shoddy"],
        [50, "fantasy landscape with a lake and an oak in foreground in background shoddy"],
        [60, "fantasy landscape with a lake and an oak in foreground in background masterful"],
        [75, "fantasy landscape with a lake and an oak in background masterful"],
        [100, "fantasy landscape with a lake and a christmas tree in background masterful"],
    ]


def test_a1111_wiki_step_number_and_alternation():
    assert schedule("a [fantasy:cyberpunk:16] landscape", 20) == [
        [16, "a fantasy landscape"],
        [20, "a cyberpunk landscape"],
    ]
    assert schedule("[cow|horse] in a field", 4) == [
        [1, "cow in a field"],
        [2, "horse in a field"],
        [3, "cow in a field"],
        [4, "horse in a field"],
    ]


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("[a:b:0.3]", [[3, "a"], [10, "b"]]),  # below 1: a fraction of the steps
        ("[a:b:3.]", [[10, "a"]]),  # a decimal point makes 3. a fraction: 300 %
        ("[a:b:1e3]", [[10, "a"]]),  # past the last step: never switches
        ("[a:b:1e309]", [[10, "a"]]),  # inf (A1111 raises OverflowError here)
        ("[a:b:-1e309]", [[10, "b"]]),  # -inf: "after" from the first step
        ("[a:b:-1]", [[10, "b"]]),
        ("[a:b:0]", [[10, "b"]]),
        ("[a:b:+2]", [[2, "a"], [10, "b"]]),
        ("[a::2]", [[2, "a"], [10, ""]]),  # [from::when] removes
        ("[:b:2]", [[2, ""], [10, "b"]]),
        ("[a:b: 2 ]", [[2, "a"], [10, "b"]]),  # spaces around `when`
        ("[a:b:c:2]", [[10, "[a:b:c:2]"]]),  # three parts: no construct, literal
        ("[a:b]", [[10, "[a:b]"]]),  # no `when`
        ("[a:b:2 3]", [[10, "[a:b:2 3]"]]),
        ("[(a:b):c:2]", [[2, "(a:b)"], [10, "c"]]),  # emphasis inside editing is copied
        ("[a|[b|c]]", alternating("a", "c")),  # nested alternation follows the same step
        ("[a|b:2]", [[10, "[a|b:2]"]]),  # alternation takes no `when`
        ("[a:[b|c]:2]", [[1, "a"], [2, "a"], *alternating("b", "c")[2:]]),
    ],
)
def test_editing_forms(prompt, expected):
    assert schedule(prompt) == expected


@pytest.mark.parametrize(
    "prompt",
    [
        "a|b",  # `|` outside alternation: A1111's grammar fails, the prompt is literal
        "[a:1] | b",  # ... even with a well-formed edit elsewhere
        "[a|b",  # unclosed alternation leaves its `|` outside
        "[a:1] \\",  # a backslash escaping nothing
        "[a:1] \\\nb",  # a backslash escaping a newline
    ],
)
def test_unparsable_prompts_are_literal(prompt):
    assert schedule(prompt) == [[10, prompt]]


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("\\[a:1]", [[10, "\\[a:1]"]]),  # escaped bracket
        ("[a\\:1]", [[10, "[a\\:1]"]]),  # escaped colon is text: `[text]` emphasis
        ("[a\\|b]", [[10, "[a\\|b]"]]),  # escaped pipe: no alternation, no failure
        ("(([a:1]", [[1, "(("], [10, "((a"]]),  # stray openers stay, the edit is read
        ("[a:1]]) x", [[1, "]) x"], [10, "a]) x"]]),
    ],
)
def test_escapes_and_stray_brackets(prompt, expected):
    assert schedule(prompt) == expected


def test_construct_touching_stray_brackets_is_read():
    # Documented difference: A1111's Earley grammar reads `[a:1]::` as literal text (with
    # Lark 1.3; Lark 1.1.2 also drops `[a:1]:`).  A well-formed construct is read here.
    assert schedule("[a:1]::") == [[1, "::"], [10, "a::"]]


def test_scheduling_variants():
    assert schedule("[a:b:1.5]", 10) == [[10, "a"]]  # 150 % of the steps
    assert schedule("[a:b:1.5]", 10, None, True) == [[1, "a"], [10, "b"]]  # old: step 1.5 -> 1
    assert schedule("[a:b:.5]", 10, 20, True) == [[5, "a"], [10, "b"]]  # old ignores hires
    assert schedule("[a:b:15]", 10, 20) == [[5, "a"], [20, "b"]]  # hires: 15 - 10 steps


def test_duplicate_prompts_and_fresh_lists():
    first, second = get_learned_conditioning_prompt_schedules(["a [b:3]", "a [b:3]"], 10)
    assert first == second == [[3, "a "], [10, "a b"]]
    first[0][1] = "changed"  # callers may change the lists; the cache must not see it
    assert schedule("a [b:3]") == [[3, "a "], [10, "a b"]]


def test_deep_nesting_does_not_overflow():
    depth = 3000
    prompt = "[" * depth + "a:1" + "]" * depth  # an edit inside 2999 pairs of [ ]
    shell = "[" * (depth - 1), "]" * (depth - 1)
    assert schedule(prompt) == [[1, shell[0] + shell[1]], [10, shell[0] + "a" + shell[1]]]
    assert schedule("(" * 5000 + "[a:1]") == [[1, "(" * 5000], [10, "(" * 5000 + "a"]]


# ---- Emphasis --------------------------------------------------------------------------------

A1111_ATTENTION = [  # A1111 docstring of parse_prompt_attention
    ("normal text", [["normal text", 1.0]]),
    ("an (important) word", [["an ", 1.0], ["important", 1.1], [" word", 1.0]]),
    ("(unbalanced", [["unbalanced", 1.1]]),
    ("\\(literal\\]", [["(literal]", 1.0]]),
    ("(unnecessary)(parens)", [["unnecessaryparens", 1.1]]),
    (
        "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
        [
            ["a ", 1.0],
            ["house", 1.5730000000000004],
            [" ", 1.1],
            ["on", 1.0],
            [" a ", 1.1],
            ["hill", 0.55],
            [", sun, ", 1.1],
            ["sky", 1.4641000000000006],
            [".", 1.1],
        ],
    ),
]


@pytest.mark.parametrize("text, expected", A1111_ATTENTION)
def test_a1111_docstring_attention(text, expected):
    assert parse_prompt_attention(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [  # A1111 wiki cheat sheet
        ("a (word)", [["a ", 1.0], ["word", 1.1]]),
        ("a ((word))", [["a ", 1.0], ["word", 1.1 * 1.1]]),
        ("a [word]", [["a ", 1.0], ["word", 1 / 1.1]]),
        ("a (word:1.5)", [["a ", 1.0], ["word", 1.5]]),
        ("a (word:0.25)", [["a ", 1.0], ["word", 0.25]]),
        ("a \\(word\\)", [["a (word)", 1.0]]),
        ("anime_\\(character\\)", [["anime_(character)", 1.0]]),
    ],
)
def test_a1111_wiki_emphasis(text, expected):
    assert parse_prompt_attention(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a) b] c", [["a) b] c", 1.0]]),  # stray closers are text
        ("a:1.5) b", [["a:1.5) b", 1.0]]),  # `:1.5)` with no `(` is text
        ("(a:1.5", [["a:1.5", 1.1]]),  # no `)`: no weight, ×1.1 to the end
        ("(a: 1.5 )", [["a", 1.5]]),
        ("(a:-1)", [["a", -1.0]]),
        ("(a:b:2)", [["a:b", 2.0]]),  # only the last `:number)` is a weight
        ("[a:2]", [["a:2", 1 / 1.1]]),  # [ ] takes no weight
        ("\\\\", [["\\", 1.0]]),
        ("a\\b", [["ab", 1.0]]),  # a lone backslash is dropped
        ("(a:1.2.3)", [["a:1.2.3", 1.1]]),  # not a number: text (A1111 raises)
        ("(a:1e309)", [["a:1e309", 1.1]]),  # no exponents in weights: text
        ("(a:nan)", [["a:nan", 1.1]]),
        ("", [["", 1.0]]),
        ("[a (b] c)", [["a ", 1 / 1.1], ["b", 1 / 1.1 * 1.1], [" c", 1.1]]),  # ( ) and [ ] cross
        ("(a [b (c", [["a ", 1.1], ["b ", 1.1 * (1 / 1.1)], ["c", 1.1 * 1.1 * (1 / 1.1)]]),  # ( first, then [
    ],
)
def test_emphasis_edge_cases(text, expected):
    assert parse_prompt_attention(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a BREAK b", [["a", 1.0], ["BREAK", -1], ["b", 1.0]]),  # BREAK takes its spaces
        ("BREAK", [["", 1.0], ["BREAK", -1], ["", 1.0]]),  # A1111 keeps empty pieces
        ("a\nBREAK,b", [["a", 1.0], ["BREAK", -1], [",b", 1.0]]),
        ("a break b", [["a break b", 1.0]]),  # upper case only
        ("aBREAK BREAKfast", [["aBREAK BREAKfast", 1.0]]),  # whole word only
        ("(a BREAK b)", [["a", 1.1], ["BREAK", -1 * 1.1], ["b", 1.1]]),  # A1111 weighs it too
    ],
)
def test_break(text, expected):
    assert parse_prompt_attention(text) == expected


def test_break_marker_is_the_integer_minus_one():
    marker = parse_prompt_attention("a BREAK b")[1]
    assert marker == ["BREAK", -1] and type(marker[1]) is int


@pytest.mark.parametrize(
    "text",
    [
        "(a:" + "9" * 400 + ")",  # float() gives inf
        "(" * 10_000 + "a",  # 1.1 ** 10000 overflows
        "(" * 8000 + "a" + ")" * 8000 + ":0)",  # would be inf * 0 = nan
    ],
)
def test_huge_weights_are_clamped(text):
    weights = [weight for _, weight in parse_prompt_attention(text)]
    assert weights and all(math.isfinite(weight) for weight in weights)
    assert max(map(abs, weights)) in (MAX_WEIGHT, 0.0)


# ---- AND, extra networks, prompt matrix, embeddings -----------------------------------------


def test_a1111_readme_composable_diffusion():
    indexes, flat, positions = get_multicond_prompt_list(["a cat :1.2 AND a dog AND a penguin :2.2"])
    assert indexes == [[(0, 1.2), (1, 1.0), (2, 2.2)]]
    assert flat == ["a cat", " a dog", " a penguin"]  # text keeps leading spaces
    assert positions == {"a cat": 0, " a dog": 1, " a penguin": 2}


def test_multicond_shares_texts_between_prompts():
    indexes, flat, _ = get_multicond_prompt_list(["a AND b", "b AND c:0.5", "a"])
    assert flat == ["a", " b", "b", " c"]
    assert indexes == [[(0, 1.0), (1, 1.0)], [(2, 1.0), (3, 0.5)], [(0, 1.0)]]


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("ANDROID and ANDY", [("ANDROID and ANDY", 1.0)]),  # upper case, whole word only
        ("a AND", [("a", 1.0), ("", 1.0)]),
        ("(a AND b)", [("(a", 1.0), (" b)", 1.0)]),  # AND splits even inside brackets
        ("x :-0.5", [("x", -0.5)]),
        ("x:.5 ", [("x", 0.5)]),
        ("x: 2.", [("x", 2.0)]),
        ("x:1.2.3", [("x:1.2.3", 1.0)]),
        ("(x:1.2)", [("(x:1.2)", 1.0)]),  # emphasis is no sub-prompt weight
        ("x:" + "9" * 400, [("x", MAX_WEIGHT)]),
    ],
)
def test_subprompt_weights(prompt, expected):
    indexes, flat, _ = get_multicond_prompt_list([prompt])
    assert [(flat[index], weight) for index, weight in indexes[0]] == expected


@pytest.mark.parametrize(
    "prompt, text, networks",
    [
        (
            "a <lora:foo:0.8> cat <hypernet:bar>",
            "a  cat ",
            (ExtraNetwork("lora", "foo", ("0.8",)), ExtraNetwork("hypernet", "bar")),
        ),
        ("<lora:foo:0.8:0.5>", "", (ExtraNetwork("lora", "foo", ("0.8", "0.5")),)),
        ("<not a tag> <lora:> a < b", "<not a tag> <lora:> a < b", ()),
        ("<<lora:a:1>lora:b:1>", "<lora:b:1>", (ExtraNetwork("lora", "a", ("1",)),)),  # no rescan
        ("[<lora:x:1>:5]", "[:5]", (ExtraNetwork("lora", "x", ("1",)),)),
    ],
)
def test_extra_networks(prompt, text, networks):
    assert extract_extra_networks(prompt) == (text, networks)


def test_find_embeddings():
    text = "MyStyle, mystyle2 (mystyle:1.2) xmystyle mystyle_v2 (bad-hands-5:0.8)"
    names = ["mystyle", "mystyle2", "bad-hands-5", ""]
    assert find_embeddings(text, names) == [
        EmbeddingMatch("mystyle", 0, 7),  # any case
        EmbeddingMatch("mystyle2", 9, 17),  # the longest name wins
        EmbeddingMatch("mystyle", 19, 26),
        EmbeddingMatch("bad-hands-5", 53, 64),  # not inside xmystyle or mystyle_v2
    ]
    assert find_embeddings(text, []) == []


# ---- The typed API ----------------------------------------------------------------------------


def test_parse_prompt():
    parsed = parse_prompt("a [cat:dog:5] <lora:x:0.5> AND (b) BREAK c :0.5", 10)
    assert parsed.extra_networks == (ExtraNetwork("lora", "x", ("0.5",)),)
    first, second = parsed.subprompts
    assert (first.text, first.weight) == ("a [cat:dog:5]", 1.0)
    assert first.schedule == (ScheduledText(5, "a cat"), ScheduledText(10, "a dog"))
    assert (second.text, second.weight) == (" (b) BREAK c", 0.5)
    # The text after `)` is " BREAK c", which A1111 splits into "" and "c" around BREAK.
    assert parse_prompt_attention(second.schedule[0].text) == [
        [" ", 1.0],
        ["b", 1.1],
        ["", 1.0],
        ["BREAK", -1],
        ["c", 1.0],
    ]


# ---- The grammar ------------------------------------------------------------------------------

FRAGMENTS = [
    "a",
    "b",
    " ",
    "  ",
    "\n",
    "(",
    ")",
    "[",
    "]",
    ":",
    "|",
    "\\",
    "1",
    "0.5",
    ".",
    "-",
    "e3",
    "BREAK",
    " BREAK ",
    "AND",
    " AND ",
    "x y",
    "<",
    ">",
    "<lora:q:1>",
    ":3]",
    "[a:1]",
    "[x|y]",
    "(c:1.5)",
    "ſ",
    "é",
    "\u3000",
]
prompts = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join) | st.text(max_size=80)


@given(prompts)
def test_lexing_covers_text_and_matches_lark(text):
    for start in ("prompt", "networks"):
        tokens = pp._lex(start, text)
        assert "".join(token for _, token, _ in tokens) == text
        lark_tokens = pp._grammar(start).parse(text).children
        assert [(kind, token) for kind, token, _ in tokens] == [(t.type, t.value) for t in lark_tokens]


# ---- Fuzzing ------------------------------------------------------------------------------------


@settings(deadline=None)
@given(prompts, st.integers(1, 150), st.one_of(st.none(), st.integers(1, 40)), st.booleans())
def test_schedules_always_end_at_steps(prompt, steps, hires_steps, old):
    result = schedule(prompt, steps, hires_steps, old)
    last = hires_steps if hires_steps is not None and not old else steps
    ends = [end for end, _ in result]
    assert ends == sorted(set(ends)) and ends[-1] == last and ends[0] >= 1
    assert all(isinstance(text, str) for _, text in result)
    if "[" not in prompt:  # no editing or alternation without a `[`
        assert result == [[last, prompt]]


@given(prompts)
def test_attention_never_raises_and_weights_are_finite(text):
    parts = parse_prompt_attention(text)
    assert parts and all(math.isfinite(weight) for _, weight in parts)
    assert all(a[1] != b[1] for a, b in itertools.pairwise(parts))  # equal runs are merged


plain_text = st.text(min_size=1, max_size=30).filter(lambda text: not re.search(r"[()\[\]:\\]|\bBREAK\b", text))


@given(plain_text)
def test_plain_text_weights(text):
    assert parse_prompt_attention(text) == [[text, 1.0]]
    assert parse_prompt_attention(f"({text})") == [[text, 1.1]]
    assert parse_prompt_attention(f"[{text}]") == [[text, 1 / 1.1]]
    assert parse_prompt_attention(f"({text}:0.7)") == [[text, 0.7]]


@given(prompts)
def test_and_splits_at_whole_words(prompt):
    indexes, _, _ = get_multicond_prompt_list([prompt])
    assert len(indexes[0]) == len(re.split(r"\bAND\b", prompt))
    assert all(math.isfinite(weight) for _, weight in indexes[0])


@settings(deadline=None)
@given(prompts, st.integers(1, 60))
def test_parse_prompt_never_raises(prompt, steps):
    parsed = parse_prompt(prompt, steps)
    for sub in parsed.subprompts:
        assert sub.schedule[-1].end_at_step == steps
        assert all(math.isfinite(weight) for entry in sub.schedule for _, weight in parse_prompt_attention(entry.text))


def _long_prompts() -> list[str]:
    rng = random.Random(1234)
    mixed = ["".join(rng.choice(FRAGMENTS) for _ in range(8000))[:10_000] for _ in range(3)]
    return [
        *mixed,
        "(" * 10_000,
        "[" * 10_000,
        "\\" * 10_000,
        "[a|" * 3334,
        "[a:" * 3334,
        ")" * 5000 + "(" * 5000,
        "(a:1.1)" * 1429,
        "a BREAK " * 1250,
    ]


@settings(deadline=None, max_examples=11, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_long_prompts()))
def test_ten_thousand_character_prompts(prompt):
    assert len(prompt) >= 10_000 - 3
    for entry in parse_prompt(prompt, 30).subprompts:
        assert entry.schedule[-1].end_at_step == 30
        assert all(math.isfinite(weight) for _, weight in parse_prompt_attention(entry.schedule[0].text))
