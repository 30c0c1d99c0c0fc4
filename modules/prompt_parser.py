"""A1111's prompt language: emphasis, prompt editing, alternation, BREAK, AND, extra networks.

The tokens are defined by the Lark grammar in prompt.lark; this module pairs the brackets
the way AUTOMATIC1111 does, so results equal A1111's.  Nothing here raises on any prompt
text: what A1111 cannot parse stays literal text, as it does there.

A prompt is read in A1111's order:

1. extra-network tags are taken out (`extract_extra_networks`);
2. the text is split at AND into weighted sub-prompts (`get_multicond_prompt_list`);
3. each sub-prompt gets its text per step range (`get_learned_conditioning_prompt_schedules`);
4. each of those texts is split into weighted parts (`parse_prompt_attention`).

`parse_prompt` does all four and returns dataclasses.

One known difference: where a well-formed `[...]` construct directly touches stray
`( ) [ ] :` characters, as in `[a:b:5]))`, A1111's ambiguous Earley grammar sometimes reads
the construct as literal text; which cases depends on the Lark version (1.1.2, which A1111
pins, and 1.3 differ).  Here a well-formed construct is always read.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import NamedTuple

import lark

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1
# Weights are clamped to the finite floats: no nesting or number gives inf or nan.
MAX_WEIGHT = sys.float_info.max

_CACHE_SIZE = 4096
_GRAMMAR = Path(__file__).with_name("prompt.lark")

# The `when` of prompt editing: Lark's SIGNED_NUMBER, with optional spaces around it.
_EDIT_WHEN = re.compile(
    r"\s*([+-]?(?:[0-9]+[eE][+-]?[0-9]+|(?:[0-9]+\.[0-9]*|\.[0-9]+)"
    r"(?:[eE][+-]?[0-9]+)?|[0-9]+))\s*"
)
# The number of an emphasis weight, `(text:1.5)`, as A1111 accepts it.
_EMPHASIS_WEIGHT = re.compile(r"\s*([+-]?[.\d]+)\s*")
# A sub-prompt's text and its optional trailing `:weight`.
_SUBPROMPT_WEIGHT = re.compile(r"(.*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*", re.DOTALL)


# ---- Public types ------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtraNetwork:
    """An extra-network tag: `<lora:name:0.8>` is ExtraNetwork("lora", "name", ("0.8",))."""

    kind: str
    name: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScheduledText:
    """The text a sub-prompt has up to and including step `end_at_step`."""

    end_at_step: int
    text: str


@dataclass(frozen=True)
class PromptSchedule:
    """One AND sub-prompt: its composable-diffusion weight and its text per step range."""

    text: str
    weight: float
    schedule: tuple[ScheduledText, ...]


@dataclass(frozen=True)
class ParsedPrompt:
    """A whole prompt: its AND sub-prompts and the extra networks taken out of it."""

    subprompts: tuple[PromptSchedule, ...]
    extra_networks: tuple[ExtraNetwork, ...]


class EmbeddingMatch(NamedTuple):
    """An embedding name found in a text: text[start:end] is `name`, in any case."""

    name: str
    start: int
    end: int


# ---- Lexing --------------------------------------------------------------------------------

# A token: (terminal name, text, offset).  Plain tuples, as lexing is the hot path.
_Token = tuple[str, str, int]


@cache
def _grammar(start: str) -> lark.Lark:
    """The grammar compiled for one pass, "networks" or "prompt"; built once."""
    return lark.Lark(_GRAMMAR.read_text(encoding="utf-8"), start=start, parser="lalr", lexer="basic")


@cache
def _scanner(start: str) -> re.Pattern:
    """The terminals of a pass as one regex.

    Each pass's rule is a flat sequence of its terminals, and no two terminals match at
    the same place, so scanning gives exactly the tokens of Lark's lexer without the cost
    of a Lark token object each.
    """
    terminals = _grammar(start).terminals
    return re.compile("|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in terminals))


def _lex(start: str, text: str) -> tuple[_Token, ...]:
    return tuple((m.lastgroup, m.group(), m.start()) for m in _scanner(start).finditer(text))


@lru_cache(maxsize=_CACHE_SIZE)
def _tokens(text: str) -> tuple[_Token, ...]:
    return _lex("prompt", text)


# ---- Extra networks ------------------------------------------------------------------------


@lru_cache(maxsize=_CACHE_SIZE)
def extract_extra_networks(prompt: str) -> tuple[str, tuple[ExtraNetwork, ...]]:
    """The prompt without its `<kind:name:args...>` tags, and those tags in order."""
    if "<" not in prompt:
        return prompt, ()
    text, networks = [], []
    for terminal, token, _ in _lex("networks", prompt):
        if terminal == "EXTRA_NETWORK":
            kind, _, args = token[1:-1].partition(":")
            name, *rest = args.split(":")
            networks.append(ExtraNetwork(kind, name, tuple(rest)))
        else:
            text.append(token)
    return "".join(text), tuple(networks)


# ---- Prompt editing and alternation: reading the brackets -------------------------------------


class _Edit(NamedTuple):
    """`[before:after:when]`; `before` is None for `[after:when]`."""

    before: tuple | None
    after: tuple
    when: str


class _Alternate(NamedTuple):
    """`[a|b|c]`: option (step - 1) % len(options) is used at each step."""

    options: tuple


class _Parsed(NamedTuple):
    items: tuple  # str, _Edit and _Alternate; emphasis stays literal text
    pipes: tuple  # offsets of the `|` outside any alternation
    escapes_ok: bool  # False when a backslash escapes nothing or a newline


# A symbol: (kind, text, offset); kind is "TEXT" or a bracket, COLON or PIPE terminal.
_Symbol = tuple[str, str, int]
_OPEN = ("LPAR", "LSQB")
_PLAIN = frozenset(("TEXT", "AND", "BREAK", "ESCAPED"))
_MORE = object()  # a construct goes on after the delimiter just read


def _symbols(tokens: tuple[_Token, ...]) -> tuple[list[_Symbol], bool]:
    """Tokens as editing reads them: a backslash makes the next character plain text."""
    symbols: list[_Symbol] = []
    escaping, ok = False, True
    for kind, text, start in tokens:
        if escaping:
            escaping, ok = False, ok and text[0] != "\n"
            symbols[-1] = ("TEXT", "\\" + text, symbols[-1][2])
        elif kind == "BACKSLASH":
            escaping = True
            symbols.append(("TEXT", "\\", start))
        else:
            symbols.append(("TEXT" if kind in _PLAIN else kind, text, start))
    return symbols, ok and not escaping


def _append(items: list, item: str | _Edit | _Alternate) -> None:
    if isinstance(item, str) and items and isinstance(items[-1], str):
        items[-1] += item
    else:
        items.append(item)


def _edit_when(symbols: list[_Symbol], colon: int) -> tuple[str, int] | None:
    """(when, index after `]`) when the `:` at `colon` is followed by `number]`."""
    end = colon + 1
    while end < len(symbols) and symbols[end][0] == "TEXT":
        end += 1
    if end == len(symbols) or symbols[end][0] != "RSQB":
        return None
    match = _EDIT_WHEN.fullmatch("".join(symbol[1] for symbol in symbols[colon + 1 : end]))
    return (match.group(1), end + 1) if match else None


class _Bracket:
    """A `(` or `[` being read: its parts between delimiters so far."""

    def __init__(self, index: int, opener: str) -> None:
        self.index, self.opener = index, opener
        self.state = "first"  # "first", "second" (after a colon) or "alternate"
        self.parts: list[list] = []
        self.items: list = []

    def delimiter(self, symbols: list[_Symbol], pos: int):
        """Read the delimiter at `pos`: _MORE, None (malformed) or (items, index after)."""
        kind = symbols[pos][0] if pos < len(symbols) else "END"
        first = self.state == "first"
        if self.opener == "LPAR":  # (a) or (a:b): emphasis
            if kind == "RPAR":
                return self._literal(")"), pos + 1
            return self._next("second") if kind == "COLON" and first else None
        if kind == "PIPE" and self.state != "second":
            return self._next("alternate")
        if kind == "RSQB" and first:
            return self._literal("]"), pos + 1
        if kind == "RSQB" and self.state == "alternate":
            options = tuple(tuple(part) for part in [*self.parts, self.items])
            return [_Alternate(options)], pos + 1
        if kind == "COLON" and self.state != "alternate":
            when = _edit_when(symbols, pos)
            if when is not None:
                before = tuple(self.parts[0]) if self.parts else None
                return [_Edit(before, tuple(self.items), when[0])], when[1]
            return self._next("second") if first else None
        return None

    def _next(self, state: str) -> object:
        self.parts.append(self.items)
        self.items, self.state = [], state
        return _MORE

    def _literal(self, closer: str) -> list:
        """Emphasis keeps its brackets: editing copies it as written."""
        items = ["(" if self.opener == "LPAR" else "["]
        for part in self.parts:
            for item in [*part, ":"]:
                _append(items, item)
        for item in [*self.items, closer]:
            _append(items, item)
        return items


def _construct(symbols: list[_Symbol], start: int, memo: dict) -> tuple[list, int] | None:
    """Read the construct opening at `start`: (its items, index after it), or None.

    Inside a construct every bracket must itself open a well-formed construct.  Iterative,
    so deep nesting cannot overflow the stack; `memo` keeps each opening's result.
    """
    if start in memo:
        return memo[start]
    stack = [_Bracket(start, symbols[start][0])]
    pos = start + 1
    while True:
        kind = symbols[pos][0] if pos < len(symbols) else "END"
        if kind == "TEXT":
            _append(stack[-1].items, symbols[pos][1])
            pos += 1
            continue
        if kind in _OPEN and pos not in memo:
            stack.append(_Bracket(pos, kind))
            pos += 1
            continue
        if kind in _OPEN:
            done = memo[pos]
        else:
            done = stack[-1].delimiter(symbols, pos)
            if done is _MORE:
                pos += 1
                continue
            memo[stack.pop().index] = done
            if not stack:
                return done
        if done is None:
            for bracket in stack:
                memo[bracket.index] = None
            return None
        items, pos = done
        for item in items:
            _append(stack[-1].items, item)


@lru_cache(maxsize=_CACHE_SIZE)
def _parse(text: str) -> _Parsed:
    """The editing and alternation constructs of `text`, found as A1111's parser finds them.

    A bracket that opens no well-formed construct is literal text, and so are stray
    `)`, `]` and `:`.  A `|` outside any alternation makes A1111's parser fail.
    """
    symbols, escapes_ok = _symbols(_tokens(text))
    items: list = []
    pipes: list[int] = []
    memo: dict = {}
    pos = 0
    while pos < len(symbols):
        kind, symbol, start = symbols[pos]
        done = _construct(symbols, pos, memo) if kind in _OPEN else None
        if done is not None:
            for item in done[0]:
                _append(items, item)
            pos = done[1]
            continue
        if kind == "PIPE":
            pipes.append(start)
        _append(items, symbol)
        pos += 1
    return _Parsed(tuple(items), tuple(pipes), escapes_ok)


# ---- Prompt editing and alternation: schedules ---------------------------------------------


def _constructs(items: tuple) -> Iterator[_Edit | _Alternate]:
    """Every editing and alternation construct in `items`, nested ones included."""
    pending = [items]
    while pending:
        for item in pending.pop():
            if isinstance(item, _Edit):
                yield item
                pending.extend(part for part in (item.before, item.after) if part)
            elif isinstance(item, _Alternate):
                yield item
                pending.extend(item.options)


def _edit_step(when: str, steps: int, int_offset: int, float_offset: float, use_old_scheduling: bool) -> float:
    """The last step that uses `before`, as A1111 computes it (at most `steps`)."""
    value = float(when)
    if use_old_scheduling:
        value = value * steps if value < 1 else value
    elif "." in when:
        value = (value - float_offset) * steps
    else:
        value = value - int_offset
    if value >= steps:
        return steps
    return int(value) if math.isfinite(value) else value  # -inf, or nan at 0 steps


def _render(items: tuple, step: int, whens: dict[str, float]) -> str:
    """The text of `items` at `step`."""
    out: list[str] = []
    stack = [iter(items)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, str):
                out.append(item)
                continue
            if isinstance(item, _Edit):
                chosen = (item.before or ()) if step <= whens[item.when] else item.after
            else:
                chosen = item.options[(step - 1) % len(item.options)]
            stack.append(iter(chosen))
            break
        else:
            stack.pop()
    return "".join(out)


@lru_cache(maxsize=_CACHE_SIZE)
def _schedule(
    prompt: str, base_steps: int, hires_steps: int | None, use_old_scheduling: bool
) -> tuple[tuple[int, str], ...]:
    if hires_steps is None or use_old_scheduling:
        steps, int_offset, float_offset = base_steps, 0, 0.0
    else:
        steps, int_offset, float_offset = hires_steps, base_steps, 1.0
    parsed = _parse(prompt)
    if parsed.pipes or not parsed.escapes_ok:
        return ((steps, prompt),)
    ends = {steps}
    whens: dict[str, float] = {}
    constructs = list(_constructs(parsed.items))
    for construct in constructs:
        if isinstance(construct, _Alternate):
            ends.update(range(1, steps + 1))
        elif construct.when not in whens:
            end = _edit_step(construct.when, steps, int_offset, float_offset, use_old_scheduling)
            whens[construct.when] = end
            if end >= 1:
                ends.add(end)
    # A step's text depends only on the branch each construct takes, so render each combination once.
    ordered = sorted(ends)
    columns = [
        [end <= whens[c.when] for end in ordered]
        if isinstance(c, _Edit)
        else [(end - 1) % len(c.options) for end in ordered]
        for c in constructs
    ]
    rendered: dict[tuple, str] = {}
    schedule = []
    for end, choice in zip(ordered, zip(*columns) if columns else [()] * len(ordered)):
        text = rendered.get(choice)
        if text is None:
            text = rendered[choice] = _render(parsed.items, end, whens)
        schedule.append((end, text))
    return tuple(schedule)


def get_learned_conditioning_prompt_schedules(
    prompts: Iterable[str], base_steps: int, hires_steps: int | None = None, use_old_scheduling: bool = False
) -> list[list[list]]:
    """For each prompt, its `[end_at_step, text]` pairs, as A1111's function of this name.

    `a [b:3]` at 10 steps gives `[[3, 'a '], [10, 'a b']]`.  With `hires_steps`, the
    schedule is the hires pass's: whole-number steps count on from `base_steps`, and
    fractions run from 1.0 (start of the hires pass) to 2.0.  `use_old_scheduling` reads
    a `when` below 1 as a fraction and ignores the hires pass, as A1111 did before 1.6.
    """
    schedules: dict[str, list[list]] = {}
    for prompt in prompts:
        if prompt not in schedules:
            schedules[prompt] = [
                [end, text] for end, text in _schedule(prompt, base_steps, hires_steps, use_old_scheduling)
            ]
    return [schedules[prompt] for prompt in prompts]


# ---- Emphasis ------------------------------------------------------------------------------


def _clamp(weight: float) -> float:
    return max(-MAX_WEIGHT, min(MAX_WEIGHT, weight))


def _multiply(weights: list[float], start: int, multiplier: float) -> None:
    for index in range(start, len(weights)):
        weights[index] = _clamp(weights[index] * multiplier)


def _multiply_unclosed(weights: list[float], starts: list[int], multiplier: float) -> None:
    """What `_multiply(weights, start, multiplier)` for each of the ascending `starts` does, in linear time: a weight
    is multiplied once for each start at or before it, so equal weights with equal counts end equal, and each
    weight's run of products is worked out once (10,000 characters of `[a:` took seconds bracket by bracket)."""
    products: dict[str, list[float]] = {}  # by the weight's hex form, which tells -0.0 from 0.0
    count = 0
    for index, weight in enumerate(weights):
        while count < len(starts) and starts[count] <= index:
            count += 1
        if count:
            run = products.setdefault(float(weight).hex(), [weight])
            while len(run) <= count:
                run.append(_clamp(run[-1] * multiplier))
            weights[index] = run[count]


