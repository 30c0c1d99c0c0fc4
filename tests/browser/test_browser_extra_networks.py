"""The extra networks in the browser: in the Lora tab beside Generation, a click on a LoRA card puts its tag
into the prompt."""

import pytest
import torch
from app_process import running_app, with_demo_checkpoint
from network_files import a1111_embedding, kohya_lora
from playwright.sync_api import expect
from tiny_models import tiny_modules


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, demo_checkpoint):
    """app.py with the demo model, a LoRA and an embedding."""
    data = tmp_path_factory.mktemp("networks-data")
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
