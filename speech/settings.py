"""Settings of the speech stages, read from ``MANAGER_*`` variables or a ``.env`` file."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from speech.cpus import cpu_count
from speech.whisper_model import WhisperConfig, bundled_model, check_directory, is_directory_setting

Engine = Literal["embedded", "ilps", "openai"]
#: CTranslate2's quantisations ("default": the model's own; "auto": the fastest the
#: device supports).
ComputeType = Literal[
    "default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16",
    "int16", "float16", "bfloat16", "float32",
]  # fmt: skip


class SpeechSettings(BaseSettings):
    """Which engine runs each stage, and the limits of the embedded ones."""

    model_config = SettingsConfigDict(env_prefix="MANAGER_", env_file=".env", extra="ignore")

    #: Longer recordings fail permanently, and decoding stops as soon as they pass it.
    max_audio_seconds: float = Field(300.0, gt=0)
    #: Worker processes for decoding and the embedded recogniser.
    engine_workers: int = Field(default_factory=cpu_count, ge=1)
    #: The embedded recogniser decodes long audio in pieces of about this length.
    segment_seconds: float = Field(30.0, ge=5)
    #: Seconds a remote engine may take to answer one request.
    remote_timeout: float = Field(60.0, gt=0)
    #: The embedded transcriber's Whisper model: a CTranslate2 model directory, or a
    #: model name (``base.en``, ``small``, ``large-v3``, ``distil-large-v3``, a Hugging
    #: Face id) that faster-whisper downloads on first use. Unset: the bundled tiny.en.
    whisper_model: str | None = None
    whisper_device: Literal["auto", "cpu", "cuda"] = "cpu"
    whisper_compute_type: ComputeType = "int8"
    #: 5, not greedy 1 (bench/transcription.py, one run): no word error on the 44 s human
    #: reading (1 at beam 1), nor through the telephone band (2), fewer on espeak-ng's
    #: voices (8-13 % against 11-15 %), for 0.03 CPU s per audio second more.
    whisper_beam_size: int = Field(5, ge=1, le=20)

    service_preprocessing_host: str | None = None
    service_preprocessing_port: int | None = None
    service_preprocessing_protocol: str = "http"
    service_transcribing_host: str | None = None
    service_transcribing_port: int | None = None
    service_transcribing_protocol: str = "http"
    service_feedback_host: str | None = None
    service_feedback_port: int | None = None
    service_feedback_protocol: str = "http"
    #: ILPS's texts service: the embedded evaluator fetches a ``text_id``'s text from it.
    service_texts_host: str | None = None
    service_texts_port: int | None = None
    service_texts_protocol: str = "http"

    openai_base_url: str | None = None
    openai_model: str = "whisper-1"
    openai_api_key: SecretStr | None = None

    #: Engine per stage; unset means the remote one when its address is set.
    preprocessor: Literal["embedded", "ilps"] | None = None
    transcriber: Engine | None = None
    evaluator: Literal["embedded", "ilps"] | None = None

    @model_validator(mode="after")
    def _choose_engines(self) -> Self:
        if self.preprocessor is None:
            self.preprocessor = "ilps" if self.service_preprocessing_host else "embedded"
        if self.transcriber is None:
            self.transcriber = (
                "ilps"
                if self.service_transcribing_host
                else "openai"
                if self.openai_base_url
                else "embedded"
            )
        if self.evaluator is None:
            self.evaluator = "ilps" if self.service_feedback_host else "embedded"
        self._check_addresses()
        if self.whisper_model is not None and is_directory_setting(self.whisper_model):
            check_directory(self.whisper_model)
        return self

    @property
    def whisper(self) -> WhisperConfig:
        """The embedded transcriber's model and how it runs."""
        return WhisperConfig(
            self.whisper_model or bundled_model(),
            self.whisper_device,
            self.whisper_compute_type,
            self.whisper_beam_size,
        )

    def _check_addresses(self) -> None:
        missing = [
            f"MANAGER_SERVICE_{name.upper()}_HOST"
            for name, engine in (
                ("preprocessing", self.preprocessor),
                ("transcribing", self.transcriber),
                ("feedback", self.evaluator),
            )
            if engine == "ilps" and not getattr(self, f"service_{name}_host")
        ]
        if self.transcriber == "openai" and not self.openai_base_url:
            missing.append("MANAGER_OPENAI_BASE_URL")
        if missing:
            raise ValueError(f"the chosen remote engines need {', '.join(missing)}")

    def service_url(
        self, name: Literal["preprocessing", "transcribing", "feedback", "texts"]
    ) -> str:
        """The base URL of an ILPS stage service (its host must be set)."""
        host = getattr(self, f"service_{name}_host")
        if not host:
            raise ValueError(f"MANAGER_SERVICE_{name.upper()}_HOST is not set")
        protocol: str = getattr(self, f"service_{name}_protocol")
        port: int | None = getattr(self, f"service_{name}_port")
        return f"{protocol}://{host}" + (f":{port}" if port else "")
