"""The extra networks in the browser: in the Lora tab beside Generation, a click on a LoRA card puts its tag
into the prompt."""

import shutil

import pytest
import torch
from network_files import a1111_embedding, kohya_lora
from page_data import removed_after, unique
from playwright.sync_api import expect
from tiny_models import tiny_modules

LORA, EMBEDDING, LATER = unique("tinylora"), unique("mystyle"), unique("added later")


@pytest.fixture(scope="module")
def app_data(page_app):
    """The shared page server's data dir with a LoRA and an embedding of this module's own (the page lists them
    when it loads); they and the checkpoint a test adds are removed when the module is done."""
    data = page_app[1]
    lora, embedding = data / "models" / "Lora" / f"{LORA}.safetensors", data / "embeddings" / f"{EMBEDDING}.pt"
    with removed_after(lora, embedding, data / "models" / "Stable-diffusion" / f"{LATER}.safetensors"):
        lora.parent.mkdir(parents=True, exist_ok=True)
        unet, _, (text_encoder,) = tiny_modules("sd1", seed=7)
        kohya_lora(lora, unet, text_encoder)
        embedding.parent.mkdir(exist_ok=True)
        a1111_embedding(embedding, torch.randn(2, 64))
        yield data


@pytest.fixture
def page(reused_page):
    """One page for the module: the second test loads it again itself."""
    return reused_page


def test_clicking_cards_edits_the_prompt(app_data, page):
    prompt = page.locator("#txt2img_prompt textarea")
    prompt.fill("a castle")
    page.click("#txt2img_extra_tabs button[role=tab]:has-text('Lora')")  # the tab beside Generation
    card = page.locator("#txt2img_lora_cards .thumbnail-item", has_text=LORA)
    expect(card).to_be_visible(timeout=20000)
    card.click()
    expect(prompt).to_have_value(f"a castle <lora:{LORA}:1>", timeout=10000)
    card.click()
    expect(prompt).to_have_value("a castle", timeout=10000)


def test_cards_are_searched_sorted_and_filled_on_load_and_an_empty_tab_names_its_folder(
    page, app_data, demo_checkpoint
):
    shutil.copy(demo_checkpoint, app_data / "models" / "Stable-diffusion" / f"{LATER}.safetensors")
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
    expect(cards.first).to_contain_text(LATER, timeout=10000)  # the newest file first
    search = page.locator("#txt2img_checkpoints_extra_search textarea, #txt2img_checkpoints_extra_search input")
    search.fill("demo")
    expect(cards).to_have_count(1, timeout=10000)
    expect(cards.first).to_contain_text("demo")
    page.click("#txt2img_extra_tabs button[role=tab]:has-text('Hypernetworks')")
    hint = page.locator("#txt2img_hypernetworks_empty")
    expect(hint).to_contain_text("models/hypernetworks")
    expect(page.locator("#txt2img_hypernetworks_cards .thumbnail-item")).to_have_count(0)
