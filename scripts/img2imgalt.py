"""img2img alternative test (img2img): find, by running Euler backwards from the input image with the original
prompt, the noise that would have made it, then sample from that noise with the new prompt. Use Euler, the same
sampling steps as decode steps, a low CFG scale and denoising 1, as A1111's notes say."""

from dataclasses import dataclass

import gradio as gr
import torch

import modules.scripts as scripts
from modules.jobs.generation import GenerationResult
from modules.processing import process_images
from modules.sampling import noise as noise_sources
from modules.sampling.guidance import CFGDenoiser


@dataclass(frozen=True)
class Decode:
    """What the noise is found with: the original prompts, their CFG scale and steps, and the sigma adjustment."""

    prompt: str
    negative_prompt: str
    cfg_scale: float
    steps: int
    sigma_adjustment: bool


def reverse_euler(model: CFGDenoiser, init: torch.Tensor, sigmas: torch.Tensor, sigma_adjustment: bool) -> torch.Tensor:
    """The noise that sampling from σ_max would turn into `init`: Euler steps up the ascending `sigmas` (0 first),
    each slope taken at the step's upper σ; with the sigma adjustment, at its lower σ (the first step, at σ = 0,
    then changes nothing), normalised by the last σ rather than by the result's spread."""
    x = init
    ones = x.new_ones(x.shape[0])
    for i in range(1, len(sigmas)):
        at = sigmas[i - 1] if sigma_adjustment else sigmas[i]
        if at > 0:
            x = x + (x - model(x, at * ones)) / at * (sigmas[i] - sigmas[i - 1])
    return x / sigmas[-1] if sigma_adjustment else x / x.std()


def mixed(found: torch.Tensor, fresh: torch.Tensor, randomness: float) -> torch.Tensor:
    """The found noise and fresh noise mixed by `randomness`, keeping unit spread."""
    return ((1 - randomness) * found + randomness * fresh) / ((randomness**2 + (1 - randomness) ** 2) ** 0.5)


class Script(scripts.Script):
    def __init__(self):
        self.cache: tuple[Decode, torch.Tensor, torch.Tensor] | None = None  # (decode settings, coarse latent, noise)

    def title(self):
        return "img2img alternative test"

    def show(self, is_img2img):
        return is_img2img

    def ui(self, is_img2img):
        original_prompt = gr.Textbox(label="Original prompt", lines=1, elem_id=self.elem_id("original_prompt"))
        original_negative = gr.Textbox(
            label="Original negative prompt", lines=1, elem_id=self.elem_id("original_negative_prompt")
        )
        cfg = gr.Slider(
            label="Decode CFG scale", minimum=0.0, maximum=15.0, step=0.1, value=1.0, elem_id=self.elem_id("cfg")
        )
        steps = gr.Slider(label="Decode steps", minimum=1, maximum=150, step=1, value=50, elem_id=self.elem_id("st"))
        randomness = gr.Slider(
            label="Randomness", minimum=0.0, maximum=1.0, step=0.01, value=0.0, elem_id=self.elem_id("randomness")
        )
        sigma_adjustment = gr.Checkbox(
            label="Sigma adjustment for finding noise for image", value=False, elem_id=self.elem_id("sigma_adjustment")
        )
        return [original_prompt, original_negative, cfg, steps, randomness, sigma_adjustment]

    def run(self, p, original_prompt, original_negative_prompt, cfg, st, randomness, sigma_adjustment):
        decode = Decode(
            original_prompt or "", original_negative_prompt or "", float(cfg), int(st), bool(sigma_adjustment)
        )
        p.batch_size = 1
        p.extra_generation_params = {
            **p.extra_generation_params,
            "Decode prompt": decode.prompt,
            "Decode negative prompt": decode.negative_prompt,
            "Decode CFG scale": decode.cfg_scale,
            "Decode steps": decode.steps,
            "Randomness": randomness,
            "Sigma Adjustment": decode.sigma_adjustment,
        }

        def start_noise(job, noise: torch.Tensor) -> torch.Tensor:
            init = job.init_latents.float()
            found = self.found_noise(job, decode, init)
            seeds = [seed + 1 + i for i, seed in enumerate(job.hooks.p.seeds)]
            s = job.settings.sampling
            fresh = (
                noise_sources.ImageRNG(tuple(init.shape[1:]), seeds, source=s.randn_source, device=init.device)
                .next()
                .to(init.dtype)
            )
            return mixed(found, fresh, float(randomness)) - init / job.model.denoiser.sigma_max

        p.start_noise = start_noise
        return process_images(p)

    def found_noise(self, job, decode: Decode, init: torch.Tensor) -> torch.Tensor:
        """The reverse-Euler noise of `init`, reused while the settings and (roughly) the image stay the same."""
        coarse = (init.cpu() * 10).to(torch.int64)
        if self.cache is not None:
            cached, latent, noise = self.cache
            if cached == decode and latent.shape == coarse.shape and int((latent - coarse).abs().sum()) < 100:
                return noise.to(init.device)
        conditioning = job.encode(
            [decode.prompt] * len(init), [decode.negative_prompt] * len(init), GenerationResult(params=job.params)
        )
        plan = job.sampling_plan()
        model = CFGDenoiser(job.model_pass(job.model, conditioning, plan, len(init)), decode.cfg_scale, decode.steps)
        sigmas = job.model.denoiser.uniform_sigmas(decode.steps).flip(0).to(init.device)
        with torch.inference_mode():
            noise = reverse_euler(model, init, sigmas, decode.sigma_adjustment)
        self.cache = (decode, coarse, noise.cpu())
        return noise
