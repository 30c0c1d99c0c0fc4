"""Infotext ↔ settings, in process (A1111's get_override_settings and create_override_settings_dict): the settings
an infotext names become typed, checked values, those equal to the settings in force are left out, bad values are
skipped with a warning, a missing RNG means GPU; the page's "Key: value" entries go both ways."""

from __future__ import annotations

import logging

import pytest

from modules.jobs.infotext import parse_infotext
from modules.options import (
    OPTIONS,
    OptionInfo,
    Options,
    override_entries,
    setting_from_text,
    settings_from_entries,
    settings_from_infotext,
)
from modules.ui.infotext_paste import override_update, read_fields

PASTED = (
    "a fox\nSteps: 20, Sampler: Euler a, Seed: 5, Size: 64x64, RNG: CPU, ENSD: 31337, Eta: 0.5, "
    "Sigma churn: 0.2, Discard penultimate sigma: True, UniPC order: 2, Noise Schedule: Zero Terminal SNR"
)
EXPECTED = {
    "randn_source": "CPU",
    "eta_noise_seed_delta": 31337,
    "eta_ancestral": 0.5,
    "s_churn": 0.2,
    "always_discard_next_to_last_sigma": True,
    "uni_pc_order": 2,
    "sd_noise_schedule": "Zero Terminal SNR",
}


@pytest.fixture
def opts(tmp_path) -> Options:
    return Options(tmp_path / "config.json")


def test_each_kind_of_setting_is_read_as_its_type(opts):
    settings, warnings = settings_from_infotext(opts, parse_infotext(PASTED))
    assert settings == EXPECTED and warnings == []
    assert [type(settings[key]) for key in EXPECTED] == [str, int, float, float, bool, int, str]
    assert setting_from_text(opts, "always_discard_next_to_last_sigma", "False") is False
    assert setting_from_text(opts, "s_noise", "1") == 1.0 and isinstance(setting_from_text(opts, "s_noise", "1"), float)
    assert setting_from_text(opts, "uni_pc_order", "4.0") == 4  # a whole float stands for an int, as in config.json


@pytest.mark.parametrize(
    "text, setting",
    [
        ("ENSD: x", "eta_noise_seed_delta"),
        ("ENSD: -1", "eta_noise_seed_delta"),
        ("UniPC order: 2.5", "uni_pc_order"),
        ("Eta: 2", "eta_ancestral"),
        ("Sigma churn: nan", "s_churn"),
        ("RNG: TPU", "randn_source"),
        ("Discard penultimate sigma: maybe", "always_discard_next_to_last_sigma"),
        ("Noise Schedule: Linear", "sd_noise_schedule"),
    ],
)
def test_a_value_that_does_not_fit_is_skipped_with_a_warning_and_the_others_apply(opts, caplog, text, setting):
    with caplog.at_level(logging.WARNING):
        parsed = parse_infotext(f"cat\nSteps: 2, Seed: 1, Eta DDIM: 0.3, {text}")
        settings, warnings = settings_from_infotext(opts, parsed)
    assert setting not in settings and settings["eta_ddim"] == 0.3
    key = text.split(":")[0]
    assert len(warnings) == 1 and warnings[0].startswith(f"{key}: {OPTIONS[setting].label}")
    assert f"Infotext value not used: {warnings[0]}" in caplog.text


def test_values_equal_to_the_settings_in_force_are_left_out(opts):
    text = "cat\nSteps: 2, Seed: 1, RNG: CPU, ENSD: 0, Eta: 1, Sigma noise: 1.0, UniPC lower order final: True"
    assert settings_from_infotext(opts, parse_infotext(text))[0] == {"randn_source": "CPU"}
    opts.set("randn_source", "CPU")
    assert settings_from_infotext(opts, parse_infotext(text))[0] == {}
    with opts.overridden({"eta_ancestral": 0.5}):  # a job's own settings are the ones in force on its thread
        assert settings_from_infotext(opts, parse_infotext(text))[0] == {"eta_ancestral": 1.0}


