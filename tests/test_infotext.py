from modules.jobs.generation_params import GenerationParams
from modules.jobs.infotext import create_infotext, params_from_infotext, parse_infotext, quote


def make(**kw):
    base = dict(
        prompt="a cat",
        steps=20,
        sampler_name="Euler a",
        scheduler="Automatic",
        cfg_scale=7.0,
        seed=1,
        width=512,
        height=512,
    )
    return GenerationParams(**{**base, **kw})


def test_a1111_layout_and_key_order():
    text = create_infotext(make(negative_prompt="ugly"), {"Model hash": "0123456789", "Model": "sd15"})
    assert text == (
        "a cat\nNegative prompt: ugly\n"
        "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 1, "
        "Size: 512x512, Model hash: 0123456789, Model: sd15, Version: v0.1.0"
    )


def test_no_negative_line_when_empty_and_clip_skip_only_above_one():
    text = create_infotext(make())
    assert "Negative prompt" not in text and "Clip skip" not in text
    text = create_infotext(make(clip_skip=2), {"Model": "m"})
    line = text.splitlines()[-1]
    assert line.index("Model: m") < line.index("Clip skip: 2") < line.index("Version")


def test_values_with_commas_or_colons_are_json_quoted():
    assert quote("a, b") == '"a, b"'
    assert quote("x:y") == '"x:y"'
    assert quote("plain") == "plain"
    text = create_infotext(make(), {"Model": "my, model"})
    assert 'Model: "my, model"' in text
    assert parse_infotext(text)["Model"] == "my, model"


def test_none_values_are_left_out():
    assert "Model hash" not in create_infotext(make(), {"Model hash": None, "Model": "m"})


def test_round_trip_through_parser():
    params = make(
        prompt="line one\nline two",
        negative_prompt="bad",
        cfg_scale=6.5,
        seed=42,
        width=640,
        height=384,
        clip_skip=2,
        steps=33,
        sampler_name="DPM++ 2M",
        scheduler="Karras",
    )
    values, rest = params_from_infotext(create_infotext(params, {"Model": "x"}))
    for name in (
        "prompt",
        "negative_prompt",
        "cfg_scale",
        "seed",
        "width",
        "height",
        "clip_skip",
        "steps",
        "sampler_name",
        "scheduler",
    ):
        assert values[name] == getattr(params, name), name
    assert rest["Model"] == "x"
    assert rest["Size"] == "640x384"


def test_parse_defaults_and_short_last_line():
    parsed = parse_infotext("just a prompt\nwith: one pair")
    assert parsed["Prompt"] == "just a prompt\nwith: one pair"
    assert parsed["Clip skip"] == "1" and parsed["Schedule type"] == "Automatic"


def test_legacy_sampler_names_are_split_into_sampler_and_schedule():
    values, _ = params_from_infotext("a cat\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1")
    assert (values["sampler_name"], values["scheduler"]) == ("DPM++ 2M", "Karras")
    values, _ = params_from_infotext("a cat\nSteps: 20, Sampler: Euler a, Schedule type: Uniform, Seed: 1")
    assert (values["sampler_name"], values["scheduler"]) == ("Euler a", "Uniform")
