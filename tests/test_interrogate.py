"""Interrogate CLIP with tiny random-weight BLIP and CLIP models of the real transformers architectures, saved into
models/BLIP and models/clip as a user would: the caption and ranked terms, determinism, the embedding cache, the
missing-model message, the checked download, the API route and img2img batch's "Append interrogated prompt"."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import shutil
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from file_server import serving
from interrogate_models import TERMS, write_term_lists, write_tiny_interrogate_models, write_tiny_open_clip
from PIL import Image

import modules.models.interrogate_models as interrogate_models
from modules.interrogate import CATEGORIES, InterrogateSettings, Interrogator, packaged_lists, read_terms
from modules.models.checkpoints import HashCache
from modules.models.interrogate_models import (
    ClipRanker,
    InterrogateModelError,
    MissingInterrogateModel,
    download_interrogate_models,
)
from modules.models.model_download import DownloadError, RemoteFile

SHORT = InterrogateSettings(min_length=4, max_length=8)  # A1111's defaults but a short caption: quicker on a CPU


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A data dir with the tiny models in models/BLIP and models/clip, and tiny term lists in lists/."""
    root = tmp_path_factory.mktemp("interrogate-data")
    write_tiny_interrogate_models(root / "models")
    write_term_lists(root / "lists")
    return root


def interrogator(data: Path, cache: Path) -> Interrogator:
    return Interrogator(data / "models", cache, HashCache(cache / "hashes.json"), lists_dir=data / "lists")


def photo(seed: int = 0) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((40, 56, 3)) * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def described(data, tmp_path_factory) -> tuple[Interrogator, str]:
    """One interrogator and its description of photo() with the default settings."""
    tool = interrogator(data, tmp_path_factory.mktemp("cache"))
    return tool, tool.interrogate(photo(), SHORT)


def test_a_caption_then_the_best_term_of_each_list_the_same_every_time(described):
    tool, text = described
    caption, *terms = text.split(", ")
    assert caption and all(word in tool._blip.processor.tokenizer.vocab for word in caption.split())
    assert len(terms) == len(CATEGORIES)
    for term, category in zip(terms, CATEGORIES):
        assert term in TERMS[category]
    assert tool.interrogate(photo(), SHORT) == text
    assert (
        Interrogator(tool.models_dir, tool.cache_dir.parent, tool.hashes, lists_dir=tool.lists_dir).interrogate(
            photo(), SHORT
        )
        == text
    )  # freshly loaded models say the same


def test_ranks_skipped_lists_and_the_line_limit(described):
    tool, text = described
    ranked = tool.interrogate(photo(), replace(SHORT, return_ranks=True, skip_categories=("artists",)))
    caption, *terms = ranked.split(", ")
    assert caption == text.split(", ")[0] and len(terms) == len(CATEGORIES) - 1
    for term, category in zip(terms, [c for c in CATEGORIES if c != "artists"]):
        name, score = re.fullmatch(r"\((.+):(\d\.\d{3})\)", term).groups()
        assert name in TERMS[category] and 0 < float(score) <= 1
    first_lines = tool.interrogate(photo(), replace(SHORT, dict_limit=1))
    assert first_lines.split(", ")[1:] == [TERMS[c][0] for c in CATEGORIES]


def test_text_embeddings_are_cached_on_disk_per_model_hash_and_reused(described, data, monkeypatch):
    tool, text = described
    model_hash = hashlib.sha256((data / "models" / "clip" / "model.safetensors").read_bytes()).hexdigest()
    files = [
        tool.cache_file(model_hash, category, hashlib.sha256("\n".join(TERMS[category]).encode()).hexdigest())
        for category in CATEGORIES
    ]
    assert all(f.is_file() for f in files) and files[0].parent.name == model_hash[:16]
    written = {f: f.stat().st_mtime_ns for f in files}

    def no_encoding(self, texts):
        raise AssertionError("the cached embeddings should have been read")

    monkeypatch.setattr(ClipRanker, "text_features", no_encoding)
    fresh = interrogator(data, tool.cache_dir.parent)
    assert fresh.interrogate(photo(), SHORT) == text
    assert {f: f.stat().st_mtime_ns for f in files} == written
    with pytest.raises(AssertionError, match="cached embeddings"):  # a list not seen before is encoded
        fresh.interrogate(photo(), replace(SHORT, dict_limit=2))


def test_a_missing_model_names_the_folder_and_its_files(tmp_path, data):
    shutil.copytree(data / "models" / "clip", tmp_path / "models" / "clip")
    tool = interrogator(data, tmp_path / "cache")
    tool.models_dir = tmp_path / "models"
    with pytest.raises(MissingInterrogateModel) as caught:
        tool.interrogate(photo(), SHORT)
    message = str(caught.value)
    assert str(tmp_path / "models" / "BLIP") in message and "model.safetensors" in message
    assert "config.json" in message and "--download-interrogate-models" in message
    assert str(tmp_path / "models" / "clip") not in message  # that one is complete
    (tmp_path / "models" / "clip" / "model.safetensors").unlink()
    with pytest.raises(MissingInterrogateModel, match=re.escape(str(tmp_path / "models" / "clip"))):
        tool.interrogate(photo(), SHORT)
    shutil.copytree(data / "models" / "BLIP", tmp_path / "models" / "BLIP")
    (tmp_path / "models" / "clip" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InterrogateModelError, match=re.escape(f"{tmp_path / 'models' / 'clip'}/")):
        tool.interrogate(photo(), SHORT)


