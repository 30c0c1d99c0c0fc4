"""A1111 1.10's noise, prompt schedules, guidance and inpainting glue, rebuilt for tests/a1111_oracle.py (the oracle
that tests/test_a1111_parity.py holds the project to), in the oracle's own words and without the project's noise,
prompt-parsing, step-conditioning, guidance or masking code.

- sd_samplers_timesteps.py's CompVisTimestepsDenoiser / VDenoiser and sd_samplers_lcm.py's LCM denoiser.
- processing.py / masking.py / images.py: img2img's mask for "Whole picture" (create_binary_mask: an RGBA mask's
  alpha hardened at 128; OpenCV's Gaussian blur across, then down, σ over 2·int(2.5σ + 0.5) + 1 pixels), the
  latent mask (Pillow's default bicubic resize, rounded), masking.fill, the overlay through the mask doubled;
  the latent upscale modes.
- rng.py: ImageRNG, one generator per image, first() then next(), ENSD re-seeding after first(); a variation
  seed's noise slerped in (each (channel, column) vector along the height on its own; the weights the wrong way
  round when the two are nearly parallel); "Resize seed from": the seed's noise made at that size and pasted
  centred into the image generator's first draw. A1111's randn(seed, …) also re-seeds torch's global generator
  (or, for NV, its own global Philox one), and k-diffusion draws the no_dpmpp_sde_batch_determinism tree's seed
  and the VAE draws its posterior sample from it: `global_generator()` gives the oracle a private copy of
  torch's global state to do the same with.
- sd_samplers_common.py: TorchHijack, and the torchsde patch (each Brownian tree node's Gaussian is the
  source's first draw for the node's seed).
- prompt_parser.py: the prompt-editing schedule of a text (`[a:b:when]`, `[b:when]`, `[a|b|…]`, nested; `when`
  with a "." a share of the steps, else a step; in a hires pass counted from the first pass, unless
  use_old_scheduling); AND parts with their weights; each part's (and each negative prompt's) schedule encoded
  as one batch, so its shorter texts end in the empty prompt's chunks; the parts stacked at a step by repeating a
  shorter one's last vector. sd_models_xl.py: SDXL's all-empty negative prompt is zeros (text and pooled).
- sd_samplers_cfg_denoiser.py: CFGDenoiser.forward: rows [each image's parts…, each image's negative];
  Skip Early CFG, else NGMS (odd calls, or all with s_min_uncond_all, below s_min_uncond in σ or, for timestep
  samplers, t); Pad conds v0 / Pad conds; one model call when cond and uncond are as long (or the negatives are
  skipped), else the conds in calls of twice the images and the negatives apart; the skipped negatives stood in
  for by each image's first part at scale 1; combine_denoised; DDIM CFG++'s multiplier and last uncond; the
  inpainting blend into the input (timestep samplers) or into the result (k-diffusion).

Not rebuilt: A1111 normalises "Original" emphasis over the batch it encodes (a schedule's texts together); the
oracle encodes each text alone with the project's encoder, so prompt editing with emphasis is not compared."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter
from sampling_oracles import k_diffusion_module, philox_randn
from torchsde._brownian import brownian_interval

kd_sampling = k_diffusion_module("sampling")
kd_external = k_diffusion_module("external")


@contextlib.contextmanager
def global_generator() -> Iterator[None]:
    """torch's global CPU generator, for A1111's glue to seed and draw from as A1111 does, restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        yield


# --- model wrappers and A1111's small glue ---------------------------------------------------------------------


def per_image(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)


class TimestepsDenoiser:
    """CompVisTimestepsDenoiser / CompVisTimestepsVDenoiser: the model's ε at (possibly fractional) timesteps;
    a v model's output turned into ε with √ᾱ and √(1 − ᾱ) at the timestep truncated to a whole one."""

    def __init__(self, ldm: Any) -> None:
        self.ldm = ldm

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        out = self.ldm.apply_model(x, t, cond)
        if self.ldm.parameterization != "v":
            return out
        whole = t.to(torch.int)
        return (
            per_image(self.ldm.sqrt_alphas_cumprod[whole], x) * out
            + per_image(self.ldm.sqrt_one_minus_alphas_cumprod[whole], x) * x
        )


