"""A1111 hypernetworks: the .pt files read safely in their layouts, hooked into the attention key and value
projections for one job, and the warnings for files that can't be used."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention

from modules.hypernetworks import HypernetworkLibrary, attention_projections
from modules.jobs.generation import RunSettings, Txt2Img
from modules.jobs.generation_params import GenerationParams
from modules.jobs.infotext import parse_infotext
from modules.prompt_parser import ExtraNetwork
from modules.prompting.extra_network_cards import cards
from modules.prompting.lora import LoraLibrary
from modules.prompting.networks import Networks
from modules.textual_inversion import EmbeddingDatabase

# Layouts as A1111 saves them: the file's keys, the Sequential indices of its Linear and LayerNorm layers, and
# what one MLP computes (written out here, not built by the code under test).
LAYOUTS = {
    "relu, dropout after the hidden layer": (
        {"layer_structure": [1, 2, 1], "activation_func": "relu", "use_dropout": True, "last_layer_dropout": True},
        (0, 3),
        (),
        lambda x, L, N: F.relu(L[1](F.relu(L[0](x)))),
    ),
    "tanh, layer norm, output not activated": (
        {
            "layer_structure": [1, 1.5, 1],
            "activation_func": "tanh",
            "is_layer_norm": True,
            "activate_output": False,
            "use_dropout": False,
            "dropout_structure": [0, 0, 0],
        },
        (0, 3),
        (2, 4),
        lambda x, L, N: N[1](L[1](N[0](torch.tanh(L[0](x))))),
    ),
    "the oldest files: linear1, linear2": ({}, ("1", "2"), (), lambda x, L, N: L[1](L[0](x))),
}


def mlp_state(
    width: int, structure: list[float], linears: tuple, norms: tuple, gen: torch.Generator, std: float
) -> OrderedDict:
    state = OrderedDict()
    sizes = [int(width * s) for s in structure]
    for n, index in enumerate(linears):
        prefix = f"linear{index}." if isinstance(index, str) else f"linear.{index}."
        state[prefix + "weight"] = torch.randn(sizes[n + 1], sizes[n], generator=gen) * std
        state[prefix + "bias"] = torch.randn(sizes[n + 1], generator=gen) * std
    for n, index in enumerate(norms):
        state[f"linear.{index}.weight"] = 1 + torch.randn(sizes[n + 1], generator=gen) * std
        state[f"linear.{index}.bias"] = torch.randn(sizes[n + 1], generator=gen) * std
    return state


def write_hypernetwork(
    path: Path,
    widths: tuple[int, ...],
    layout: str = "relu, dropout after the hidden layer",
    seed: int = 0,
    std: float = 0.3,
    structure: list[float] | None = None,
) -> Path:
    """A hypernetwork file as A1111's Hypernetwork.save writes it (torch.save of a dict with int keys)."""
    meta, linears, norms, _ = LAYOUTS[layout]
    meta = {**meta, **({"layer_structure": structure} if structure else {})}
    gen = torch.Generator().manual_seed(seed)
    data = {
        w: tuple(mlp_state(w, meta.get("layer_structure", [1, 2, 1]), linears, norms, gen, std) for _ in "kv")
        for w in widths
    }
    data.update(
        meta, name=path.stem, step=120, sd_checkpoint=None, sd_checkpoint_name=None, weight_initialization="Normal"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, path)
    return path


def expected(path: Path, width: int, kind: int, x: torch.Tensor, multiplier: float, layout: str) -> torch.Tensor:
    """x + mlp(x) * multiplier from the file's raw tensors."""
    state = torch.load(path, weights_only=True)[width][kind]
    _meta, linears, norms, mlp = LAYOUTS[layout]

    def key(index):
        return f"linear{index}." if isinstance(index, str) else f"linear.{index}."

    def linear(k):
        return lambda t: F.linear(t, state[k + "weight"], state[k + "bias"])

    def norm(k):
        return lambda t: F.layer_norm(t, t.shape[-1:], state[k + "weight"], state[k + "bias"])

    L = [linear(key(i)) for i in linears]
    N = [norm(key(i)) for i in norms]
    return x + mlp(x, L, N) * multiplier


