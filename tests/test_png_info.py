"""PNG Info: reading texts from PNG, JPEG and WebP files, the tab's HTML, and the real app's endpoints."""

import io
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import gradio as gr
import pytest
import requests
from app_process import endpoint_args
from PIL import Image, PngImagePlugin

from modules.images import decode_user_comment, read_image_texts, read_infotext, save_unique
from modules.ui import img2img
from modules.ui.png_info import describe

INFOTEXT = 'a cat, <b>bold</b>\nNegative prompt: dog\nSteps: 7, Sampler: Euler, Seed: 3, Size: 64x96, Model: "x, y"'


def exif_image(fmt: str, comment: bytes) -> Image.Image:
    """A JPEG or WebP file written by PIL with `comment` as its EXIF UserComment, opened again."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = comment
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buffer, fmt, exif=exif)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_png_written_by_the_app_shows_every_text_chunk(tmp_path):
    path = save_unique(Image.new("RGB", (8, 8)), tmp_path, "3-a cat", INFOTEXT)
    image = Image.open(path)
    meta = PngImagePlugin.PngInfo()
    meta.add_text("parameters", INFOTEXT)
    meta.add_itxt("Comment", "ünïcode note", zip=True)
    meta.add_text("Software", "paint")
    image.save(tmp_path / "more.png", pnginfo=meta)
    assert read_image_texts(Image.open(tmp_path / "more.png")) == {
        "parameters": INFOTEXT,
        "Comment": "ünïcode note",
        "Software": "paint",
    }
    assert read_infotext(image) == INFOTEXT
    assert read_infotext(Image.new("RGB", (4, 4))) is None


COMMENTS = {
    "A1111 (UNICODE, big-endian UTF-16)": b"UNICODE\0" + INFOTEXT.encode("utf-16-be"),
    "little-endian UTF-16": b"UNICODE\0" + INFOTEXT.encode("utf-16-le"),
    "UTF-16 with a byte order mark": b"UNICODE\0" + INFOTEXT.encode("utf-16"),
    "ASCII code": b"ASCII\0\0\0" + INFOTEXT.encode(),
    "undefined code": bytes(8) + INFOTEXT.encode(),
    "UTF-8 under the UNICODE code": b"UNICODE\0" + INFOTEXT.encode(),
}


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
@pytest.mark.parametrize("comment", COMMENTS.values(), ids=COMMENTS.keys())
def test_exif_user_comment_becomes_the_parameters(fmt, comment):
    assert read_image_texts(exif_image(fmt, comment))["parameters"] == INFOTEXT


def test_user_comment_decoding_keeps_non_ascii_text():
    text = "猫, ünï\nSteps: 1, Seed: 2, Size: 8x8"
    assert decode_user_comment(b"UNICODE\0" + text.encode("utf-16-be") + b"\0\0") == text
    assert decode_user_comment(b"UNICODE\0" + text.encode("utf-16-le")) == text
    assert decode_user_comment(text) == text


def test_a_png_chunk_wins_over_exif_and_a_jpeg_comment_is_shown(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG", comment="made by hand")
    assert read_image_texts(Image.open(buffer)) == {"comment": "made by hand"}
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\0\0\0from exif"
    meta = PngImagePlugin.PngInfo()
    meta.add_text("parameters", "from chunk")
    Image.new("RGB", (8, 8)).save(tmp_path / "both.png", pnginfo=meta, exif=exif)
    assert read_infotext(Image.open(tmp_path / "both.png")) == "from chunk"


def test_the_tab_shows_texts_and_parsed_parameters_escaped(tmp_path):
    path = save_unique(Image.new("RGB", (8, 8)), tmp_path, "3-a cat", INFOTEXT)
    texts, parameters, infotext = describe(str(path))
    assert infotext == INFOTEXT
    assert "<b>parameters</b>" in texts and "&lt;b&gt;bold&lt;/b&gt;" in texts and "<b>bold</b>" not in texts
    assert "<tr><th>Steps</th><td>7</td></tr>" in parameters and "<tr><th>Size</th><td>64x96</td></tr>" in parameters
    assert "<td>x, y</td>" in parameters and "&lt;b&gt;" in parameters
    assert "Size-1" not in parameters and "Clip skip" not in parameters and "Mask mode" not in parameters
    assert describe(None) == ("", "", "")
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.jpg")
    assert describe(str(tmp_path / "plain.jpg"))[0] == "<p>Nothing found in the image.</p>"
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(gr.Error, match=r"broken.png"):
        describe(str(tmp_path / "broken.png"))


# The real app: generate with the demo model, read the PNG back, send it to the tabs.


@pytest.fixture(scope="module")
def server(page_app):
    """The shared app (page and API, demo.safetensors loaded) with a second checkpoint listed while this module
    runs: (URL, data dir)."""
    url, data = page_app
    second = data / "models" / "Stable-diffusion" / "second.safetensors"
    shutil.copy(data / "models" / "Stable-diffusion" / "demo.safetensors", second)
    assert requests.post(url + "sdapi/v1/refresh-checkpoints", timeout=60).ok
    yield url, data
    second.unlink()
    assert requests.post(url + "sdapi/v1/refresh-checkpoints", timeout=60).ok


def log_from_here(data: Path) -> Callable[[], str]:
    """Reads the shared server's log from its present end: what was written since."""
    start = (data / "server.log").stat().st_size
    return lambda: (data / "server.log").read_bytes()[start:].decode()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server[0], verbose=False)