def test_the_download_fetches_every_file_and_checks_sha256(tmp_path, monkeypatch):
    files: dict[str, bytes] = {}
    with serving(files) as base:

        def served(remotes, folder):
            table = []
            for remote in remotes:
                body = f"{folder} {remote.name}".encode()
                files[f"/{folder}/{remote.name}"] = body
                digest = hashlib.sha256(body).hexdigest()
                table.append(RemoteFile(remote.name, f"{base}/{folder}/{remote.name}", digest))
            return tuple(table)

        monkeypatch.setattr(interrogate_models, "BLIP_FILES", served(interrogate_models.BLIP_FILES, "blip"))
        monkeypatch.setattr(interrogate_models, "CLIP_FILES", served(interrogate_models.CLIP_FILES, "clip"))
        files["/clip/model.safetensors"] = b"tampered"
        with pytest.raises(DownloadError, match="checksum"):
            download_interrogate_models(tmp_path / "models")
        assert not (tmp_path / "models" / "clip" / "model.safetensors").exists()
        files["/clip/model.safetensors"] = b"clip model.safetensors"
        reports = []
        paths = download_interrogate_models(tmp_path / "models", lambda remote, done, total: reports.append(remote))
        clip = list(interrogate_models.CLIP_FILES)
        after_failure = {r.url for r in clip[[r.name for r in clip].index("model.safetensors") :]}
    assert {p.relative_to(tmp_path / "models").as_posix() for p in paths} == (
        {f"BLIP/{name}" for name in interrogate_models.BLIP_SHA256}
        | {f"clip/{name}" for name in interrogate_models.CLIP_SHA256}
    )
    assert (tmp_path / "models" / "BLIP" / "vocab.txt").read_bytes() == b"blip vocab.txt"
    assert {r.url for r in reports} == after_failure  # files already there are kept, not fetched again


def test_the_term_lists_come_from_the_clip_interrogator_package():
    lists = packaged_lists()
    assert all((lists / f"{category}.txt").is_file() for category in CATEGORIES)
    assert len(read_terms(lists, "flavors", 1500)) == 1500 and len(read_terms(lists, "mediums", 0)) > 50


def test_the_api_answers_with_the_caption(data, tmp_path):
    from fastapi.testclient import TestClient

    from modules.api.web_server import create_app
    from modules.cmd_args import parse_args
    from modules.core.services import Services

    shutil.copytree(data / "models", tmp_path / "models")
    services = Services.create(parse_args(["--data-dir", str(tmp_path)]))
    services.interrogator.lists_dir = data / "lists"
    services.opts.set_many(
        {"interrogate_clip_min_length": SHORT.min_length, "interrogate_clip_max_length": SHORT.max_length}
    )
    client = TestClient(create_app(services, []))
    buffer = io.BytesIO()
    photo().save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode()
    response = client.post("/sdapi/v1/interrogate", json={"image": image, "model": "clip"})
    assert response.status_code == 200, response.text
    assert list(response.json()) == ["caption"] and len(response.json()["caption"].split(", ")) == 1 + len(CATEGORIES)
    booru = client.post("/sdapi/v1/interrogate", json={"image": image, "model": "deepdanbooru"})
    assert booru.status_code == 404 and "not supported" in booru.json()["detail"]
    shutil.rmtree(tmp_path / "models" / "BLIP")
    missing = client.post("/sdapi/v1/interrogate", json={"image": image, "model": "clip"})
    assert missing.status_code == 404 and str(tmp_path / "models" / "BLIP") in missing.json()["detail"]
    services.engine.shutdown()


def test_batch_appends_each_images_interrogation_to_the_prompt(engine, demo_model, described, tmp_path):
    from modules.jobs.generation import RunSettings
    from modules.jobs.generation_params import GenerationParams
    from modules.jobs.img2img_batch import run_batch

    tool, _ = described
    (tmp_path / "in").mkdir()
    for number in (1, 2):
        photo(number).resize((64, 64)).save(tmp_path / "in" / f"{number}.png")
    params = GenerationParams(prompt="a prompt", steps=1, width=64, height=64, seed=1)
    describe = partial(tool.interrogate, settings=SHORT)
    engine.call(
        "batch",
        lambda ctx: run_batch(
            demo_model, params, ctx, RunSettings(), None, str(tmp_path / "in"), str(tmp_path / "out"), describe=describe
        ),
    )
    for number in (1, 2):
        expected = "a prompt, " + tool.interrogate(Image.open(tmp_path / "in" / f"{number}.png"), SHORT)
        assert Image.open(tmp_path / "out" / f"{number}.png").info["parameters"].startswith(expected + "\n")


def test_an_open_clip_folder_in_models_clip_ranks_the_terms(data, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(data / "models" / "BLIP", models / "BLIP")
    write_tiny_open_clip(models / "clip" / "tiny-open-clip")
    tool = interrogator(data, tmp_path / "cache")
    tool.models_dir = models
    text = tool.interrogate(photo(), SHORT)
    _caption, *terms = text.split(", ")
    assert [term in TERMS[category] for term, category in zip(terms, CATEGORIES)] == [True] * len(CATEGORIES)
    assert type(tool._clip).__name__ == "OpenClipRanker" and tool.interrogate(photo(), SHORT) == text
    weights = models / "clip" / "tiny-open-clip" / "open_clip_model.safetensors"
    assert (tool.cache_dir / hashlib.sha256(weights.read_bytes()).hexdigest()[:16]).is_dir()
    weights.unlink()
    with pytest.raises(MissingInterrogateModel, match=r"open_clip_model.safetensors"):
        tool.interrogate(photo(), SHORT)
