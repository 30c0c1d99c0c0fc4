"""Override settings in the browser: ↙️ with infotext naming settings shows them as entries, an entry removed by
hand is not applied, and the dropdown hides again once empty."""

from playwright.sync_api import expect

TEXT = "a fox\nSteps: 2, Sampler: Euler a, Seed: 5, Size: 64x64, RNG: CPU, ENSD: 31337, Eta: 0.5, Sigma churn: 0.2"


def test_paste_shows_the_settings_and_generate_uses_the_entries_left(page):
    dropdown = page.locator("#txt2img_override_settings")
    chips = dropdown.locator(".token")
    expect(dropdown).to_be_hidden()
    page.locator("#txt2img_prompt textarea").fill(TEXT)
    page.click("#txt2img_paste")
    expect(dropdown).to_be_visible(timeout=20000)
    expect(dropdown.locator("label, span").first).to_contain_text("Override settings")
    expect(chips).to_have_text(["RNG: CPU", "ENSD: 31337", "Eta: 0.5", "Sigma churn: 0.2"])
    chips.filter(has_text="RNG: CPU").locator(".token-remove").click()
    expect(chips).to_have_text(["ENSD: 31337", "Eta: 0.5", "Sigma churn: 0.2"])
    page.click("#txt2img_generate")
    info = page.locator("#html_info_txt2img")
    expect(info).to_contain_text("ENSD: 31337", timeout=60000)
    expect(info).to_contain_text("Eta: 0.5")
    expect(info).not_to_contain_text("RNG: CPU")
    for _ in range(3):
        chips.first.locator(".token-remove").click()
    expect(dropdown).to_be_hidden()