def _emphasis_weight(tokens: tuple[_Token, ...], index: int) -> tuple[str, float | None] | None:
    """For `:number)` with `number` at `index`: the number, and its value if it is one."""
    if index + 1 >= len(tokens) or tokens[index][0] != "TEXT" or tokens[index + 1][0] != "RPAR":
        return None
    match = _EMPHASIS_WEIGHT.fullmatch(tokens[index][1])
    if not match:
        return None
    try:
        return match.group(1), _clamp(float(match.group(1)))
    except ValueError:  # "1.2.3" or "." fit A1111's pattern but are no numbers
        return match.group(1), None


@lru_cache(maxsize=_CACHE_SIZE)
def _attention(text: str) -> tuple[tuple[str, float], ...]:
    tokens = _tokens(text)
    texts: list[str] = []
    weights: list[float] = []
    round_open: list[int] = []
    square_open: list[int] = []
    run: list[str] | None = None  # text since the last bracket, escape or BREAK

    def emit(piece: str, weight: float = 1.0) -> None:
        texts.append(piece)
        weights.append(weight)

    index = 0
    while index < len(tokens):
        kind, token, _ = tokens[index]
        index += 1
        if kind in ("TEXT", "AND", "PIPE"):
            if run is None:
                run = []
            run.append(token)
            continue
        if kind == "BREAK":  # A1111 splits each run of text at BREAK, keeping empty pieces
            emit("".join(run or ()))
            emit("BREAK", -1)
            run = []
            continue
        if run is not None:
            emit("".join(run))
            run = None
        weight = _emphasis_weight(tokens, index) if kind == "COLON" else None
        if kind == "ESCAPED":
            emit(token[1])
        elif kind == "BACKSLASH":
            emit("")
        elif kind == "LPAR":
            round_open.append(len(texts))
        elif kind == "LSQB":
            square_open.append(len(texts))
        elif weight and not round_open:  # `a:1.5)` without `(` is text
            emit(":" + tokens[index][1] + ")")
            index += 2
        elif weight and weight[1] is not None:
            _multiply(weights, round_open.pop(), weight[1])
            index += 2
        elif kind == "RPAR" and round_open:
            _multiply(weights, round_open.pop(), ROUND_MULTIPLIER)
        elif kind == "RSQB" and square_open:
            _multiply(weights, square_open.pop(), SQUARE_MULTIPLIER)
        else:
            emit(token)
    if run is not None:
        emit("".join(run))
    _multiply_unclosed(weights, round_open, ROUND_MULTIPLIER)
    _multiply_unclosed(weights, square_open, SQUARE_MULTIPLIER)
    merged: list[list] = []
    for piece, weight in zip(texts, weights):
        if merged and merged[-1][1] == weight:
            merged[-1][0] += piece
        else:
            merged.append([piece, weight])
    return tuple((piece, weight) for piece, weight in merged) or (("", 1.0),)


