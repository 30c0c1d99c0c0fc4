"""Request and response models of /sdapi/v1, with A1111's field names.

The generation fields of txt2img and img2img requests are made from GenerationParams (type, default,
FieldSpec label, bounds and choices), and the extras fields from ExtrasParams, so /docs, validation and
the page all follow the same declarations. Only fields that are the API's own are written out here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    model_validator,
)

from modules.api.images import check_image
from modules.errors import UserError
from modules.extras import ExtrasParams
from modules.jobs.generation_params import USE_SAME_SAMPLER, USE_SAME_SCHEDULER, GenerationParams
from modules.sampling import registry

Base64Image = Annotated[
    str,
    AfterValidator(check_image),
    Field(description="An image as base64, or as a data: URI (data:image/png;base64,…)"),
]
_TYPES: dict[type, Any] = {int: int, float: float, str: str, bool: bool, tuple: list[str]}


def _sampler(value: str) -> str:
    registry.sampler_info(value)  # raises ValueError naming the valid samplers
    return value


def _schedule(value: str) -> str:
    registry.find_schedule(value)  # raises ValueError naming the valid schedules
    return value


def _or_same(same: str, check: Callable[[str], str]) -> Callable[[str], str]:
    return lambda value: value if value == same else check(value)


def _off_is_zero(value: Any) -> Any:
    """A1111's clients send -1 for "off"; the field holds 0 for it."""
    return 0 if isinstance(value, (int, float)) and value < 0 else value


_BEFORE: dict[str, Callable[[Any], Any]] = {"seed_resize_from_w": _off_is_zero, "seed_resize_from_h": _off_is_zero}
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "sampler_name": _sampler,
    "scheduler": _schedule,
    "hr_sampler_name": _or_same(USE_SAME_SAMPLER, _sampler),
    "hr_scheduler": _or_same(USE_SAME_SCHEDULER, _schedule),
}


