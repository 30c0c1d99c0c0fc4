"""The extra networks in the browser: in the Lora tab beside Generation, a click on a LoRA card puts its tag
into the prompt."""

import shutil

import pytest
import torch
from app_process import running_app, with_demo_checkpoint
from network_files import a1111_embedding, kohya_lora
from playwright.sync_api import expect
from tiny_models import tiny_modules


@pytest.fixture(scope="module")
def app_data(tmp_path_factory):
    return tmp_path_factory.mktemp("networks-data")


@pytest.fixture(scope="module")
def app_url(app_data, demo_checkpoint):
    """app.py with the demo model, a LoRA and an embedding."""
    data = app_data
    with_demo_checkpoint(data, demo_checkpoint)
    (data / "models" / "Lora").mkdir(parents=True)
    unet, _, (text_encoder,) = tiny_modules("sd1", seed=7)
    kohya_lora(data / "models" / "Lora" / "tinylora.safetensors", unet, text_encoder)
    (data / "embeddings").mkdir()
    a1111_embedding(data / "embeddings" / "mystyle.pt", torch.randn(2, 64))
    with running_app(data, model_name="demo.safetensors") as url:
        yield url


def test_clicking_cards_edits_the_prompt(page):
    prompt = page.locator("#txt2img_prompt textarea")
    prompt.fill("a castle")
    page.click("#txt2img_extra_tabs button[role=tab]:has-text('Lora')")  # the tab beside Generation
    card = page.locator("#txt2img_lora_cards .thumbnail-item").first
    expect(card).to_be_visible(timeout=20000)
    card.click()
    expect(prompt).to_have_value("a castle <lora:tinylora:1>", timeout=10000)
    card.click()
    expect(prompt).to_have_value("a castle", timeout=10000)


def test_cards_are_searched_sorted_and_filled_on_load_and_an_empty_tab_names_its_folder(
    page, app_data, demo_checkpoint
):
    shutil.copy(demo_checkpoint, app_data / "models" / "Stable-diffusion" / "added later.safetensors")
    page.reload()  # a new page load shows the file without 🔄 (as the demo model written at first start)
    page.click("#txt2img_extra_tabs button[role=tab]:has-text('Checkpoints')")
    cards = page.locator("#txt2img_checkpoints_cards .thumbnail-item")
    expect(cards).to_have_count(2, timeout=20000)
    for card in cards.all():  # A1111's card size, not stretched across the row
        box = card.bounding_box()
        assert 200 <= box["width"] <= 300 and box["height"] > box["width"], box
    sort = page.locator("#txt2img_checkpoints_extra_sort input")
    sort.click()
    page.locator("[role=option]", has_text="Date modified").click()
    expect(cards.first).to_contain_text("added later", timeout=10000)  # the newest file first
    search = page.locator("#txt2img_checkpoints_extra_search textarea, #txt2img_checkpoints_extra_search input")
    search.fill("demo")
    expect(cards).to_have_count(1, timeout=10000)
    expect(cards.first).to_contain_text("demo")
    page.click("#txt2img_extra_tabs button[role=tab]:has-text('Hypernetworks')")
    hint = page.locator("#txt2img_hypernetworks_empty")
    expect(hint).to_contain_text("models/hypernetworks")
    expect(page.locator("#txt2img_hypernetworks_cards .thumbnail-item")).to_have_count(0)
