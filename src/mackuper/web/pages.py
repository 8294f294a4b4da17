"""HTML pages (a server-rendered shell; Alpine components fill them) and /health."""

from __future__ import annotations

import platform
import shutil

from flask import Blueprint, jsonify, render_template
from werkzeug.wrappers import Response

from mackuper import __version__, installation
from mackuper.schemas.answers import About
from mackuper.web import health as health_check
from mackuper.web.auth import local_backup_dir
from mackuper.web.database import get_db, runtime
from mackuper.web.operations import operation
from mackuper.web.security import login_required

blueprint = Blueprint("pages", __name__)


@blueprint.app_context_processor
def time_zone() -> dict[str, str]:
    """Every page shows times in the installation's zone, labelled (base.html hands it
    to app.js), never in whatever zone the browser happens to be in."""
    return {"installation_timezone": installation.timezone(get_db())}


@blueprint.get("/")
@login_required
def dashboard() -> str:
    return render_template("dashboard.html", tab="dashboard")


@blueprint.get("/jobs")
@login_required
def jobs() -> str:
    return render_template("jobs.html", tab="jobs")


@blueprint.get("/history")
@login_required
def history() -> str:
    return render_template("history.html", tab="history")


@blueprint.get("/runs/<int:run_id>")
@login_required
def run(run_id: int) -> str:
    return render_template("run.html", tab="history", run_id=run_id)


@blueprint.get("/settings")
@login_required
def settings() -> str:
    return render_template("settings.html", tab="settings", local_backup_dir=local_backup_dir())


@blueprint.get("/api/about")
@login_required
@operation("Version, database and free disk space", responses={200: About})
def about() -> Response:
    settings = runtime().settings
    usage = shutil.disk_usage(settings.data_dir)
    return jsonify(
        version=__version__,
        python=platform.python_version(),
        database="SQLite" if settings.is_sqlite else "PostgreSQL",
        data_dir=str(settings.data_dir),
        free_disk=usage.free,
    )


@blueprint.get("/health")
def health() -> tuple[Response, int]:
    """The database answers and a worker heartbeat is fresh; else 503 with a reason."""
    answer, healthy = health_check.report(get_db())
    return jsonify(answer), 200 if healthy else 503


@blueprint.get("/health/live")
def liveness() -> tuple[Response, int]:
    """This web process and its database answer (for web-only containers)."""
    if not health_check.database_ok(get_db()):
        return jsonify(status="error", database="unreachable"), 503
    return jsonify(status="ok", database="ok"), 200