def _none_passes(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: value if value is None else check(value)


def _choice(name: str) -> Callable[[Any], Any]:
    """A choice field takes its index or its label (`true`/`false` for two choices); it holds the index."""
    return _none_passes(lambda value: GenerationParams.coerce(name, value))


DEFAULT_SAMPLER = "Euler"  # what A1111's API runs when a request names no sampler (the page's default differs)
_API_DEFAULTS = {"sampler_name": DEFAULT_SAMPLER}


def generation_fields(tab: str) -> dict[str, Any]:
    """Pydantic fields for every GenerationParams field the `tab` ("txt2img"/"img2img") shows. Each is
    nullable, as in A1111: null means the default."""
    fields: dict[str, Any] = {}
    for f, spec in GenerationParams.fields():
        if tab not in spec.tabs:
            continue
        default = _API_DEFAULTS.get(f.name, dict(spec.tab_values).get(tab, f.default))
        annotation: Any = _TYPES[GenerationParams.field_type(f.name)]
        metadata: list[Any] = []
        description = spec.label or f.name
        if spec.choices:
            annotation = int | str
            metadata.append(BeforeValidator(_choice(f.name)))
            description += (
                ": " + ", ".join(f"{i} = {label}" for i, label in enumerate(spec.choices)) + " (the index or the label)"
            )
        if f.name in _BEFORE:
            metadata.append(BeforeValidator(_BEFORE[f.name]))
        if f.name in _CHECKS:
            metadata.append(AfterValidator(_none_passes(_CHECKS[f.name])))
        default = list(default) if isinstance(default, tuple) else default
        bounded = Annotated[annotation, Field(ge=spec.minimum, le=spec.maximum)]  # the value's range; null passes
        field = Field(default, title=spec.label, description=description)
        fields[f.name] = Annotated[(bounded | None, *metadata, field)]
    return fields


def _neutral(feature: str, accepts: Callable[[Any], bool], hint: str) -> AfterValidator:
    """For a field of a feature this server lacks: only its neutral values pass."""

    def check(value: Any, info: ValidationInfo) -> Any:
        if value is not None and not accepts(value):
            raise ValueError(f"not supported by this server yet ({feature}); leave {info.field_name} at {hint}")
        return value

    return AfterValidator(check)


def _is(*values: Any) -> Callable[[Any], bool]:
    return lambda value: value in values


# Request fields that set the setting of the same name for their job only.
SETTING_FIELDS = ("s_min_uncond", "initial_noise_multiplier")
# The sigma churn fields do the same only with a value other than their neutral ones: A1111's clients always send
# those, and in A1111 the settings win over them.
SIGMA_FIELDS = {"s_churn": (0,), "s_tmin": (0,), "s_tmax": (0, math.inf), "s_noise": (1,)}


class GenerationApiFields(BaseModel):
    """What txt2img and img2img requests hold beside the generation fields: A1111's API-only fields, and
    fields of features this server lacks, which accept only their neutral values."""

    model_config = ConfigDict(extra="ignore")  # as A1111: keys it doesn't know are ignored

    sampler_index: str | None = Field(None, description="Older name of sampler_name; used when that is not given")
    override_settings: dict[str, Any] = Field(
        default_factory=dict,
        description=('Settings for this job only (keys as in /sdapi/v1/options), e.g. {"CLIP_stop_at_last_layers": 2}'),
    )
    override_settings_restore_afterwards: bool = Field(True, description="False keeps override_settings afterwards")
    script_name: str | None = Field(None, description="Title of a script from /sdapi/v1/scripts to run")
    script_args: list[Any] = Field(default_factory=list, description="The script's arguments, in its controls' order")
    alwayson_scripts: dict[str, Any] = Field(default_factory=dict, description='{"<title>": {"args": [...]}}')
    send_images: bool = Field(True, description="Return the images in the response")
    save_images: bool = Field(False, description="Also save the images in the outputs folder")
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    infotext: str | None = Field(
        None,
        description="Generation parameters text; fills fields the request leaves out, "
        "and its settings (RNG, ENSD, Eta…) join override_settings",
    )
    comments: dict[str, Any] | None = None
    eta: float | None = Field(
        None,
        description="The sampler's eta for this job, 0 to 1 (the settings eta_ancestral "
        "and eta_ddim): how much fresh noise ancestral, SDE and DDIM steps add",
    )
    s_min_uncond: float | None = None  # the s_min_uncond setting (Negative Guidance minimum sigma) for this job
    s_churn: float | None = None  # these four: see SIGMA_FIELDS (Euler, Heun, DPM2; s_noise others too)
    s_tmax: float | None = None
    s_tmin: float | None = None
    s_noise: float | None = None
    disable_extra_networks: bool | None = Field(
        False, description="Take <lora:…> tags out of the prompts without using them"
    )

    def chosen_sampler(self) -> str:
        """sampler_name, else the legacy sampler_index, else A1111's API default."""
        name = getattr(self, "sampler_name", None) if "sampler_name" in self.model_fields_set else None
        return name or self.sampler_index or DEFAULT_SAMPLER

    @model_validator(mode="after")
    def _check_sampler_index(self) -> GenerationApiFields:
        if self.sampler_index is not None:
            _sampler(self.sampler_index)
        return self

    def job_settings(self) -> dict[str, Any]:
        """Settings this request sets for its job only: those of SETTING_FIELDS and SIGMA_FIELDS, and from eta
        both eta settings (each sampler reads its own, as A1111's p.eta stands for either)."""
        values = {key: value for key in SETTING_FIELDS if (value := getattr(self, key, None)) is not None}
        values.update(
            {
                key: value
                for key, neutral in SIGMA_FIELDS.items()
                if (value := getattr(self, key)) is not None and value not in neutral
            }
        )
        if self.eta is not None:
            values["eta_ancestral"] = values["eta_ddim"] = self.eta
        return values


class Txt2ImgApiFields(GenerationApiFields):
    """txt2img's own API fields."""

    firstphase_width: int = Field(0, ge=0, description="Older way to ask for hires fix: the first pass's width")
    firstphase_height: int = Field(0, ge=0, description="Older way to ask for hires fix: the first pass's height")


class Img2ImgApiFields(GenerationApiFields):
    """img2img's own API fields."""

    init_images: list[Base64Image] = Field(min_length=1, description="The images to start from")
    mask: Base64Image | None = Field(None, description="White where the image is repainted")
    mask_blur_x: int = Field(4, ge=0, le=64, description="Horizontal mask blur (when mask_blur is not given)")
    mask_blur_y: int = Field(4, ge=0, le=64, description="Vertical mask blur (when mask_blur is not given)")
    mask_round: bool = Field(True, description="False: a soft latent mask, the blurred edge partly repainted")
    image_cfg_scale: float | None = Field(None, description="Only instruct-pix2pix models use it; none load here")
    initial_noise_multiplier: float | None = Field(
        None,
        ge=0,
        description=("Scales the noise img2img starts from, for this job (the initial_noise_multiplier setting)"),
    )
    latent_mask: Annotated[str | None, _neutral("a separate latent mask", _is(None, ""), "null")] = None
    include_init_images: bool = Field(False, description="Echo init_images and mask in the response's parameters")


StableDiffusionTxt2ImgProcessingAPI = create_model(
    "StableDiffusionTxt2ImgProcessingAPI", __base__=Txt2ImgApiFields, **generation_fields("txt2img")
)
StableDiffusionImg2ImgProcessingAPI = create_model(
    "StableDiffusionImg2ImgProcessingAPI", __base__=Img2ImgApiFields, **generation_fields("img2img")
)


class ExtrasApiFields(BaseModel):
    """What extras requests hold beside ExtrasParams' fields."""

    show_extras_results: bool = Field(True, description="Return the processed images")

    def extras_params(self) -> ExtrasParams:
        """The job's ExtrasParams (already checked by the validator below)."""
        return ExtrasParams.from_dict({f.name: getattr(self, f.name) for f in dataclasses.fields(ExtrasParams)})

    @model_validator(mode="after")
    def _check_params(self) -> ExtrasApiFields:
        try:
            self.extras_params()
        except UserError as exc:
            raise ValueError(str(exc)) from None
        return self


def extras_fields() -> dict[str, Any]:
    """Pydantic fields for ExtrasParams, with its labels and bounds."""
    return {
        f.name: Annotated[
            _TYPES[type(f.default)],
            Field(f.default, ge=spec.minimum, le=spec.maximum, title=spec.label, description=spec.label),
        ]
        for f, spec in ExtrasParams.fields()
    }


class ExtrasSingleImageFields(ExtrasApiFields):
    image: Base64Image


class FileData(BaseModel):
    data: Base64Image
    name: str = ""


class ExtrasBatchImagesFields(ExtrasApiFields):
    imageList: list[FileData] = Field(min_length=1, description="The images, each with a name")


ExtrasSingleImageRequest = create_model("ExtrasSingleImageRequest", __base__=ExtrasSingleImageFields, **extras_fields())
ExtrasBatchImagesRequest = create_model("ExtrasBatchImagesRequest", __base__=ExtrasBatchImagesFields, **extras_fields())


class ImagesResponse(BaseModel):
    images: list[str] = Field(description="Base64 PNGs, each with its `parameters` text chunk")
    parameters: dict[str, Any] = Field(description="The request")
    info: str = Field(description="JSON: seed, all_seeds, all_prompts, infotexts and the rest, as A1111 sends")


class ExtrasSingleImageResponse(BaseModel):
    html_info: str
    image: str | None = None


class ExtrasBatchImagesResponse(BaseModel):
    html_info: str
    images: list[str]


class PNGInfoRequest(BaseModel):
    image: Base64Image


class PNGInfoResponse(BaseModel):
    info: str = Field(description="The generation parameters text")
    items: dict[str, Any] = Field(description="The image's other text chunks")
    parameters: dict[str, Any] = Field(description="The parameters text, parsed")


class ProgressResponse(BaseModel):
    progress: float = Field(description="Done part of the running job, 0 to 1")
    eta_relative: float = Field(description="Seconds left, estimated")
    state: dict[str, Any]
    current_image: str | None = Field(None, description="Latest live preview, base64 PNG")
    textinfo: str | None = None
    current_task: str | None = None


class SamplerItem(BaseModel):
    name: str
    aliases: list[str]
    options: dict[str, Any]


class SchedulerItem(BaseModel):
    name: str
    label: str
    aliases: list[str] | None = None
    default_rho: float = -1
    need_inner_model: bool = False


class UpscalerItem(BaseModel):
    name: str
    model_name: str | None = None
    model_path: str | None = None
    model_url: str | None = None
    scale: float | None = None


class NameItem(BaseModel):
    name: str


class SDModelItem(BaseModel):
    title: str
    model_name: str
    hash: str | None = None
    sha256: str | None = None
    filename: str
    config: str | None = None


class SDVaeItem(BaseModel):
    model_name: str
    filename: str


class FaceRestorerItem(BaseModel):
    name: str
    cmd_dir: str | None = None


class HypernetworkItem(BaseModel):
    name: str
    path: str | None = None


class RealesrganItem(BaseModel):
    name: str
    path: str | None = None
    scale: int | None = None


class InterrogateRequest(BaseModel):
    image: str = Field("", description="The image to describe, as base64 or a data: URI")
    model: str = Field("clip", description="clip or deepdanbooru")


class PromptStyleItem(BaseModel):
    name: str
    prompt: str | None = None
    negative_prompt: str | None = None


class EmbeddingItem(BaseModel):
    step: int | None = None
    sd_checkpoint: str | None = None
    sd_checkpoint_name: str | None = None
    shape: int
    vectors: int


class EmbeddingsResponse(BaseModel):
    loaded: dict[str, EmbeddingItem]
    skipped: dict[str, EmbeddingItem]


class LoraItem(BaseModel):
    name: str
    alias: str
    path: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class ScriptsList(BaseModel):
    txt2img: list[str]
    img2img: list[str]


class ScriptArg(BaseModel):
    label: str | None = None
    value: Any = None
    minimum: Any = None
    maximum: Any = None
    step: Any = None
    choices: list[Any] | None = None


class ScriptInfo(BaseModel):
    name: str
    is_alwayson: bool
    is_img2img: bool
    args: list[ScriptArg]


class ExtensionItem(BaseModel):
    name: str
    remote: str | None = None
    branch: str | None = None
    commit_hash: str | None = None
    version: str | None = None
    commit_date: int | None = None
    enabled: bool


class MemoryResponse(BaseModel):
    ram: dict[str, Any] = Field(description="free, used (by this process) and total, in bytes")
    cuda: dict[str, Any] = Field(description='GPU memory as torch reports it, or {"error": …}')