def test_a_missing_rng_means_gpu_and_missing_schedule_sigmas_mean_the_models(opts):
    parsed = parse_infotext("cat\nSteps: 2, Seed: 1, Size: 64x64")
    assert (parsed["RNG"], parsed["Schedule min sigma"], parsed["Schedule max sigma"], parsed["Schedule rho"]) == (
        "GPU",
        "0",
        "0",
        "0",
    )
    assert settings_from_infotext(opts, parsed)[0] == {}
    opts.set_many({"randn_source": "NV", "sigma_min": 0.1, "sigma_max": 10.0, "rho": 5.0})
    assert settings_from_infotext(opts, parsed)[0] == {
        "randn_source": "GPU",
        "sigma_min": 0.0,
        "sigma_max": 0.0,
        "rho": 0.0,
    }
    assert settings_from_infotext(opts, parse_infotext("cat\nSteps: 2, Seed: 1, RNG: NV, Schedule rho: 5"))[0] == {
        "sigma_min": 0.0,
        "sigma_max": 0.0,
    }


def test_skipped_keys_and_settings_an_extension_declares(opts):
    parsed = parse_infotext(PASTED + ", Sharpness: 3")
    assert "randn_source" not in settings_from_infotext(opts, parsed, skip=["RNG"])[0]
    opts.declare("sharpness", OptionInfo(1, "Sharpness", minimum=0, maximum=10, infotext="Sharpness"))
    assert settings_from_infotext(opts, parsed)[0] == {**EXPECTED, "sharpness": 3}


def test_entries_go_both_ways_for_each_kind_of_setting(opts):
    entries = override_entries(opts, EXPECTED)
    assert entries == [
        "RNG: CPU",
        "ENSD: 31337",
        "Eta: 0.5",
        "Sigma churn: 0.2",
        "Discard penultimate sigma: True",
        "UniPC order: 2",
        "Noise Schedule: Zero Terminal SNR",
    ]
    back = settings_from_entries(opts, entries)
    assert back == EXPECTED and [type(back[key]) for key in EXPECTED] == [type(v) for v in EXPECTED.values()]
    assert settings_from_entries(opts, ["Discard penultimate sigma: False", " ENSD:7 "]) == {
        "always_discard_next_to_last_sigma": False,
        "eta_noise_seed_delta": 7,
    }
    assert settings_from_entries(opts, []) == {}


@pytest.mark.parametrize(
    "entry, message",
    [
        ("Sharpness: 3", "names no setting"),
        ("RNG CPU", "names no setting"),
        ("ENSD: lots", "must be a number"),
        ("Eta: 1.5", "must be at most 1.0"),
        ("RNG: TPU", "must be one of GPU"),
    ],
)
def test_an_entry_that_cannot_be_used_is_refused_naming_it(opts, entry, message):
    with pytest.raises(ValueError, match=message) as caught:
        settings_from_entries(opts, ["ENSD: 3", entry])
    assert str(caught.value).startswith(f"Override settings: {entry!r}")


def test_an_entry_may_lower_a_limit_but_never_raise_it(tmp_path):
    declared = {
        **OPTIONS,
        "max_frames": OptionInfo(10, "Most frames", minimum=1, step=1, limit=True, infotext="Max frames"),
    }
    opts = Options(tmp_path / "config.json", declared)
    assert settings_from_entries(opts, ["Max frames: 4"]) == {"max_frames": 4}
    with pytest.raises(
        ValueError,
        match=r"'Max frames: 40' can't be used: Most frames \(max_frames\) can't be "
        r"raised for one job: the server allows at most 10, asked for 40",
    ):
        settings_from_entries(opts, ["Max frames: 40"])


def test_pasting_fills_the_override_settings_dropdown_only_with_settings_that_differ(opts):
    opts.set("eta_noise_seed_delta", 31337)
    pasted = read_fields(PASTED + ", ENSD: 31337, Eta DDIM: lots", opts)
    assert pasted.settings == {key: value for key, value in EXPECTED.items() if key != "eta_noise_seed_delta"}
    assert pasted.values["steps"] == 20 and pasted.values["sampler_name"] == "Euler a"  # fields still fill
    assert len(pasted.warnings) == 1 and pasted.warnings[0].startswith("Skipped a setting: Eta DDIM: ")
    update = override_update(opts, pasted.settings)
    assert update["value"] == update["choices"] == override_entries(opts, pasted.settings)
    assert update["visible"] is True
    empty = override_update(opts, read_fields("just a prompt", opts).settings)  # RNG: GPU is the setting already
    assert (empty["value"], empty["choices"], empty["visible"]) == ([], [], False)
    assert read_fields(PASTED).settings == {}  # no settings read without the options