class LCMDenoiser(kd_external.DiscreteEpsDDPMDenoiser):
    """A1111's LCMCompVisDenoiser: the 50 LCM steps 19, 39, …, 999 of the training schedule, σ → t snapped to the
    nearest of them, and the boundary-condition scaling of LCM on the ε model's x0."""

    def __init__(self, ldm: Any, original_steps: int = 50) -> None:
        self.skip = len(ldm.alphas_cumprod) // original_steps
        picked = ldm.alphas_cumprod[torch.arange(original_steps) * self.skip + self.skip - 1]
        super().__init__(ldm, picked, quantize=None)

    def get_sigmas(self, n: int | None = None) -> torch.Tensor:
        start, end = self.sigma_to_t(self.sigma_max), self.sigma_to_t(self.sigma_min)
        return kd_sampling.append_zero(self.t_to_sigma(torch.linspace(float(start), float(end), n)))

    def sigma_to_t(self, sigma: torch.Tensor, quantize: bool | None = None) -> torch.Tensor:
        nearest = (sigma.log() - self.log_sigmas.to(sigma)[:, None]).abs().argmin(dim=0).view(sigma.shape)
        return nearest * self.skip + (self.skip - 1)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        index = torch.clamp(((t - (self.skip - 1)) / self.skip).float(), min=0, max=len(self.sigmas) - 1)
        return super().t_to_sigma(index)

    def get_eps(self, *args, **kwargs) -> torch.Tensor:
        return self.inner_model.apply_model(*args, **kwargs)

    def forward(self, input: torch.Tensor, sigma: torch.Tensor, **kwargs) -> torch.Tensor:
        c_out, c_in = (per_image(value, input) for value in self.get_scalings(sigma))
        x0 = input + self.get_eps(input * c_in, self.sigma_to_t(sigma), **kwargs) * c_out
        scaled_t = per_image(self.sigma_to_t(sigma), input) * 10.0
        c_skip = 0.25 / (scaled_t**2 + 0.25)
        return scaled_t / (scaled_t**2 + 0.25) ** 0.5 * x0 + c_skip * input


def latent_keep(mask: Image.Image, shape: tuple[int, ...]) -> torch.Tensor:
    """img2img's latent mask from a mask image (255 = repaint): resized to the latent size with Pillow's default
    filter, the first channel / 255, rounded; A1111's `mask` (1 = keep) is 1 − that, for every channel."""
    small = np.asarray(mask.convert("RGB").resize((shape[2], shape[1])), dtype=np.float32)[..., 0] / 255
    return torch.from_numpy(1.0 - np.around(small)).float().expand(shape[0], -1, -1)


def fill(image: Image.Image, mask: Image.Image) -> Image.Image:
    """masking.fill (masked content "fill", and before the latent fills): the unmasked pixels as a premultiplied
    layer (alpha 255 − mask), Gaussian-blurred at radii 256, 64, 16, 4, 2 and 0, laid on an empty RGBA canvas
    with alpha compositing 1, 1, 2, 4, 2 and 1 times; the canvas's RGB."""
    layer = Image.new("RGBa", image.size)
    layer.paste(image.convert("RGBA").convert("RGBa"), mask=Image.eval(mask.convert("L"), lambda v: 255 - v))
    canvas = Image.new("RGBA", image.size)
    for radius, times in zip((256, 64, 16, 4, 2, 0), (1, 1, 2, 4, 2, 1)):
        blurred = layer.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(times):
            canvas.alpha_composite(blurred)
    return canvas.convert("RGB")