class TwoAttentions(torch.nn.Module):
    """A self-attention reading width 16 and a cross-attention reading a width-8 context."""

    def __init__(self) -> None:
        super().__init__()
        self.attn1 = Attention(16, heads=2, dim_head=8)
        self.attn2 = Attention(16, cross_attention_dim=8, heads=2, dim_head=8)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_reshapes_the_key_and_value_inputs_by_width(layout, tmp_path):
    path = write_hypernetwork(tmp_path / "h.pt", (8, 16), layout)
    net = TwoAttentions()
    library = HypernetworkLibrary(tmp_path)
    x, context = torch.randn(1, 5, 16), torch.randn(1, 3, 8)
    plain = [net.attn1.to_k(x), net.attn2.to_v(context)]
    assert library.apply(net, [ExtraNetwork("hypernet", "h", ("0.7",))], "test") == []
    with torch.no_grad():
        k_self, v_cross = net.attn1.to_k(x), net.attn2.to_v(context)
        torch.testing.assert_close(k_self, expected(path, 16, 0, x, 0.7, layout) @ net.attn1.to_k.weight.T)
        torch.testing.assert_close(v_cross, expected(path, 8, 1, context, 0.7, layout) @ net.attn2.to_v.weight.T)
    library.detach_all()
    assert torch.equal(net.attn1.to_k(x), plain[0]) and torch.equal(net.attn2.to_v(context), plain[1])
    assert not any(p._forward_pre_hooks for p, _ in attention_projections(net))


