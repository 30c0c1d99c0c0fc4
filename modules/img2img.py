"""img2img and inpainting: the txt2img stages, started from an encoded image and kept to a mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from modules import masking
from modules.errors import UserError
from modules.imaging.image_inputs import flatten_input
from modules.imaging.image_resize import LATENT_UPSCALE, resize_image
from modules.jobs.generation import GenerationResult, Txt2Img, check_denoising_strength, encode_image
from modules.sampling import noise as noise_sources
from modules.sampling.guidance import Keep
from modules.sampling.passes import TIMESTEPS, PassPlan, start_latent


@dataclass
class Img2ImgInputs:
    """The images of an img2img job: init images (image i uses images[i % n]) and an optional mask
    (white = repaint) that applies to each of them."""

    images: list[Image.Image]
    mask: Image.Image | None = None


@dataclass
class _Source:
    """One init image made ready: what is encoded, and what the result is composited into."""

    processed: Image.Image  # width × height, what the VAE encodes
    original: Image.Image  # what the result is pasted back into
    mask: Image.Image | None = None  # blurred mask at the original's size
    processed_mask: Image.Image | None = None  # the same at width × height
    box: masking.Box | None = None  # "Only masked": where the processed area sits in the original


@dataclass
class _BatchLatents:
    init: torch.Tensor
    mask: torch.Tensor | None = None  # latent mask, 1 = repaint
    image_conditioning: torch.Tensor | None = None


class Img2Img(Txt2Img):
    """An img2img (or, with a mask, inpainting) job."""

    supports_hires = False

    def __init__(self, *args, inputs: Img2ImgInputs, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not inputs.images:
            raise UserError("img2img needs an input image")
        self.inputs = inputs
        self.notes: list[str] = []
        self.sources: list[_Source] = []
        self._latents: _BatchLatents | None = None
        self._fill_seeds: list[int] | None = None  # A1111 fills "latent noise" with the first batch's seeds
        self._encoded: dict[int, tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]] = {}

    @property
    def job(self) -> str:
        return "inpaint" if self.sources and self.sources[0].mask is not None else "img2img"

    def run(self) -> GenerationResult:
        check_denoising_strength(self.params.denoising_strength)
        self.sources = [
            self._prepare(flatten_input(image, f"Input image {number}"))
            for number, image in enumerate(self.inputs.images, start=1)
        ]
        result = super().run()
        result.warnings[:0] = self.notes
        return result

    def _prepare(self, image: Image.Image) -> _Source:
        p = self.params
        if self.inputs.mask is None:
            return _Source(resize_image(image, p.resize_mode, p.width, p.height), image)
        raw = self.inputs.mask
        if raw.size != image.size:
            self._note(
                f"The mask is {raw.width}x{raw.height} but the image is {image.width}x{image.height}; "
                "the mask was resized to fit."
            )
        mask = masking.prepare_mask(
            masking.to_mask(raw, image.size, p.mask_round),
            bool(p.inpainting_mask_invert),
            p.mask_blur,
            None if p.vertical_mask_blur < 0 else p.vertical_mask_blur,
        )
        if mask.getbbox() is None:
            self._note("The mask is empty, so the image was processed as plain img2img.")
            return _Source(resize_image(image, p.resize_mode, p.width, p.height), image)
        if p.inpaint_full_res:
            box = masking.crop_region(mask, p.inpaint_full_res_padding, p.width, p.height)
            processed = image.crop(box).resize((p.width, p.height), Image.LANCZOS)
            processed_mask = mask.crop(box).resize((p.width, p.height), Image.LANCZOS)
            return _Source(processed, image, mask, processed_mask, box)
        processed = resize_image(image, p.resize_mode, p.width, p.height)
        processed_mask = resize_image(mask, min(p.resize_mode, 2), p.width, p.height)
        return _Source(processed, processed, processed_mask, processed_mask)

    def _note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)

    def make_plan(self) -> PassPlan:
        """The tail of the schedule the denoising strength keeps, as A1111's setup_img2img_steps cuts it."""
        return self.plan_with(
            denoising_strength=self.params.denoising_strength, fixed_steps=self.settings.sampling.img2img_fix_steps
        )

    def prepare_latents(self, noise_source: noise_sources.ImageRNG, first: int, seeds: list[int]) -> torch.Tensor:
        """Noise as for txt2img, plus the init images' latents (and masks) for this batch."""
        noise = super().prepare_latents(noise_source, first, seeds)
        encoded = [
            self._source_latents(i % len(self.sources), noise.shape[-2:]) for i in range(first, first + len(seeds))
        ]
        init = torch.cat([latents for latents, _, _ in encoded])
        batch = _BatchLatents(init)
        if encoded[0][1] is not None:
            batch.mask = torch.cat([mask for _, mask, _ in encoded])
            fill = self.params.inpainting_fill
            if fill == masking.LATENT_NOISE:
                batch.init = init * (1 - batch.mask) + self._fill_noise(seeds, init) * batch.mask
            elif fill == masking.LATENT_NOTHING:
                batch.init = init * (1 - batch.mask)
            if self.model.is_inpainting:
                batch.image_conditioning = torch.cat([conditioning for _, _, conditioning in encoded])
        self._latents = batch
        return noise

    def _source_latents(
        self, index: int, latent_size: torch.Size
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Init latents, latent mask and inpainting-model channels of one source, computed once per job."""
        if index not in self._encoded:
            m, source = self.model, self.sources[index]
            mask = conditioning = None
            if source.processed_mask is not None:
                mask = masking.latent_mask(
                    source.processed_mask, *latent_size, m.device, m.latent_dtype, self.params.mask_round
                )
                if m.is_inpainting:
                    conditioning = self._masked_image_conditioning(source)
            self._encoded[index] = (self._encode(source, latent_size), mask, conditioning)
        return self._encoded[index]

    def _encode(self, source: _Source, latent_size: torch.Size) -> torch.Tensor:
        """VAE latents of the processed image, at the job's latent size."""
        m, p = self.model, self.params
        image = source.processed
        if source.mask is not None and p.inpainting_fill != masking.ORIGINAL:  # A1111 fills for the latent fills too
            image = masking.fill(image, source.processed_mask)
        if p.resize_mode == LATENT_UPSCALE and source.mask is None:
            factor = m.vae_scale_factor
            image = image.resize(
                (max(factor, image.width // factor * factor), max(factor, image.height // factor * factor)),
                Image.LANCZOS,
            )
        latents = encode_image(m, image)
        if latents.shape[-2:] != latent_size:
            latents = torch.nn.functional.interpolate(latents.float(), size=tuple(latent_size), mode="bilinear")
        return latents.to(m.latent_dtype)

    def _masked_image_conditioning(self, source: _Source) -> torch.Tensor:
        """An inpainting UNet's extra channels: the latent mask and the latents of the kept pixels."""
        m = self.model
        keep = np.asarray(source.processed_mask, dtype=np.float32)[..., None] < 127.5
        kept = Image.fromarray((np.asarray(source.processed, dtype=np.float32) * keep + 127.5 * ~keep).astype(np.uint8))
        latents = encode_image(m, kept)
        mask = masking.latent_mask(source.processed_mask, *latents.shape[-2:], m.device, m.latent_dtype)
        return torch.cat([mask, latents], dim=1)

    def _fill_noise(self, seeds: list[int], init: torch.Tensor) -> torch.Tensor:
        """ "latent noise" fill: fresh noise of the job's first batch's seeds, as A1111 makes it."""
        if self._fill_seeds is None:
            self._fill_seeds = list(seeds)
        s, m = self.settings.sampling, self.model
        fill = noise_sources.ImageRNG(
            tuple(init.shape[1:]), self._fill_seeds[: len(seeds)], source=s.randn_source, device=m.device
        ).next()
        return fill.to(init.dtype)

    def start(self, plan: PassPlan, noise: torch.Tensor) -> torch.Tensor:
        """The init latents noised to where the schedule's kept tail starts, with the noise scaled by the
        Noise multiplier setting."""
        noise = self.hooks.start_noise(self, noise)
        multiplier = self.settings.sampling.initial_noise_multiplier
        if multiplier != 1.0:
            self.extra_infotext["Noise multiplier"] = f"{multiplier:g}"
            noise = noise * multiplier
        return start_latent(plan, noise.float(), self.settings.sampling, init=self._latents.init.float())

    @property
    def init_latents(self) -> torch.Tensor:
        """The batch's init latents (encoded images, masked content filled), as sampling starts from them."""
        return self._latents.init

    def keep(self) -> Keep | None:
        """With a mask, the unmasked init latents are kept at every step (A1111's mask and nmask)."""
        batch = self._latents
        if batch is None or batch.mask is None:
            return None
        return Keep(
            batch.init.float(), 1 - batch.mask.float(), before_denoising=self.sampling_plan().sampler.kind == TIMESTEPS
        )

    def after_sampling(self, latents: torch.Tensor) -> torch.Tensor:
        """Put back what the mask keeps, as A1111 does once sampling is done."""
        batch = self._latents
        if batch is None or batch.mask is None:
            return latents
        return latents * batch.mask + batch.init * (1 - batch.mask)

    def image_conditioning(self, batch_size: int) -> torch.Tensor | None:
        if not self.model.is_inpainting or self._latents.image_conditioning is None:
            return super().image_conditioning(batch_size)
        return self._latents.image_conditioning

    def finish_image(self, image: Image.Image, index: int) -> Image.Image:
        """Composite the result into the original through the blurred mask."""
        source = self.sources[index % len(self.sources)]
        if source.mask is None:
            return image
        return masking.composite(source.original, image, source.mask, source.box)


def __getattr__(name: str):
    """A1111's functions of this module (process_batch, img2img), kept in modules/extensions/a1111/img2img.py."""
    if name in ("process_batch", "img2img"):
        from modules.extensions.a1111 import img2img as a1111_img2img

        return getattr(a1111_img2img, name)
    raise AttributeError(f"module 'modules.img2img' has no attribute {name!r}")
