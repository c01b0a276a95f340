"""Service settings: one class, read from the environment (prefix MOE_) and `.env`.

Built once in `main()` and passed down; tests construct it directly. Every field is
mirrored, with a one-line comment, in `.env.example`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "BUNDLED_PACKS_DIR", "LOG_LEVELS"]

BUNDLED_PACKS_DIR = Path(__file__).resolve().parent.parent / "engine" / "packs"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class Settings(BaseSettings):
    # hide_input_in_errors: an invalid value is not echoed (MOE_DATABASE_URL may hold a password)
    model_config = SettingsConfigDict(env_prefix="MOE_", env_file=".env", extra="ignore", hide_input_in_errors=True)

    # Discord
    discord_token: SecretStr | None = Field(None, description="bot token from the Discord developer portal")
    dev_guild_id: int | None = Field(None, description="sync slash commands to this guild only (instant, for development)")

    # Packs and engine
    packs_dir: Path = Field(Path("packs"), description="folder of extra model packs, watched for hot reload")
    default_pack: str = Field("moe-default", description="pack used when a server has not chosen one")
    providers: Literal["auto", "cpu", "cuda"] = Field("auto", description="onnxruntime providers: auto, cpu or cuda")
    max_batch: int = Field(64, ge=1, le=1024, description="largest micro-batch per model")
    max_wait_ms: float = Field(0.0, ge=0, le=100, description="how long a batch waits for more requests")
    queue_size: int = Field(1024, ge=1, description="requests queued per model before answering busy")
    request_timeout_s: float = Field(20.0, gt=0, description="per-request deadline inside the engine")
    watch_s: float = Field(2.0, ge=0, description="how often the packs folders are checked for new or changed packs, 0 = never")

    # Storage and limits
    database_path: Path = Field(Path("moe-avatar.sqlite3"), description="SQLite file for saved avatars and server settings (when MOE_DATABASE_URL is unset)")
    database_url: str | None = Field(None, description="storage backend: sqlite:///path or postgresql://user@host:port/db; wins over MOE_DATABASE_PATH")
    burst: int = Field(10, ge=1, le=10000, description="draws a member may make in a row before the steady rate applies (per server: /moe-admin limits)")
    refill_s: float = Field(1.0, ge=0, le=86400, description="seconds per draw at the steady rate after the burst, 0 = no steady limit")
    daily_quota: int = Field(200, ge=0, description="default generations per member per day, 0 = unlimited")
    max_upload_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="largest picture accepted by /avatar-remix")

    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR (`moe --log-level` overrides it)")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value.upper()

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str | None) -> str | None:
        value = value.strip() if value else None  # an empty MOE_DATABASE_URL= is unset
        if value is not None and not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    def database_url_or_default(self) -> str:
        """The storage to use: MOE_DATABASE_URL, else the SQLite file MOE_DATABASE_PATH."""
        return self.database_url or f"sqlite:///{self.database_path}"

    def pack_dirs(self) -> list[Path]:
        """Where packs are looked for: the bundled ones, then the admin's folder."""
        return [BUNDLED_PACKS_DIR, self.packs_dir]