def inpaint_mask(raw: Image.Image, blur_x: int, blur_y: int, mask_round: bool = True) -> Image.Image:
    """img2img's mask for "Whole picture" (at the image's size): create_binary_mask (an RGBA mask's alpha, made
    hard at 128 with mask_round, else the luminance), then cv2.GaussianBlur across, then down, each σ over
    2·int(2.5σ + 0.5) + 1 pixels."""
    import cv2

    if raw.mode == "RGBA" and raw.getextrema()[-1] != (255, 255):
        alpha = raw.split()[-1].convert("L")
        mask = alpha.point(lambda v: 255 if v > 128 else 0) if mask_round else alpha
    else:
        mask = raw.convert("L")
    values = np.array(mask)
    if blur_x > 0:
        values = cv2.GaussianBlur(values, (2 * int(2.5 * blur_x + 0.5) + 1, 1), blur_x)
    if blur_y > 0:
        values = cv2.GaussianBlur(values, (1, 2 * int(2.5 * blur_y + 0.5) + 1), blur_y)
    return Image.fromarray(values)


def overlay(original: Image.Image, generated: Image.Image, mask: Image.Image) -> Image.Image:
    """apply_overlay for "Whole picture": mask_for_overlay is the mask doubled (at most 255); the original pasted
    premultiplied onto a transparent layer through its inverse, alpha-composited over the generated image."""
    doubled = np.clip(np.asarray(mask).astype(np.float32) * 2, 0, 255).astype(np.uint8)
    layer = Image.new("RGBa", original.size)
    layer.paste(original.convert("RGBA").convert("RGBa"), mask=Image.fromarray(255 - doubled))
    result = generated.convert("RGBA")
    result.alpha_composite(layer.convert("RGBA"))
    return result.convert("RGB")


# A1111's latent upscale modes: torch interpolation mode and antialias
LATENT_UPSCALE_MODES = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}


# --- noise ------------------------------------------------------------------------------------------------------