def call(client, api_name: str, *args) -> dict:
    """Call an endpoint; its outputs by label (update dicts give their value)."""
    returns = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]["returns"]
    result = client.predict(*args, api_name=api_name)
    return {
        r["label"]: value.get("value", value) if isinstance(value, dict) and "__type__" in value else value
        for r, value in zip(returns, result)
    }


@pytest.fixture(scope="module")
def generated(server, client):
    """A PNG the app generated and saved, with its infotext."""
    values = {
        "Prompt": "a lighthouse, at night",
        "Negative prompt": "fog",
        "Sampling method": "Euler a",
        "Sampling steps": 3,
        "Width": 64,
        "Height": 96,
        "Seed": 77,
        "Clip skip": 2,
    }
    folder = server[1] / "outputs" / "txt2img-images" / date.today().isoformat()
    before = set(folder.glob("*.png"))  # the shared server's earlier images
    client.predict(*endpoint_args(client, "/txt2img", values), api_name="/txt2img")
    (path,) = set(folder.glob("*.png")) - before
    return path, Image.open(path).info["parameters"]


def test_generated_png_read_and_sent_to_txt2img(client, generated):
    from gradio_client import handle_file

    path, infotext = generated
    texts, parameters, text = client.predict(handle_file(str(path)), api_name="/pnginfo")
    assert text == infotext and "Model: demo" in text
    assert "<tr><th>Seed</th><td>77</td></tr>" in parameters and "<b>parameters</b>" in texts
    fields = call(client, "/pnginfo_send_to_txt2img", handle_file(str(path)))
    assert fields["Prompt"] == "a lighthouse, at night" and fields["Negative prompt"] == "fog"
    assert (fields["Sampling steps"], fields["Seed"], fields["Width"], fields["Height"]) == (3, 77, 64, 96)
    assert fields["Sampling method"] == "Euler a" and fields["Clip skip"] == 2
    assert fields["Batch count"] == {"__type__": "update"}  # not in the infotext: left as it is
    assert fields["Stable Diffusion checkpoint"] == {"__type__": "update"}  # the loaded model: no switch


def test_sent_to_inpaint_with_the_image_and_the_inpaint_fields(client, generated):
    from gradio_client import handle_file

    path, _ = generated
    fields = call(client, "/pnginfo_send_to_inpaint", handle_file(str(path)))
    assert fields["img2img mode"] == img2img.INPAINT
    assert Image.open(fields["Image for inpainting with mask"]["background"]).size == (64, 96)
    assert fields["Seed"] == 77 and fields["Mask mode"] == "Inpaint masked"
    assert "Hires steps" not in fields  # a txt2img-only field isn't on img2img


def test_a_jpeg_naming_another_checkpoint_picks_it_and_a_missing_one_warns(server, client, generated, tmp_path):
    from gradio_client import handle_file

    log = log_from_here(server[1])
    path, infotext = generated
    for name, model in (("second.jpg", "second"), ("missing.jpg", "nowhere")):
        text = infotext.replace("Model: demo", f"Model: {model}").replace("Model hash: ", "Old hash: ")
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.encode("utf-16-be")
        Image.open(path).convert("RGB").save(tmp_path / name, exif=exif)
    fields = call(client, "/pnginfo_send_to_img2img", handle_file(str(tmp_path / "second.jpg")))
    assert fields["Stable Diffusion checkpoint"] == "second.safetensors"
    assert fields["img2img mode"] == img2img.IMG2IMG and fields["Seed"] == 77
    fields = call(client, "/pnginfo_send_to_img2img", handle_file(str(tmp_path / "missing.jpg")))
    assert fields["Stable Diffusion checkpoint"] == {"__type__": "update"}
    assert "Checkpoint nowhere is not here; keeping demo.safetensors" in log()


def test_paste_button_reads_the_prompt_box_or_the_last_generation(server, client, generated):
    log = log_from_here(server[1])
    fields = call(client, "/txt2img_paste", "")
    assert fields["Prompt"] == "a lighthouse, at night" and fields["Seed"] == 77
    fields = call(client, "/img2img_paste", "a fox\nSteps: many, Seed: 5, Size: 128x64, Denoising strength: 0.4")
    assert fields["Prompt"] == "a fox" and fields["Negative prompt"] == ""
    assert (fields["Seed"], fields["Width"], fields["Height"], fields["Denoising strength"]) == (5, 128, 64, 0.4)
    assert fields["Sampling steps"] == {"__type__": "update"}
    assert "'many'" in log()
