import torch
from safetensors.torch import load_file

from modules.models.demo_model import build_demo_state_dict


def test_demo_checkpoint_is_deterministic_in_the_original_layout(demo_checkpoint):
    state = load_file(str(demo_checkpoint))
    prefixes = {key.split(".")[0] for key in state}
    assert prefixes == {"model", "first_stage_model", "cond_stage_model"}
    again = build_demo_state_dict()
    assert state.keys() == again.keys()
    assert all(torch.equal(state[k], again[k]) for k in state)


def test_demo_model_has_sd_shapes_and_an_8x_vae(demo_model):
    assert demo_model.family.name == "sd1"
    assert demo_model.vae_scale_factor == 8
    with torch.no_grad():
        latents = demo_model.vae.encode(torch.zeros(1, 3, 512, 512)).latent_dist.mean
    assert latents.shape == (1, 4, 64, 64)


def test_the_demo_file_is_the_same_bytes_every_time(tmp_path):
    from modules.models.demo_model import write_demo_checkpoint

    first, second = (write_demo_checkpoint(tmp_path / f"{name}.safetensors").read_bytes() for name in "ab")
    assert first == second, "so a fresh data dir always shows the same short hash"
