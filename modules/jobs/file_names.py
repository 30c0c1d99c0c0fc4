"""Output file names from A1111's `samples_filename_pattern` tags (`[seed]-[prompt_spaces]`), made safe.

A tag is `[name]` or `[name<argument>…]` (`[datetime<%Y%m%d>]`). A tag whose value doesn't apply to an
image (`[batch_number]` in a batch of one, `[denoising]` in txt2img) is dropped with the text just before
it, as A1111 does, so `[seed]-[batch_number]` gives `123`. Every value, and the whole name, is sanitized:
no path separators, no control or reserved characters, no `..`, bounded length.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from modules.jobs.generation_params import GenerationParams

PART_LIMIT = 128  # characters one tag's value may add
NAME_LIMIT = 200  # UTF-8 bytes of a whole file name before the extension (file systems allow 255)
DEFAULT_DATETIME = "%Y%m%d%H%M%S"
DEFAULT_PATTERN = "[seed]-[prompt_words]"  # what an empty samples_filename_pattern means here

_TAG = re.compile(r"\[(\w+)((?:<[^<>\[\]]*>)*)\]")
_ARGUMENT = re.compile(r"<([^<>]*)>")
_NON_WORD = re.compile(r"[\s" + re.escape(string.punctuation) + r"\x00-\x1f]+")
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_DOTS = re.compile(r"\.{2,}")


@dataclass(frozen=True)
class NameFields:
    """What one saved image's name can be made of. None: the value doesn't apply to this image."""

    seed: int | None = None
    prompt: str = ""
    prompt_no_styles: str | None = None  # None: the same as the prompt
    styles: tuple[str, ...] = ()
    steps: int | None = None
    cfg_scale: float | None = None
    sampler: str | None = None
    scheduler: str | None = None
    width: int | None = None
    height: int | None = None
    model_name: str | None = None
    model_hash: str | None = None
    clip_skip: int | None = None
    denoising: float | None = None
    batch_number: int | None = None  # 1-based place in its batch; None in a batch of one
    generation_number: int | None = None  # 1-based place in the job; None for a job of one image
    job_timestamp: datetime = field(default_factory=datetime.now)
    now: datetime = field(default_factory=datetime.now)

    @classmethod
    def of_image(
        cls,
        params: GenerationParams,
        index: int,
        job: str = "txt2img",
        model_name: str | None = None,
        model_hash: str | None = None,
        prompt_no_styles: str | None = None,
    ) -> NameFields:
        """The fields of image `index` (0-based, in the job) whose own values `params` holds; `job` as in
        create_infotext (denoising applies to all but plain txt2img)."""
        per_batch, total = params.batch_size, params.batch_size * params.n_iter
        return cls(
            seed=params.seed,
            prompt=params.prompt,
            prompt_no_styles=prompt_no_styles,
            styles=tuple(params.styles),
            steps=params.steps,
            cfg_scale=params.cfg_scale,
            sampler=params.sampler_name,
            scheduler=params.scheduler,
            width=params.width,
            height=params.height,
            model_name=model_name,
            model_hash=model_hash,
            clip_skip=params.clip_skip,
            denoising=None if job == "txt2img" else params.denoising_strength,
            batch_number=index % per_batch + 1 if per_batch > 1 else None,
            generation_number=index + 1 if total > 1 else None,
        )


def clean_part(text: str, replace_spaces: bool = False, limit: int = PART_LIMIT) -> str:
    """One value made safe for a file name: reserved characters become `_`, and it is cut to `limit`."""
    if replace_spaces:
        text = text.replace(" ", "_")
    text = _DOTS.sub(".", _UNSAFE.sub("_", text)).lstrip()
    return text[:limit].rstrip(" .")


def safe_file_name(stem: str, limit: int = NAME_LIMIT) -> str:
    """A whole name (without extension) made safe: `clean_part` rules, no leading dot (hidden files), and at
    most `limit` UTF-8 bytes, never cutting a character in two."""
    cleaned = clean_part(stem, limit=len(stem)).lstrip(" .")
    cut = cleaned.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
    return cut.rstrip(" .-_") if len(cut) < len(cleaned) else cut


def prompt_words(prompt: str, count: int) -> str:
    """The first `count` words of a prompt, split on spaces and punctuation, as A1111 names files."""
    words = [word for word in _NON_WORD.split(prompt) if word][:count]
    return clean_part(" ".join(words))


def _datetime(when: datetime, args: list[str]) -> str:
    fmt = args[0] if args and args[0] else DEFAULT_DATETIME
    if len(args) > 1:
        when = when.astimezone(_zone(args[1]))
    return clean_part(when.strftime(fmt))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"Unknown time zone {name!r} in a [datetime<…><zone>] tag") from None


def _number(value: float | None) -> str | None:
    return None if value is None else f"{value:g}"


_Tag = Callable[[NameFields, list[str], int], "str | None"]
TAGS: dict[str, _Tag] = {
    "seed": lambda f, a, w: None if f.seed is None else str(f.seed),
    "prompt": lambda f, a, w: clean_part(f.prompt, replace_spaces=True),
    "prompt_spaces": lambda f, a, w: clean_part(f.prompt),
    "prompt_words": lambda f, a, w: prompt_words(f.prompt, w) or None,
    "prompt_no_styles": lambda f, a, w: clean_part(f.prompt if f.prompt_no_styles is None else f.prompt_no_styles),
    "steps": lambda f, a, w: _number(f.steps),
    "cfg": lambda f, a, w: _number(f.cfg_scale),
    "sampler": lambda f, a, w: clean_part(f.sampler or "") or None,
    "scheduler": lambda f, a, w: clean_part(f.scheduler or "") or None,
    "width": lambda f, a, w: _number(f.width),
    "height": lambda f, a, w: _number(f.height),
    "model_name": lambda f, a, w: clean_part(f.model_name or "") or None,
    "model_hash": lambda f, a, w: f.model_hash or None,
    "clip_skip": lambda f, a, w: _number(f.clip_skip),
    "denoising": lambda f, a, w: _number(f.denoising),
    "styles": lambda f, a, w: clean_part(", ".join(s for s in f.styles if s != "None") or "None"),
    "batch_number": lambda f, a, w: _number(f.batch_number),
    "generation_number": lambda f, a, w: _number(f.generation_number),
    "date": lambda f, a, w: f.now.strftime("%Y-%m-%d"),
    "datetime": lambda f, a, w: _datetime(f.now, a),
    "job_timestamp": lambda f, a, w: f.job_timestamp.strftime(DEFAULT_DATETIME),
    "none": lambda f, a, w: "",
}


def check_pattern(pattern: str) -> str:
    """`pattern` itself when every tag in it is known and its arguments work; else ValueError naming the tag."""
    if not isinstance(pattern, str):
        raise ValueError(f"A file name pattern must be text, got {pattern!r}")
    for match in _TAG.finditer(pattern):
        name, args = match.group(1).lower(), _ARGUMENT.findall(match.group(2))
        if name not in TAGS:
            raise ValueError(
                f"Unknown file name tag [{match.group(1)}]; known tags: " + ", ".join(f"[{tag}]" for tag in TAGS)
            )
        if name == "datetime":
            _datetime(datetime.now(), args)
    leftover = _TAG.sub("", pattern)
    if "[" in leftover or "]" in leftover:
        raise ValueError(f"File name pattern {pattern!r} has an unclosed or empty [tag]")
    return pattern


def expand(pattern: str, fields: NameFields, words: int = 8) -> str:
    """The pattern with its tags filled in from `fields` (`words`: how many for [prompt_words]), not yet
    made safe as a whole name (see safe_file_name). Unknown tags are kept as written."""
    out, start = [], 0
    for match in _TAG.finditer(pattern):
        text = pattern[start : match.start()]
        start = match.end()
        tag = TAGS.get(match.group(1).lower())
        if tag is None:
            out.append(text + match.group(0))
            continue
        value = tag(fields, _ARGUMENT.findall(match.group(2)), words)
        if value is not None:
            out.append(text + value)
    out.append(pattern[start:])
    return "".join(out)