def parse_prompt_attention(text: str) -> list[list]:
    """The text's `[text, weight]` runs, as A1111's function of this name returns them.

    `(a)` ×1.1, `[a]` ÷1.1, `(a:1.5)`; an unclosed bracket acts up to the end of the text
    and a stray closing one is literal; `\\(` `\\)` `\\[` `\\]` `\\\\` are literal characters.
    BREAK gives `['BREAK', -1]`, and neighbouring runs of equal weight are merged.
    """
    return [[piece, weight] for piece, weight in _attention(text)]


# ---- AND, embeddings ----------------------------------------------------------------------


def _subprompt_weight(piece: str) -> tuple[str, float]:
    """`a cat :1.2 ` is ("a cat", 1.2); `a dog ` is ("a dog", 1.0)."""
    text = piece.rstrip()
    if not text or not (text[-1].isdecimal() or text[-1] == "."):  # no number at the end
        return text, 1.0
    text, weight = _SUBPROMPT_WEIGHT.fullmatch(piece).groups()
    return text, 1.0 if weight is None else _clamp(float(weight))


@lru_cache(maxsize=_CACHE_SIZE)
def _subprompts(prompt: str) -> tuple[tuple[str, float], ...]:
    pieces, start = [], 0
    for kind, text, offset in _tokens(prompt):
        if kind == "AND":
            pieces.append(prompt[start:offset])
            start = offset + len(text)
    pieces.append(prompt[start:])
    return tuple(_subprompt_weight(piece) for piece in pieces)


