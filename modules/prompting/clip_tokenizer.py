"""Offline CLIP tokenizers built from the BPE vocabulary shipped with open_clip.

Stable Diffusion uses the OpenAI CLIP byte-level BPE for every text encoder
(CLIP ViT-L/14, OpenCLIP ViT-H and ViT-bigG).  The ``open_clip_torch`` package
ships that vocabulary as ``bpe_simple_vocab_16e6.txt.gz``; this module turns it
into the ``vocab.json`` + ``merges.txt`` pair that transformers'
``CLIPTokenizer`` reads, so no model hub access is needed.

Two variants exist, differing only in the padding token:

* ``"<|endoftext|>"`` (id 49407): SD 1.x and SDXL's first tokenizer.
* ``"!"`` (id 0): SD 2.x and SDXL's second tokenizer.

Text is tokenized exactly like open_clip does it: ``"!"`` inside a prompt
stays an ordinary BPE symbol and is only used as the id for padding.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import os
import tempfile
from pathlib import Path

from transformers import CLIPTokenizer

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
PAD_TOKENS = (EOS_TOKEN, "!")
MODEL_MAX_LENGTH = 77
# CLIP keeps the first 49152 - 256 - 2 merge rules of the file (its first line is a header).
_NUM_MERGES = 49152 - 256 - 2
_FILES = ("vocab.json", "merges.txt")


def bpe_file() -> Path:
    """Path of open_clip's ``bpe_simple_vocab_16e6.txt.gz``, found without importing open_clip (slow)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("open_clip_torch is required for the CLIP vocabulary")
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise FileNotFoundError(f"CLIP BPE vocabulary missing: {path}")
    return path


def _read_merges() -> list[str]:
    """Return the merge rules from the gzipped BPE file, one ``"a b"`` per entry."""
    with gzip.open(bpe_file(), "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    return lines[1 : _NUM_MERGES + 1]


def _byte_symbols() -> list[str]:
    """The 256 byte symbols in vocabulary order (the GPT-2 byte-to-unicode table).

    Printable bytes stand for themselves and come first; the other bytes follow,
    in byte order, as the code points 256, 257, ...
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = range(256, 256 + 256 - len(printable))
    return [chr(b) for b in printable] + [chr(c) for c in shifted]


def _build_vocab(merges: list[str]) -> dict[str, int]:
    """Rebuild the CLIP vocabulary: bytes, end-of-word bytes, merged symbols, specials."""
    byte_symbols = _byte_symbols()
    symbols = byte_symbols + [s + "</w>" for s in byte_symbols]
    symbols += ["".join(rule.split()) for rule in merges]
    symbols += [BOS_TOKEN, EOS_TOKEN]
    return {symbol: index for index, symbol in enumerate(symbols)}


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_vocab_files(folder: str | os.PathLike) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` into ``folder`` unless both already exist."""
    folder = Path(folder)
    if all((folder / name).is_file() for name in _FILES):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    merges = _read_merges()
    _atomic_write(folder / "vocab.json", json.dumps(_build_vocab(merges), ensure_ascii=False))
    _atomic_write(folder / "merges.txt", "#version: 0.2\n" + "\n".join(merges) + "\n")
    return folder


def _from_folder(folder: Path, pad_token: str) -> CLIPTokenizer:
    tokenizer = CLIPTokenizer.from_pretrained(str(folder), model_max_length=MODEL_MAX_LENGTH, local_files_only=True)
    # Assigning after construction only changes the padding id; passing pad_token="!"
    # to the constructor would register "!" as a special token and split it out of prompts.
    tokenizer.pad_token = pad_token
    return tokenizer


@functools.cache
def _cached_tokenizer(pad_token: str, cache_dir: str | None) -> CLIPTokenizer:
    if cache_dir is not None:
        return _from_folder(write_vocab_files(cache_dir), pad_token)
    with tempfile.TemporaryDirectory(prefix="clip-bpe-") as tmp:
        return _from_folder(write_vocab_files(tmp), pad_token)


def load_clip_tokenizer(pad_token: str = EOS_TOKEN, cache_dir: str | os.PathLike | None = None) -> CLIPTokenizer:
    """Return a CLIP tokenizer (77 tokens) padding with ``pad_token``; cached per arguments.

    ``cache_dir`` keeps the generated vocab files for reuse; without it they are
    written to a temporary folder that is removed once the tokenizer is built.
    """
    if pad_token not in PAD_TOKENS:
        raise ValueError(f"pad_token must be one of {PAD_TOKENS}, got {pad_token!r}")
    return _cached_tokenizer(pad_token, None if cache_dir is None else str(Path(cache_dir).resolve()))
