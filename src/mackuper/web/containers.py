"""The container engine: its address in Settings, "Test connection", and what it holds
(containers, volumes, and the jobs that containers' mackuper.* labels propose)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import select
from werkzeug.wrappers import Response

from mackuper import installation
from mackuper.models import Job
from mackuper.schemas.containers import (
    ContainersAnswer,
    EngineSettingsAnswer,
    EngineSettingsBody,
    EngineTestAnswer,
    EngineTestBody,
)
from mackuper.sources import engine
from mackuper.sources.engine import Container, EngineError
from mackuper.web.database import get_db
from mackuper.web.forms import fail
from mackuper.web.operations import operation
from mackuper.web.security import login_required

logger = logging.getLogger(__name__)
blueprint = Blueprint("containers", __name__, url_prefix="/api/containers")

JOB_LABEL = "mackuper.job"
VOLUMES_LABEL = "mackuper.volumes"
SCHEDULE_LABEL = "mackuper.schedule"
SHOWN_LABELS = ("mackuper.", "com.docker.compose.project", "com.docker.compose.service",
                "com.docker.compose.depends_on")  # fmt: skip
"""Labels the API shows; others may hold settings of other tools, so they stay out."""


def _settings() -> dict[str, str]:
    session = get_db()
    address = installation.container_engine(session)
    return {
        "address": address,
        "effective": engine.address(address),
        "helper_image": installation.container_helper_image(session),
    }


@blueprint.get("/engine")
@login_required
@operation("The container engine's address", responses={200: EngineSettingsAnswer})
def get_engine() -> Response:
    return jsonify(_settings())


@blueprint.put("/engine")
@login_required
@operation(
    "Set the container engine's address and the image that reads volumes",
    body=EngineSettingsBody,
    responses={200: EngineSettingsAnswer},
)
def update_engine(body: EngineSettingsBody) -> Response:
    session = get_db()
    installation.write(session, installation.CONTAINER_ENGINE, body.address or None)
    installation.write(session, installation.CONTAINER_HELPER_IMAGE, body.helper_image or None)
    session.commit()
    return jsonify(_settings())


@blueprint.post("/engine/test")
@login_required
@operation(
    "Test a container engine: its product, version and counts",
    body=EngineTestBody,
    responses={200: EngineTestAnswer},
)
def test_engine(body: EngineTestBody) -> Response:
    saved = installation.container_engine(get_db())
    url = engine.address(saved if body.address is None else body.address)
    try:
        info = engine.describe(url)
    except EngineError as error:
        logger.info("container engine test of %s: %s", url, error)
        return jsonify(ok=False, message=str(error), address=url)
    message = (
        f"{info.product} {info.version} (API {info.api_version}): {info.containers}"
        f" containers ({info.running} running), {info.volumes} volumes, {info.images} images."
    )
    return jsonify(
        ok=True,
        message=message,
        address=url,
        product=info.product,
        version=info.version,
        api_version=info.api_version,
        containers=info.containers,
        running=info.running,
        volumes=info.volumes,
        images=info.images,
    )


def _shown(container: Container) -> dict[str, Any]:
    return {
        "id": container.id[:12],
        "name": container.name,
        "image": container.image,
        "status": container.status,
        "volumes": container.volumes,
        "labels": {
            key: value for key, value in container.labels.items() if key.startswith(SHOWN_LABELS)
        },
    }


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def proposals(containers: list[Container], slugs: set[str]) -> list[dict[str, Any]]:
    """Ready-made volume jobs for containers with mackuper.* labels, one per job name:
    `mackuper.stop-during-backup=<slug>` or `mackuper.job=<name>` names the job,
    `mackuper.volumes=a,b` its volumes (else the named volumes the containers mount),
    `mackuper.schedule=<cron>` its schedule. `exists` when a job has that slug."""
    groups: dict[str, list[Container]] = {}
    for container in containers:
        key = (
            container.labels.get(engine.STOP_LABEL, "").strip()
            or container.labels.get(JOB_LABEL, "").strip()
        )
        if key:
            groups.setdefault(key, []).append(container)
    found = []
    for key, members in sorted(groups.items()):
        volumes: list[str] = []
        schedule = ""
        for container in members:
            labelled = _split(container.labels.get(VOLUMES_LABEL, ""))
            for volume in labelled or container.volumes:
                if volume not in volumes:
                    volumes.append(volume)
            schedule = schedule or container.labels.get(SCHEDULE_LABEL, "").strip()
        stopping = [
            container.name
            for container in members
            if container.labels.get(engine.STOP_LABEL, "").strip() == key
        ]
        found.append(
            {
                "name": key,
                "containers": [container.name for container in members],
                "source_kind": "volume",
                "source": {"volumes": volumes},
                "stop_containers": stopping,
                "schedule": schedule or None,
                "exists": key in slugs,
            }
        )
    return found


@blueprint.get("")
@login_required
@operation(
    "The engine's containers and volumes, and the jobs their mackuper.* labels propose",
    responses={200: ContainersAnswer},
)
def list_containers() -> Response:
    url = engine.address(installation.container_engine(get_db()))
    try:
        client = engine.connect(url)
        try:
            containers = engine.list_containers(client)
            volumes = engine.list_volumes(client)
        finally:
            client.close()
    except EngineError as error:
        fail(f"{str(error)[:1].upper()}{str(error)[1:]}", 409)
    slugs = set(get_db().scalars(select(Job.slug)))
    return jsonify(
        containers=[_shown(container) for container in containers],
        volumes=volumes,
        proposals=proposals(containers, slugs),
    )
