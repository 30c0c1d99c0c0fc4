import threading

from PIL import Image

from modules.images import dated_folder, prompt_words, save_numbered


def test_file_name_counter_and_parameters_chunk(tmp_path):
    image = Image.new("RGB", (8, 8), "red")
    first = save_numbered(image, tmp_path, 123, "a cat: on/a mat", "a cat\nSteps: 1, Seed: 123, Size: 8x8")
    second = save_numbered(image, tmp_path, 124, "", None)
    assert first.name == "00000-123-a cat on a mat.png"
    assert second.name == "00001-124.png"
    assert Image.open(first).info["parameters"].startswith("a cat")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_parallel_saves_never_overwrite(tmp_path):
    image = Image.new("RGB", (4, 4))
    paths = []
    threads = [threading.Thread(target=lambda i=i: paths.append(save_numbered(image, tmp_path, i, "x", None)))
               for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({p.name for p in paths}) == 12 == len(list(tmp_path.glob("*.png")))


def test_prompt_words_and_dated_folder(tmp_path):
    assert prompt_words("one two three four", 2) == "one two"
    assert dated_folder(tmp_path).parent == tmp_path
    assert len(dated_folder(tmp_path).name) == 10
