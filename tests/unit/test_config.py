from __future__ import annotations

from pathlib import Path

import pytest

from mackuper.config import ConfigError, load_settings


def test_defaults_put_everything_under_the_data_directory(tmp_path: Path) -> None:
    settings = load_settings({"MACKUPER_DATA_DIR": str(tmp_path / "d")})
    assert settings.database_url == f"sqlite:///{tmp_path / 'd' / 'mackuper.db'}"
    assert settings.temp_dir == tmp_path / "d" / "temp"
    assert settings.port == 5000
    assert settings.https_enabled is False
    assert settings.master_key is None


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    env = {"MACKUPER_DATA_DIR": str(tmp_path)}
    first = load_settings(env).secret_key
    assert len(first) == 64
    assert load_settings(env).secret_key == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORT", "http", "PORT='http' is not a whole number"),
        ("PORT", "70000", "PORT=70000 is out of range"),
        ("HTTPS_ENABLED", "maybe", "HTTPS_ENABLED='maybe' is not a boolean"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL must start with sqlite:/// or postgresql"),
        ("FLASK_ENV", "staging", "FLASK_ENV='staging' must be production or development"),
        ("SECRET_KEY", "short", "SECRET_KEY is shorter than 16 characters"),
        ("MACKUPER_MAX_CONCURRENT_RUNS", "0", "MACKUPER_MAX_CONCURRENT_RUNS=0 is out of range"),
        ("MACKUPER_SSH_CIPHERS", "aes256-ctr;id", "MACKUPER_SSH_CIPHERS='aes256-ctr;id' is not an"),
        ("MACKUPER_RETRY_SECONDS", "-1", "MACKUPER_RETRY_SECONDS=-1.0 is out of range"),
        ("MACKUPER_RETRY_SECONDS", "5m", "MACKUPER_RETRY_SECONDS='5m' is not a number"),
    ],
)
def test_a_bad_value_names_the_variable(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings({"MACKUPER_DATA_DIR": str(tmp_path), name: value})


def test_an_unwritable_data_directory_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="MACKUPER_DATA_DIR=.*cannot be created"):
        load_settings({"MACKUPER_DATA_DIR": str(blocker / "sub")})


def test_plain_postgresql_urls_use_psycopg3(tmp_path: Path) -> None:
    settings = load_settings(
        {"MACKUPER_DATA_DIR": str(tmp_path), "DATABASE_URL": "postgresql://u@h/db"}
    )
    assert settings.database_url == "postgresql+psycopg://u@h/db"
