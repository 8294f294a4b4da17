"""The container engine's settings, "Test connection" and discovery: requests and answers."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

from mackuper.schemas.answers import Answer
from mackuper.schemas.base import Input, Text
from mackuper.sources.engine import check_address


def _address(text: str) -> str:
    if problem := check_address(text):
        raise ValueError(problem)
    return text


def _image(text: str) -> str:
    if text.startswith("-") or any(character.isspace() for character in text):
        raise ValueError("Use an image name such as debian:bookworm-slim, without spaces.")
    return text


EngineAddress = Annotated[Text, Field(max_length=500), AfterValidator(_address)]


class EngineSettingsBody(Input):
    """Where the Docker Engine API answers; empty: DOCKER_HOST, else Docker's socket."""

    address: EngineAddress = ""
    helper_image: Annotated[Text, Field(max_length=255), AfterValidator(_image)] = ""
    """The image of the throwaway containers that read volumes (never started); empty:
    the image of a container using the volume, else any local image."""


class EngineTestBody(Input):
    address: EngineAddress | None = None
    """The address to test; null or left out: the saved one."""


class EngineSettingsAnswer(Answer):
    address: str
    effective: str
    """The address used: the setting, DOCKER_HOST, or Docker's default socket."""
    helper_image: str


class EngineTestAnswer(Answer):
    ok: bool
    message: str
    address: str
    product: str | None = None
    version: str | None = None
    api_version: str | None = None
    containers: int | None = None
    running: int | None = None
    volumes: int | None = None
    images: int | None = None


class ContainersAnswer(Answer):
    containers: list[dict[str, Any]]
    volumes: list[str]
    proposals: list[dict[str, Any]]
    """Ready-made jobs for containers carrying mackuper.* labels."""
