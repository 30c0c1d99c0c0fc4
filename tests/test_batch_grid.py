"""A job of several images makes a grid as A1111 does: first among the images, saved to the grids folder with the
first image's infotext, as the return_grid, grid_save, grid_only_if_multiple and n_rows settings say."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from script_services import generate, services_with_scripts

from modules.imaging.grids import grid_rows, image_grid

DEFAULTS = {
    "return_grid": True,
    "grid_save": True,
    "grid_only_if_multiple": True,
    "n_rows": -1,
    "grid_prevent_empty_spots": False,
}


@pytest.fixture(scope="module")
def services(tmp_path_factory, demo_checkpoint):
    made = services_with_scripts(tmp_path_factory.mktemp("data"), demo_checkpoint, [])
    yield made
    made.engine.shutdown()


@pytest.fixture
def settings(services):
    yield services.user_settings.change
    services.user_settings.change(DEFAULTS)


def grid_files(services) -> list[Path]:
    return sorted(Path(services.jobs.output_dir("outdir_txt2img_grids")).rglob("grid-*.png"))


def test_a_batch_of_two_shows_its_grid_first_and_saves_it(services, settings):
    before = len(grid_files(services))
    result = generate(services, batch_size=2)
    grid, *samples = result.images
    assert len(samples) == 2 and result.index_of_first_image == 1
    assert grid.size == (128, 64)  # round(√2) = 1 row
    assert np.array_equal(np.asarray(grid)[:, 64:], np.asarray(samples[1]))
    assert result.infotexts[0] == result.infotexts[1] and result.seeds == [11, 11, 12]
    saved = grid_files(services)
    assert len(saved) == before + 1 and result.paths[0] == saved[-1]
    assert Image.open(saved[-1]).info["parameters"] == result.infotexts[0]


def test_grid_settings(services, settings):
    settings({"return_grid": False})
    before = len(grid_files(services))
    assert len(generate(services, batch_size=2).images) == 2
    assert len(grid_files(services)) == before + 1  # saved, not shown

    settings({"grid_save": False, "return_grid": True, "n_rows": 2})
    result = generate(services, n_iter=2)
    assert result.images[0].size == (64, 128) and len(grid_files(services)) == before + 1

    assert len(generate(services).images) == 1  # grid_only_if_multiple
    settings({"grid_only_if_multiple": False})
    assert len(generate(services).images) == 2


def test_scripts_postprocess_and_their_own_grids_are_unchanged(services):
    result = generate(services, "Prompt matrix", {}, prompt="a house|red", batch_size=1)
    assert len(result.images) == 3 and result.index_of_first_image == 1  # the matrix's grid only


@pytest.mark.parametrize(
    ("count", "batch", "n_rows", "prevent", "rows"),
    [
        (2, 1, -1, False, 1),
        (3, 1, -1, False, 2),
        (3, 1, -1, True, 1),
        (8, 1, -1, True, 2),
        (6, 3, 0, False, 3),
        (2, 1, 4, False, 2),
        (9, 1, -1, False, 3),
    ],
)
def test_grid_rows_follow_a1111(count, batch, n_rows, prevent, rows):
    assert grid_rows(count, batch, n_rows, prevent) == rows


def test_images_of_other_sizes_are_centred_in_their_cells():
    grid = image_grid([Image.new("RGB", (64, 64), "red"), Image.new("RGB", (32, 32), "blue")], rows=1)
    assert grid.size == (128, 64)
    assert grid.getpixel((96, 32)) == (0, 0, 255) and grid.getpixel((66, 2)) == (255, 255, 255)