def slerp(strength: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of two (C, H, W) noises by `strength`, per (channel, column) vector along dim 1."""
    low_unit, high_unit = low / low.norm(dim=1, keepdim=True), high / high.norm(dim=1, keepdim=True)
    cosine = (low_unit * high_unit).sum(1)
    if cosine.mean() > 0.9995:
        return low * strength + high * (1 - strength)
    angle = cosine.acos()
    return (((1.0 - strength) * angle).sin() / angle.sin()).unsqueeze(1) * low + (
        (strength * angle).sin() / angle.sin()
    ).unsqueeze(1) * high


class ImageNoise:
    """A1111's ImageRNG for the CPU (= GPU on this machine) and NV sources."""

    def __init__(
        self,
        shape: Sequence[int],
        seeds: Sequence[int],
        source: str,
        eta_noise_seed_delta: int,
        subseeds: Sequence[int] | None = None,
        subseed_strength: float = 0.0,
        seed_resize: tuple[int, int] = (0, 0),
    ) -> None:
        self.shape, self.seeds, self.source = tuple(shape), list(seeds), source
        self.delta = eta_noise_seed_delta
        self.subseeds, self.strength = subseeds, subseed_strength
        resize_w, resize_h = seed_resize
        self.noise_shape = (
            self.shape if resize_w <= 0 or resize_h <= 0 else (self.shape[0], resize_h // 8, resize_w // 8)
        )
        self.generators = [self._generator(seed) for seed in self.seeds]
        self.is_first = True

    def _generator(self, seed: int) -> Any:
        return [seed, 0] if self.source == "NV" else torch.Generator("cpu").manual_seed(int(seed))

    def _draw(self, generator: Any, shape: Sequence[int]) -> torch.Tensor:
        if self.source != "NV":
            return torch.randn(tuple(shape), generator=generator)
        values = philox_randn(generator[0], generator[1], tuple(shape))
        generator[1] += 1  # the next call's counter
        return torch.from_numpy(values)

    def _seed_draw(self, seed: int, shape: Sequence[int]) -> torch.Tensor:
        """A1111's randn(seed, shape): the global generator re-seeded with `seed`, then its draw."""
        if self.source == "NV":
            return torch.from_numpy(philox_randn(int(seed), 0, tuple(shape)))
        torch.manual_seed(int(seed))
        return torch.randn(tuple(shape))

    def _image_draw(self, seed: int, generator: Any) -> torch.Tensor:
        """A1111's randn(seed, shape, generator): the global generator re-seeded, the image generator's draw."""
        if self.source != "NV":
            torch.manual_seed(int(seed))
        return self._draw(generator, self.shape)

    def first(self) -> torch.Tensor:
        images = []
        for i, (seed, generator) in enumerate(zip(self.seeds, self.generators)):
            variation = None
            if self.subseeds is not None and self.strength != 0:
                variation = self._seed_draw(self.subseeds[i] if i < len(self.subseeds) else 0, self.noise_shape)
            resized = self.noise_shape != self.shape
            noise = self._seed_draw(seed, self.noise_shape) if resized else self._image_draw(seed, generator)
            if variation is not None:
                noise = slerp(self.strength, noise, variation)
            if resized:
                canvas = self._image_draw(seed, generator)
                (top, src_top, rows), (left, src_left, columns) = (
                    _centred(self.shape[axis], self.noise_shape[axis]) for axis in (1, 2)
                )
                canvas[:, top : top + rows, left : left + columns] = noise[
                    :, src_top : src_top + rows, src_left : src_left + columns
                ]
                noise = canvas
            images.append(noise)
        if self.delta:
            self.generators = [self._generator(seed + self.delta) for seed in self.seeds]
        return torch.stack(images)

    def next(self) -> torch.Tensor:
        if self.is_first:
            self.is_first = False
            return self.first()
        return torch.stack([self._draw(generator, self.shape) for generator in self.generators])


def _centred(size: int, part: int) -> tuple[int, int, int]:
    """Where a `part`-long span goes centred in a `size`-long one: (start there, start in the part, length)."""
    offset = (size - part) // 2
    return max(offset, 0), max(-offset, 0), part if offset >= 0 else part + 2 * offset


class TorchHijack:
    """What A1111 puts in k-diffusion's place of torch while it samples: randn_like is the next image noise."""

    def __init__(self, rng: ImageNoise) -> None:
        self.rng = rng

    def __getattr__(self, name: str) -> Any:
        return (lambda x: self.rng.next()) if name == "randn_like" else getattr(torch, name)


@contextlib.contextmanager
def a1111_patches(rng: ImageNoise, source: str) -> Iterator[None]:
    """A1111's replacements while it samples: TorchHijack as k-diffusion's torch, its own to_d, and torchsde's
    Gaussians drawn as randn_local draws them (the source's first draw for the node's seed)."""

    def tree_randn(size, dtype, device, seed):
        if source == "NV":
            values = torch.from_numpy(philox_randn(int(seed), 0, tuple(size)))
        else:
            values = torch.randn(tuple(size), generator=torch.Generator("cpu").manual_seed(int(seed)))
        return values.to(device=device, dtype=dtype)

    saved = kd_sampling.torch, kd_sampling.to_d, brownian_interval._randn
    kd_sampling.torch, brownian_interval._randn = TorchHijack(rng), tree_randn
    kd_sampling.to_d = lambda x, sigma, denoised: (x - denoised) / sigma
    try:
        yield
    finally:
        kd_sampling.torch, kd_sampling.to_d, brownian_interval._randn = saved


# --- prompt schedules -------------------------------------------------------------------------------------------


@dataclass
class Edit:
    """`[before:after:when]` (before empty for `[after:when]`)."""

    before: list
    after: list
    when: str


@dataclass
class Alternation:
    """`[a|b|…]`: option k at steps k+1, k+1+n, …"""

    options: list


_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


class _Parser:
    """The subset of A1111's prompt grammar the tests use; a prompt outside it raises ValueError."""

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def at(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def sequence(self, stops: str) -> list:
        parts: list = []
        while self.at() and self.at() not in stops:
            char = self.at()
            if char == "\\":
                parts.append(self.text[self.pos : self.pos + 2])
                self.pos += 2
            elif char == "[":
                parts.extend(self.bracket())
            elif char == "(":
                self.pos += 1
                inner = self.sequence(")")
                if self.at() != ")":
                    raise ValueError(f"unbalanced ( in {self.text!r}")
                self.pos += 1
                parts.extend(["(", *inner, ")"])
            else:
                parts.append(char)
                self.pos += 1
        return parts

    def bracket(self) -> list:
        self.pos += 1
        first = self.sequence(":|]")
        if self.at() == "]":
            self.pos += 1
            return ["[", *first, "]"]
        if self.at() == "|":
            options = [first]
            while self.at() == "|":
                self.pos += 1
                options.append(self.sequence("|]"))
            self._close()
            return [Alternation(options)]
        if self.at() != ":":
            raise ValueError(f"unbalanced [ in {self.text!r}")
        self.pos += 1
        second = self.sequence(":]")
        if self.at() == ":":
            self.pos += 1
            end = self.text.find("]", self.pos)
            when, self.pos = self.text[self.pos : end], end
            self._close()
            return [Edit(first, second, self._number(when))]
        self._close()
        return [Edit([], first, self._number("".join(p for p in second if isinstance(p, str))))]

    def _close(self) -> None:
        if self.at() != "]":
            raise ValueError(f"unbalanced [ in {self.text!r}")
        self.pos += 1

    def _number(self, text: str) -> str:
        if not _NUMBER.fullmatch(text):
            raise ValueError(f"{text!r} is no step in {self.text!r}")
        return text.strip()


def prompt_schedule(
    prompt: str, steps: int, hires_steps: int | None = None, use_old_scheduling: bool = False
) -> list[tuple[int, str]]:
    """get_learned_conditioning_prompt_schedules for one prompt: (last step, text) pairs."""
    first_pass = hires_steps is None or use_old_scheduling
    whole_offset, share_offset, total = (0, 0.0, steps) if first_pass else (steps, 1.0, hires_steps)
    parts = _Parser(prompt).sequence("")
    ends = {total}

    def resolve(items: list) -> None:
        for item in items:
            if isinstance(item, Edit):
                value = float(item.when)
                if use_old_scheduling:
                    value = value * total if value < 1 else value
                else:
                    value = (value - share_offset) * total if "." in item.when else value - whole_offset
                item.when = min(total, int(value))
                if item.when >= 1:
                    ends.add(item.when)
                resolve(item.before)
                resolve(item.after)
            elif isinstance(item, Alternation):
                ends.update(range(1, total + 1))
                for option in item.options:
                    resolve(option)

    def text(items: list, step: int) -> str:
        out = []
        for item in items:
            if isinstance(item, Edit):
                out.append(text(item.before if step <= item.when else item.after, step))
            elif isinstance(item, Alternation):
                out.append(text(item.options[(step - 1) % len(item.options)], step))
            else:
                out.append(item)
        return "".join(out)

    resolve(parts)
    return [(end, text(parts, end)) for end in sorted(ends)]


_AND = re.compile(r"\bAND\b")
_WEIGHT = re.compile(r"(.*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*", re.S)


def and_parts(prompt: str) -> list[tuple[str, float]]:
    """A prompt's AND parts, each (text, weight); a part's weight is its trailing `:number` (else 1)."""
    parts = []
    for part in _AND.split(prompt):
        text, weight = _WEIGHT.fullmatch(part).groups()
        parts.append((text, float(weight) if weight is not None else 1.0))
    return parts


# --- conditioning -----------------------------------------------------------------------------------------------

Cond = tuple[torch.Tensor, torch.Tensor | None]  # one text: (tokens × width, pooled or None)
Schedule = list[tuple[int, Cond]]


def encode_schedule(encode: Callable[[str], Any], pairs: list[tuple[int, str]], zero: bool = False) -> Schedule:
    """One schedule's texts encoded as A1111 encodes them, as one batch: the shorter end in empty chunks;
    `zero` (SDXL's all-empty negative prompt) makes every vector 0."""
    encoded = [encode(text) for _, text in pairs]
    empty = encode("").embeds[0].float()
    length = max(c.embeds.shape[1] for c in encoded)
    schedule = []
    for (end, _), c in zip(pairs, encoded):
        tokens = c.embeds[0].float()
        while tokens.shape[0] < length:
            tokens = torch.cat([tokens, empty])
        pooled = None if c.pooled is None else c.pooled[0].float()
        if zero:
            tokens, pooled = torch.zeros_like(tokens), (None if pooled is None else torch.zeros_like(pooled))
        schedule.append((end, (tokens, pooled)))
    return schedule


def _at(schedule: Schedule, step: int) -> Cond:
    return next((cond for end, cond in schedule if step <= end), schedule[0][1])


def _stack(conds: list[Cond]) -> Cond:
    """Conds of one batch; a shorter one repeats its last vector."""
    length = max(tokens.shape[0] for tokens, _ in conds)
    tokens = torch.stack([torch.cat([t, t[-1:].repeat(length - t.shape[0], 1)]) for t, _ in conds])
    pooled = None if conds[0][1] is None else torch.stack([p for _, p in conds])
    return tokens, pooled


class BatchConds:
    """A batch's prompts and negative prompts over a pass: get_multicond_learned_conditioning and
    get_learned_conditioning, read back at a step as reconstruct_multicond_batch and reconstruct_cond_batch do.
    `size` (height, width) is SDXL's size conditioning."""

    def __init__(
        self,
        encode: Callable[[str], Any],
        prompts: list[str],
        negatives: list[str],
        steps: int,
        hires_steps: int | None = None,
        use_old_scheduling: bool = False,
        sdxl: bool = False,
        size: tuple[int, int] = (0, 0),
    ) -> None:
        def schedule(text: str, zero: bool = False) -> Schedule:
            return encode_schedule(encode, prompt_schedule(text, steps, hires_steps, use_old_scheduling), zero)

        self.empty = encode("").embeds[0].float()  # A1111's cond_stage_model_empty_prompt
        self.parts = [[(schedule(text), weight) for text, weight in and_parts(prompt)] for prompt in prompts]
        self.negatives = [
            schedule(
                text, sdxl and all(t == "" for _, t in prompt_schedule(text, steps, hires_steps, use_old_scheduling))
            )
            for text in negatives
        ]
        self.size = size

    def conds_at(self, step: int) -> tuple[list[list[tuple[int, float]]], Cond]:
        """(each image's (row, weight) list, the parts' conds stacked) at `step`."""
        rows, conds = [], []
        for parts in self.parts:
            rows.append([(len(conds) + k, weight) for k, (_, weight) in enumerate(parts)])
            conds.extend(_at(schedule, step) for schedule, _ in parts)
        return rows, _stack(conds)

    def uncond_at(self, step: int) -> Cond:
        conds = [_at(schedule, step) for schedule in self.negatives]
        return torch.stack([t for t, _ in conds]), None if conds[0][1] is None else torch.stack([p for _, p in conds])


# --- guidance ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guidance:
    """The settings CFGDenoiser.forward reads."""

    s_min_uncond: float = 0.0
    s_min_uncond_all: bool = False
    skip_early_cond: float = 0.0
    pad_cond_uncond: bool = False
    pad_cond_uncond_v0: bool = False


@dataclass
class Inpainting:
    """img2img's mask: `keep` 1 where the init latent stays (A1111's mask; nmask = 1 − keep)."""

    init: torch.Tensor
    keep: torch.Tensor
    before_denoising: bool = False

    def blend(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1 - self.keep) + self.init * self.keep


class CFGDenoiser:
    """CFGDenoiser.forward over `inner(x, sigma, cond=…)` (a k-diffusion denoiser, or a timestep one)."""

    def __init__(
        self,
        inner: Callable,
        conds: BatchConds,
        cond_scale: float,
        guidance: Guidance,
        total_steps: int,
        inpainting: Inpainting | None = None,
    ) -> None:
        self.inner, self.conds, self.cond_scale, self.guidance = inner, conds, cond_scale, guidance
        self.total_steps, self.inpainting = total_steps, inpainting
        self.step = 0
        self.cond_scale_multiplier = 1.0
        self.need_last_noise_uncond = False
        self.last_noise_uncond: torch.Tensor | None = None

    def _call(self, x: torch.Tensor, sigma: torch.Tensor, cond: Cond) -> torch.Tensor:
        tokens, pooled = cond
        return self.inner(x, sigma, cond={"c_crossattn": [tokens], "vector": pooled, "size": self.conds.size})

    def _padded(self, tensor: Cond, uncond: Cond) -> tuple[Cond, Cond]:
        (cond_tokens, cond_pooled), (uncond_tokens, uncond_pooled) = tensor, uncond
        gap = cond_tokens.shape[1] - uncond_tokens.shape[1]
        if gap == 0:
            return tensor, uncond
        if self.guidance.pad_cond_uncond_v0:  # the uncond's last vector repeated, or the uncond cut
            if gap > 0:
                uncond_tokens = torch.cat([uncond_tokens, uncond_tokens[:, -1:].repeat(1, gap, 1)], dim=1)
            else:
                uncond_tokens = uncond_tokens[:, : cond_tokens.shape[1]]
        elif self.guidance.pad_cond_uncond:  # whole empty chunks onto the shorter
            chunks = gap // self.conds.empty.shape[0]
            fill = self.conds.empty[None].repeat(1, abs(chunks), 1)
            if chunks < 0:
                cond_tokens = torch.cat([cond_tokens, fill.repeat(cond_tokens.shape[0], 1, 1)], dim=1)
            elif chunks > 0:
                uncond_tokens = torch.cat([uncond_tokens, fill.repeat(uncond_tokens.shape[0], 1, 1)], dim=1)
        return (cond_tokens, cond_pooled), (uncond_tokens, uncond_pooled)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **_: Any) -> torch.Tensor:
        conds_list, tensor = self.conds.conds_at(self.step)
        uncond = self.conds.uncond_at(self.step)
        mask = self.inpainting
        if mask is not None and mask.before_denoising:
            x = mask.blend(x)
        images = len(conds_list)
        rows = [image for image, parts in enumerate(conds_list) for _ in parts]
        x_in, sigma_in = torch.cat([x[rows], x]), torch.cat([sigma[rows], sigma])
        g = self.guidance
        skip = False
        if g.skip_early_cond != 0 and self.step / self.total_steps <= g.skip_early_cond:
            skip = True
        elif (self.step % 2 or g.s_min_uncond_all) and g.s_min_uncond > 0 and sigma[0] < g.s_min_uncond:
            skip = True
        if skip:
            x_in, sigma_in = x_in[:-images], sigma_in[:-images]
        tensor, uncond = self._padded(tensor, uncond)
        if tensor[0].shape[1] == uncond[0].shape[1] or skip:
            both = (
                tensor
                if skip
                else (
                    torch.cat([tensor[0], uncond[0]]),
                    None if tensor[1] is None else torch.cat([tensor[1], uncond[1]]),
                )
            )
            x_out = self._call(x_in, sigma_in, both)
        else:
            x_out = torch.zeros_like(x_in)
            parts = tensor[0].shape[0]
            for a in range(0, parts, 2 * images):
                b = min(a + 2 * images, parts)
                x_out[a:b] = self._call(
                    x_in[a:b], sigma_in[a:b], (tensor[0][a:b], None if tensor[1] is None else tensor[1][a:b])
                )
            x_out[-images:] = self._call(x_in[-images:], sigma_in[-images:], uncond)
        if skip:  # each image's first part stands in for its negative
            x_out = torch.cat([x_out, x_out[[parts[0][0] for parts in conds_list]]])
        if self.need_last_noise_uncond:
            self.last_noise_uncond = x_out[-images:].clone()
        scale = 1.0 if skip else self.cond_scale * self.cond_scale_multiplier
        denoised = x_out[-images:].clone()
        for image, parts in enumerate(conds_list):
            for row, weight in parts:
                denoised[image] += (x_out[row] - x_out[-images:][image]) * (weight * scale)
        if mask is not None and not mask.before_denoising:
            denoised = mask.blend(denoised)
        self.step += 1
        return denoised