def get_multicond_prompt_list(
    prompts: Iterable[str],
) -> tuple[list[list[tuple[int, float]]], list[str], dict[str, int]]:
    """Split prompts at AND, as A1111's function of this name does.

    Returns each prompt's `(index, weight)` pairs, the distinct sub-prompt texts (without
    their `:weight`), and the index of each text in that list.
    """
    res_indexes: list[list[tuple[int, float]]] = []
    flat: list[str] = []
    indexes: dict[str, int] = {}
    for prompt in prompts:
        entry = []
        for text, weight in _subprompts(prompt):
            if text not in indexes:
                indexes[text] = len(flat)
                flat.append(text)
            entry.append((indexes[text], weight))
        res_indexes.append(entry)
    return res_indexes, flat, indexes


@lru_cache(maxsize=16)
def _embedding_pattern(names: frozenset[str]) -> tuple[re.Pattern, tuple[str, ...]]:
    ordered = tuple(sorted(names, key=lambda name: (-len(name), name)))  # longest first
    alternatives = "|".join(map(re.escape, ordered))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE), ordered


def find_embeddings(text: str, names: Iterable[str]) -> list[EmbeddingMatch]:
    """Occurrences of embedding names in `text`, as whole words, ignoring case.

    Case is ignored because the CLIP tokenizer lower-cases prompts.  Where names overlap,
    the longest one at a position wins.  Each match gives the name as listed in `names`.
    """
    known = frozenset(name for name in names if name)
    if not known:
        return []
    pattern, ordered = _embedding_pattern(known)
    matches = []
    for match in pattern.finditer(text):
        found = match.group()
        name = next(
            name for name in ordered if len(name) == len(found) and re.fullmatch(re.escape(name), found, re.IGNORECASE)
        )
        matches.append(EmbeddingMatch(name, match.start(), match.end()))
    return matches


# ---- Everything at once ----------------------------------------------------------------------


@lru_cache(maxsize=_CACHE_SIZE)
def parse_prompt(
    prompt: str, steps: int, hires_steps: int | None = None, use_old_scheduling: bool = False
) -> ParsedPrompt:
    """Read a whole prompt: extra networks taken out, AND sub-prompts, each one's schedule.

    The step arguments are those of `get_learned_conditioning_prompt_schedules`; each
    scheduled text's emphasis is in its `parts`.
    """
    text, networks = extract_extra_networks(prompt)
    subprompts = tuple(
        PromptSchedule(
            sub,
            weight,
            tuple(
                ScheduledText(end, scheduled)
                for end, scheduled in _schedule(sub, steps, hires_steps, use_old_scheduling)
            ),
        )
        for sub, weight in _subprompts(text)
    )
    return ParsedPrompt(subprompts, networks)
