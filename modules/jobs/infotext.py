"""Write and read A1111's generation parameters text (the PNG `parameters` chunk)."""

from __future__ import annotations

import json
import re
from typing import Any

from modules.jobs.generation_params import (
    NO_REFINER,
    USE_SAME_CHECKPOINT,
    USE_SAME_SAMPLER,
    USE_SAME_SCHEDULER,
    GenerationParams,
)

VERSION = "v0.1.0"

# A1111's order of the keys it knows; other keys follow in insertion order, then Version.
KEY_ORDER = (
    "Steps",
    "Sampler",
    "Schedule type",
    "CFG scale",
    "Image CFG scale",
    "Seed",
    "Face restoration",
    "Size",
    "Model hash",
    "Model",
    "VAE hash",
    "VAE",
    "Variation seed",
    "Variation seed strength",
    "Seed resize from",
    "Denoising strength",
    "Conditional mask weight",
    "Clip skip",
    "ENSD",
    "Token merging ratio",
    "Init image hash",
    "RNG",
    "Tiling",
)

# Defaults A1111 assumes for keys missing from pasted text (variation seed and seed resize are off
# there too: its "Extra" checkbox is unticked when the text lacks them). The settings' keys among them
# (RNG, the Schedule sigmas and rho) become the job's override_settings when they differ from the settings.
MISSING_KEY_DEFAULTS = {
    "Clip skip": "1",
    "Schedule type": "Automatic",
    "Mask mode": "Inpaint masked",
    "Masked content": "original",
    "Inpaint area": "Whole picture",
    "Masked area padding": "32",
    "Hires steps": "0",
    "Hires resize-1": "0",
    "Hires resize-2": "0",
    "Hires checkpoint": USE_SAME_CHECKPOINT,
    "Hires sampler": USE_SAME_SAMPLER,
    "Hires schedule type": USE_SAME_SCHEDULER,
    "Hires prompt": "",
    "Hires negative prompt": "",
    "Refiner": NO_REFINER,
    "Variation seed strength": "0",
    "Seed resize from-1": "0",
    "Seed resize from-2": "0",
    "RNG": "GPU",
    "Schedule max sigma": "0",
    "Schedule min sigma": "0",
    "Schedule rho": "0",
}

_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE_PAIR = re.compile(r"^(\d+)x(\d+)$")


def quote(value: Any) -> str:
    """JSON-quote a value that holds a comma, a colon or a newline, as A1111 does."""
    text = str(value)
    if any(ch in text for ch in ",:\n"):
        return json.dumps(text, ensure_ascii=False)
    return text


def unquote(text: str) -> str:
    """A value as `quote` (or A1111) wrote it, unquoted; text that isn't a JSON string stays as it is."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def params_entries(params: GenerationParams, job: str = "txt2img") -> dict[str, Any]:
    """The infotext entries that come from the parameter object itself, for a kind of job."""
    entries: dict[str, Any] = {}
    for f, spec in GenerationParams.fields():
        if spec.infotext is None or job not in spec.jobs:
            continue
        value = getattr(params, f.name)
        if (spec.omit_default and value == f.default) or (spec.when is not None and not spec.when(params)):
            continue
        key = spec.infotext
        if key.endswith("-1"):
            second = next(g.name for g, s in GenerationParams.fields() if s.infotext == key[:-1] + "2")
            entries[key[:-2]] = f"{value}x{getattr(params, second)}"
        elif not key.endswith("-2"):
            entries[key] = _number(GenerationParams.display(f.name, value))
    return entries


def create_infotext(params: GenerationParams, extra: dict[str, Any] | None = None, job: str = "txt2img") -> str:
    """Build the full infotext: prompt, optional negative prompt line, parameters line.

    `params` holds one image's values (its own seed and prompt); `job` is "txt2img", "img2img"
    or "inpaint" and picks the fields that apply; `extra` adds keys such as Model hash and Model.
    Keys with a None value are left out.
    """
    entries = params_entries(params, job)
    entries.update(extra or {})
    ordered = {key: entries[key] for key in KEY_ORDER if key in entries}
    ordered.update({k: v for k, v in entries.items() if k not in ordered and k != "Version"})
    ordered["Version"] = entries.get("Version", VERSION)
    line = ", ".join(f"{key}: {quote(value)}" for key, value in ordered.items() if value is not None)
    negative = f"\nNegative prompt: {params.negative_prompt}" if params.negative_prompt else ""
    return f"{params.prompt}{negative}\n{line}".strip()


def parse_infotext(text: str) -> dict[str, str]:
    """Parse infotext into a dict with Prompt, Negative prompt and every parameter key.

    As in A1111, the last line is parameters only if it holds at least three `key: value`
    pairs; `AxB` values also fill `Key-1` and `Key-2`. Old "Hypernet" and "Hypernet strength" keys become a
    `<hypernet:name:strength>` tag at the end of the prompt, as A1111 reads them.
    """
    lines = text.strip().split("\n")
    params_line = ""
    if lines and len(_PAIR.findall(lines[-1])) >= 3:
        params_line = lines.pop()
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:") :].lstrip()
        (negative_lines if in_negative else prompt_lines).append(line)
    result: dict[str, str] = {"Prompt": "\n".join(prompt_lines), "Negative prompt": "\n".join(negative_lines)}
    for key, value in _PAIR.findall(params_line):
        value = unquote(value.strip())
        result[key.strip()] = value
        size = _SIZE_PAIR.match(value)
        if size:
            result[f"{key.strip()}-1"], result[f"{key.strip()}-2"] = size.groups()
    for key, default in MISSING_KEY_DEFAULTS.items():
        result.setdefault(key, default)
    if "Hypernet" in result:  # before extra networks a hypernetwork was a setting, written as these keys
        result["Prompt"] += f"<hypernet:{result['Hypernet']}:{result.get('Hypernet strength', '1.0')}>"
    return result


def params_from_infotext(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Split infotext into GenerationParams field values (typed) and the keys no field holds."""
    return params_from_parsed(parse_infotext(text))


def params_from_parsed(parsed: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """params_from_infotext for text parse_infotext has already read.

    Flag fields (Restore faces, Hires. fix) are true when one of their keys is present. A value
    that does not fit its field is left out and reported under "Unreadable" in the rest."""
    by_key = {spec.infotext: f.name for f, spec in GenerationParams.fields() if spec.infotext}
    by_key.update({"Prompt": "prompt", "Negative prompt": "negative_prompt"})
    values: dict[str, Any] = {}
    unreadable = []
    parsed = _split_legacy_sampler(parsed)
    for key, value in parsed.items():
        if key in by_key:
            try:
                values[by_key[key]] = GenerationParams.coerce(by_key[key], value)
            except ValueError as exc:
                unreadable.append(str(exc))
    for f, spec in GenerationParams.fields():
        if spec.present_if:
            values[f.name] = any(key in parsed for key in spec.present_if)
    rest = {key: value for key, value in parsed.items() if key not in by_key}
    if unreadable:
        rest["Unreadable"] = "; ".join(unreadable)
    return values, rest


def _split_legacy_sampler(parsed: dict[str, str]) -> dict[str, str]:
    """Older infotext writes the schedule inside the sampler name ("DPM++ 2M Karras"): split it into
    Sampler and Schedule type. Unknown names are left for the field check to report."""
    name = parsed.get("Sampler")
    if not name:
        return parsed
    from modules.sampling import registry

    try:
        sampler, schedule = registry.resolve(name, parsed.get("Schedule type"))
    except ValueError:
        return parsed
    return {**parsed, "Sampler": sampler, "Schedule type": schedule}
