"""Page state: what the page shows besides a job's images — notices, the model status line, the last
generation's infotext and the prompt boxes' token counters."""

from __future__ import annotations

from pathlib import Path

from modules import prompt_parser
from modules.core.limits import Limits
from modules.core.model_switching import ModelSwitching
from modules.models.demo_model import DEMO_FILE_NAME, DEMO_NOTICE
from modules.options import Options
from modules.prompting.conditioning import EncoderOptions


class PageState:
    """The page's own state, one per process."""

    def __init__(self, opts: Options, switching: ModelSwitching, checkpoints_folder: Path) -> None:
        self.opts, self.switching, self.checkpoints_folder = opts, switching, checkpoints_folder
        self.notices: list[str] = []  # problems found at start (settings, styles, extensions, scripts)
        self.last_infotext: str | None = None  # the page's last generation, for the ↙️ button (A1111's params.txt)

    @property
    def status(self) -> str:
        """One line for the top of the page: what is loaded, or why nothing is."""
        models = self.switching.models
        current = models.current
        if current is None:
            return self.switching.load_error or "Loading model…"
        if current.checkpoint.path.name == DEMO_FILE_NAME:
            return DEMO_NOTICE.format(folder=self.checkpoints_folder)
        vae = f", VAE: {current.vae_name}" if current.vae_name else ""
        return f"Model: {models.current_title}{vae}"

    def token_count(self, text: str, steps: float) -> tuple[int, int] | None:
        """(tokens used, tokens available) for a prompt box's counter: the longest text the prompt
        has at any step, in the loaded model's tokenizer; None while no model is loaded or while the text is
        over the prompt length limit (Generate says so)."""
        model = self.switching.models.current
        if model is None or len(text) > Limits.from_options(self.opts).max_prompt_length:
            return None
        options = EncoderOptions.from_options(self.opts)
        parsed = prompt_parser.parse_prompt(text, max(1, int(steps)))
        texts = [entry.text for sub in parsed.subprompts for entry in sub.schedule] or [""]
        return max(model.prompt_encoder.token_count(t, options) for t in dict.fromkeys(texts))
