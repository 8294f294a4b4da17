"""Regenerate docs/images/*.png from a seeded demo instance: dashboard, jobs, history,
restore and settings at 1280x800, and the jobs page on a phone (390x844).

Run it as `scripts/screenshots [OUTPUT_DIR]` from the test environment (./.venv with
the dev dependencies, Debian's /usr/bin/chromium); it needs no network. It starts a
throwaway `mackuper serve` in a temporary data directory, sets it up through the
API as a user would, runs one real backup, adds 30 days of past runs to the
database so the dashboard's chart and the history have something to show (the
newest backup of "Server configs" failed, so "Needs attention" lists it), and takes
full-page screenshots in Chromium.
"""

from __future__ import annotations

import random
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from playwright.sync_api import Page, sync_playwright  # noqa: E402
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.harness import ADMIN_PASSWORD, ADMIN_USER, BrowserClient, running_mackuper  # noqa: E402
from tests.trees import make_small_tree  # noqa: E402

from mackuper.config import load_settings  # noqa: E402
from mackuper.core.naming import archive_key  # noqa: E402
from mackuper.models import Artifact, Destination, Job, Run, RunLog  # noqa: E402
from mackuper.runtime import open_runtime  # noqa: E402

PAGES = {
    "dashboard": "/",
    "jobs": "/jobs",
    "history": "/history",
    "restore": "/restore",
    "settings": "/settings",
}
# The phone pictures: the screen a person sees first (not the whole page).
PHONE_PAGES = {"phone-dashboard": "/", "phone-jobs": "/jobs"}
# name, cron, time zone, format, typical size in MiB, typical duration in seconds
JOBS = [
    ("Documents", "0 2 * * *", "", "tar.gz", 180, 40),
    ("Family photos", "30 3 * * 0", "Europe/Paris", "tar.zst", 2400, 420),
    ("Server configs", "0 */6 * * *", "", "tar.xz", 12, 8),
    ("Old laptop", "", "", "tar.gz", 900, 200),
]


def seed(client: BrowserClient, data_dir: Path, work: Path) -> None:
    local = client.complete_setup({"name": "NAS", "kind": "local", "path": str(work / "nas")})
    source = make_small_tree(work / "Documents")
    ids = {}
    for name, cron, zone, archive_format, _, _ in JOBS:
        job = client.ok(
            "POST",
            "/api/jobs",
            {
                "name": name,
                "source_kind": "local",
                "source": {"paths": [str(source)], "excludes": ["*.tmp", "cache/**"]},
                "archive_format": archive_format,
                "schedule": cron,
                "timezone": zone,
                "enabled": name != "Old laptop",
                "destination_ids": [local["id"]],
            },
        )["job"]
        ids[name] = job["id"]
    # One real backup, so the newest run has a real log.
    run = client.ok("POST", f"/api/jobs/{ids['Documents']}/run")["run"]
    client.wait_run(run["id"])
    add_history(data_dir, ids, local["id"])


def add_history(data_dir: Path, ids: dict[str, int], destination_id: int) -> None:
    """Thirty days of past runs, written straight to the database."""
    rng = random.Random(7)  # noqa: S311 (demo data, not secrets)
    runtime = open_runtime(load_settings({"MACKUPER_DATA_DIR": str(data_dir)}))
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with runtime.sessions() as session:
        offsite = Destination(
            name="Offsite (Backblaze B2)",
            kind="s3",
            config={
                "bucket": "family-backups",
                "region": "eu-central-003",
                "endpoint_url": "https://s3.eu-central-003.backblazeb2.com",
                "prefix": "mackuper/",
                "path_style": False,
            },
            secrets_encrypted=runtime.secrets.encrypt(
                {"access_key_id": "demo", "secret_access_key": "demo"}
            ),
        )
        session.add(offsite)
        for name, _, _, archive_format, size_mib, seconds in JOBS:
            job = session.get(Job, ids[name])
            if job is None:
                raise RuntimeError(f"job {name} vanished")
            every = {"Documents": 1, "Family photos": 7, "Server configs": 1}.get(name)
            if every is None:
                continue
            for day in range(30, 0, -every):
                started = now - timedelta(days=day, hours=rng.randint(0, 3))
                status = "success"
                if rng.random() < 0.06:
                    status = "failed"
                elif rng.random() < 0.06:
                    status = "warning"
                size = int(size_mib * 1024 * 1024 * rng.uniform(0.9, 1.1) * (1 + (30 - day) / 200))
                run = Run(
                    job_id=job.id,
                    job_name=job.name,
                    trigger="schedule",
                    status=status,
                    created_at=started,
                    started_at=started,
                    finished_at=started + timedelta(seconds=seconds * rng.uniform(0.8, 1.3)),
                    bytes_read=int(size * 1.6),
                    bytes_written=0 if status == "failed" else size,
                    files_done=rng.randint(800, 30000),
                    error="destination NAS is not reachable: No route to host"
                    if status == "failed"
                    else None,
                )
                if name == "Server configs" and day == 1:  # its newest backup failed
                    status = "failed"
                    run.status = status
                    run.bytes_written = 0
                    run.error = "destination NAS is not reachable: No route to host"
                session.add(run)
                session.flush()
                session.add(RunLog(run_id=run.id, at=started, level="info", message="started"))
                if status != "failed":
                    key = archive_key("", job.slug, started, archive_format)
                    run.archive_name = key.rsplit("/", 1)[-1]
                    session.add(
                        Artifact(
                            run_id=run.id,
                            job_id=job.id,
                            destination_id=destination_id,
                            key=key,
                            state="stored",
                            size=size,
                            created_at=started,
                        )
                    )
        session.commit()
    runtime.engine.dispose()


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "images"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mackuper-demo-") as tmp:
        work = Path(tmp)
        with running_mackuper(work / "data") as mackuper:
            client = BrowserClient(mackuper.url)
            seed(client, work / "data", work)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                context = browser.new_context(
                    base_url=mackuper.url,
                    viewport={"width": 1280, "height": 800},
                    color_scheme="light",
                    timezone_id="Europe/Paris",
                    locale="en-GB",
                )
                page = context.new_page()
                page.goto("/login")
                page.get_by_label("User name").fill(ADMIN_USER)
                page.get_by_label("Password").fill(ADMIN_PASSWORD)
                page.get_by_role("button", name="Log in").click()
                page.get_by_role("navigation", name="Main").wait_for()
                for name, path in PAGES.items():
                    shoot(page, path, out / f"{name}.png", full_page=True)
                page.set_viewport_size({"width": 390, "height": 844})
                for name, path in PHONE_PAGES.items():
                    shoot(page, path, out / f"{name}.png", full_page=False)
                browser.close()


def shoot(page: Page, path: str, target: Path, full_page: bool) -> None:
    page.goto(path)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)
    page.screenshot(path=str(target), full_page=full_page)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