@pytest.fixture(scope="module")
def hypernet_dir(tmp_path_factory) -> Path:
    """Hypernetworks for the demo model (attention widths 32 and 64), one for SD 1.x widths, and bad files."""
    from test_safe_weights import write_evil

    folder = tmp_path_factory.mktemp("hypernetworks")
    write_hypernetwork(folder / "style.pt", (32, 64), seed=1)
    write_hypernetwork(folder / "sub" / "cross.pt", (64,), "tanh, layer norm, output not activated", seed=2)
    write_hypernetwork(folder / "sd15.pt", (768, 320, 640, 1280), structure=[1, 0.01, 1])
    write_hypernetwork(folder / "partial.pt", (64, 768), structure=[1, 0.05, 1], seed=3)
    write_evil(folder / "evil.pt", folder.parent / "payload-ran")
    (folder / "garbage.pt").write_bytes(b"not a hypernetwork at all")
    cut = write_hypernetwork(folder / "cut.pt", (64,)).read_bytes()
    (folder / "cut.pt").write_bytes(cut[: len(cut) // 2])
    write_hypernetwork(folder / "misnumbered.pt", (64,), structure=[1, 2, 2, 1])  # 3 layers in the file's weights
    torch.save({"step": 3, "name": "empty"}, folder / "empty.pt")
    write_hypernetwork(folder / "None.pt", (64,))
    (folder / "notes.txt").write_text("not listed")
    return folder


def generate(engine, model, networks, prompt):
    params = GenerationParams(prompt=prompt, steps=3, width=64, height=64, seed=11)
    result = engine.call("t", lambda ctx: Txt2Img(model, params, ctx, RunSettings(), networks).run(), timeout=300)
    assert not any(p._forward_pre_hooks for p, _ in attention_projections(model.unet))  # nothing left after the job
    return np.asarray(result.images[0]).astype(int), result


@pytest.fixture
def networks(hypernet_dir, tmp_path) -> Networks:
    return Networks(EmbeddingDatabase(tmp_path), LoraLibrary(tmp_path / "Lora"), HypernetworkLibrary(hypernet_dir))


def test_a_hypernetwork_changes_the_image_and_leaves_no_trace(engine, demo_model, networks):
    base, _ = generate(engine, demo_model, networks, "a house")
    full, result = generate(engine, demo_model, networks, "a house <hypernet:style:0.8>")
    both, _ = generate(engine, demo_model, networks, "a house <hypernet:style:0.8> <hypernet:cross>")
    zero, _ = generate(engine, demo_model, networks, "a house <hypernet:style:0>")
    after, _ = generate(engine, demo_model, networks, "a house")
    assert np.abs(full - base).max() > 10 and not np.array_equal(both, full)
    assert np.array_equal(zero, base) and np.array_equal(after, base)
    assert not result.warnings
    # A1111 1.10 keeps the tag in the infotext's prompt and writes no Hypernet keys for it
    assert result.infotexts[0].startswith("a house <hypernet:style:0.8>\n") and "Hypernet" not in result.infotexts[0]


def test_files_that_cant_be_used_are_warnings_and_the_job_goes_on(engine, demo_model, networks, hypernet_dir):
    base, _ = generate(engine, demo_model, networks, "a house")
    image, result = generate(
        engine,
        demo_model,
        networks,
        "a house <hypernet:evil:1> <hypernet:garbage> "
        "<hypernet:cut> <hypernet:misnumbered> <hypernet:empty> <hypernet:sd15:1> "
        "<hypernet:nowhere:1> <hypernet:style:x>",
    )
    assert np.array_equal(image, base)
    warnings = "\n".join(result.warnings)
    assert "Hypernetwork evil was skipped: Refused to load evil.pt" in warnings and "could run code" in warnings
    assert not (hypernet_dir.parent / "payload-ran").exists()
    assert "Hypernetwork garbage was skipped: garbage.pt is unreadable" in warnings
    assert "Hypernetwork cut was skipped: cut.pt is unreadable, perhaps damaged or cut short" in warnings
    assert (
        "Hypernetwork misnumbered was skipped: misnumbered.pt is not a usable hypernetwork: its weights for "
        "width 64 don't match its layer structure (Missing key(s) in state_dict:"
    ) in warnings
    assert "Hypernetwork empty was skipped: empty.pt is not a usable hypernetwork: it has no layers" in warnings
    assert (
        "Hypernetwork sd15 does not fit this SD 1.x model and was skipped: its layers are for attention widths "
        "320, 640, 768, 1280, this model's attention reads widths 32, 64"
    ) in warnings
    assert f"Hypernetwork not found: nowhere (looked in {hypernet_dir})" in warnings
    assert "Hypernetwork style: multiplier 'x' is not a number" in warnings
    partial, result = generate(engine, demo_model, networks, "a house <hypernet:partial:1>")
    assert result.warnings == [
        "Hypernetwork partial: its layers for attention widths 768 fit nothing in this SD 1.x model and were left out"
    ]
    assert not np.array_equal(partial, base)


def test_old_infotext_keys_become_a_tag(networks):
    parsed = parse_infotext("a house\nSteps: 3, Sampler: Euler, Seed: 1, Hypernet: style, Hypernet strength: 0.8")
    assert parsed["Prompt"] == "a house<hypernet:style:0.8>"
    assert parse_infotext("a\nSteps: 3, Seed: 1, Hypernet: style")["Prompt"] == "a<hypernet:style:1.0>"


def test_listing_and_cards(networks, hypernet_dir):
    listed = networks.hypernetworks.available()
    assert list(listed) == [
        "cut",
        "empty",
        "evil",
        "garbage",
        "misnumbered",
        "partial",
        "sd15",
        "style",
        "cross",
    ]  # by path; no None.pt
    assert listed["cross"] == hypernet_dir / "sub" / "cross.pt"
    found = cards("Hypernetworks", networks, None)
    assert [c.insert for c in found][-1] == "<hypernet:style:1>" and [c.name for c in found] == sorted(listed)
