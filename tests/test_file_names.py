"""File name patterns (A1111's samples_filename_pattern tags) and sanitizing."""

from datetime import datetime, timezone

import pytest

from modules.jobs.file_names import NameFields, check_pattern, clean_part, expand, safe_file_name
from modules.jobs.generation_params import GenerationParams

WHEN = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
FIELDS = NameFields(
    seed=42,
    prompt="a cat, on a mat",
    prompt_no_styles="a cat",
    styles=("Warm", "None"),
    steps=20,
    cfg_scale=7.5,
    sampler="DPM++ 2M",
    scheduler="Karras",
    width=512,
    height=768,
    model_name="dream",
    model_hash="abcdef0123",
    clip_skip=2,
    denoising=0.75,
    batch_number=2,
    generation_number=4,
    job_timestamp=datetime(2024, 1, 2, 3, 4, 5),
    now=WHEN,
)


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("[seed]-[prompt_spaces]", "42-a cat, on a mat"),
        ("[prompt]", "a_cat,_on_a_mat"),
        ("[prompt_words]", "a cat on a"),
        ("[prompt_no_styles]|[styles]", "a cat|Warm"),
        ("[steps]_[cfg]_[sampler]_[scheduler]", "20_7.5_DPM++ 2M_Karras"),
        ("[width]x[height] [model_name] [model_hash]", "512x768 dream abcdef0123"),
        ("[clip_skip] [denoising] [batch_number] [generation_number]", "2 0.75 2 4"),
        ("[date] [datetime] [datetime<%Y%m%d>] [job_timestamp]", "2024-05-06 20240506070809 20240506 20240102030405"),
        ("[datetime<%H><Asia/Tokyo>]", "16"),
        ("[SEED][none]x", "42x"),
        ("[unknown]-[seed]", "[unknown]-42"),
    ],
)
def test_each_tag_fills_in(pattern, expected):
    assert expand(pattern, FIELDS, words=4) == expected


def test_tags_that_dont_apply_drop_the_text_before_them():
    lone = NameFields(seed=7, prompt="")
    assert expand("[seed]-[batch_number]-[denoising]", lone) == "7"
    assert expand("[seed]-[prompt_words]", lone) == "7"
    assert expand("[styles]", lone) == "None"


def test_fields_of_an_image_in_a_job():
    params = GenerationParams(prompt="p", seed=9, batch_size=2, n_iter=3, steps=5)
    third = NameFields.of_image(params, 2, model_name="m")
    assert (third.batch_number, third.generation_number, third.denoising, third.steps) == (1, 3, None, 5)
    single = NameFields.of_image(GenerationParams(), 0, job="img2img")
    assert (single.batch_number, single.generation_number, single.denoising) == (None, None, 0.75)


def test_values_and_names_are_made_safe():
    assert clean_part('a/b\\c:d*e?f"g<h>i|j\nk') == "a_b_c_d_e_f_g_h_i_j_k"
    assert clean_part("x" * 300) == "x" * 128
    assert clean_part("  trailing. ") == "trailing"
    assert safe_file_name("../../etc/passwd") == "_._etc_passwd"
    assert ".." not in safe_file_name("a..b...c") and "/" not in expand("[prompt]", NameFields(prompt="../x"))
    assert safe_file_name(".hidden") == "hidden"
    long = safe_file_name("é" * 500)
    assert len(long.encode("utf-8")) <= 200 and long == "é" * 100


def test_bad_patterns_are_refused_with_a_message():
    assert check_pattern("[seed]-[prompt_spaces]") == "[seed]-[prompt_spaces]"
    with pytest.raises(ValueError, match=r"Unknown file name tag \[sed\]"):
        check_pattern("[sed]")
    with pytest.raises(ValueError, match="Unknown time zone"):
        check_pattern("[datetime<%Y><Nowhere/Town>]")
    with pytest.raises(ValueError, match="unclosed"):
        check_pattern("[seed")
    with pytest.raises(ValueError, match="must be text"):
        check_pattern(5)
