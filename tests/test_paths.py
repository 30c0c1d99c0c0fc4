from modules.paths import REPO_ROOT, DataPaths


def test_data_dir_holds_everything_a_user_owns(tmp_path):
    paths = DataPaths.create(str(tmp_path / "data"), str(tmp_path / "more"))
    root = tmp_path / "data"
    assert paths.root == root
    for folder in (
        "models/Stable-diffusion",
        "models/VAE",
        "models/Lora",
        "models/GFPGAN",
        "outputs",
        "embeddings",
        "extensions",
    ):
        assert (root / folder).is_dir(), folder
    assert paths.config_file == root / "config.json"
    assert paths.ui_config_file == root / "ui-config.json"
    assert paths.styles_file == root / "styles.csv"
    assert paths.checkpoint_dirs() == [root / "models" / "Stable-diffusion", tmp_path / "more"]


def test_default_data_dir_is_the_repository():
    assert DataPaths(root=REPO_ROOT).models == REPO_ROOT / "models"
    assert (REPO_ROOT / "app.py").is_file()
