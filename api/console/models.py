"""Models and jobs: the versions serving with their quality and age, refits with their progress, failures."""
from __future__ import annotations

import time

from flask import redirect, render_template, url_for

from bandit_push_api.services import services
from bandit_push_api import validation as v
from bandit_push_api.console.blueprint import bp
from bandit_push_api.console.access import admin_only
from bandit_push import models, refit
from bandit_push_workers import queue, registry


@bp.get("/models")
def models_page():
    s = services()
    running = {}
    for name in refit.REFITS:  # the refit lock names its holder: a job id, or cli:<host>:<pid>
        holder = s.store.redis.get(s.store.keys.refit_lock(name))
        if holder:
            running[name] = holder
    return render_template("console/models.html", serving=models.serving(s.store), kept=models.kept(s.store),
                           names=list(refit.REFITS),
                           running=running, failures=queue.recent_failures(s.store, 10), now=time.time())


@bp.post("/models/<name>/refit")
@admin_only
def refit_model(name: str):
    s = services()
    job_id, _ = queue.enqueue_refit(s.store, s.settings, v.ident(name, "name", 32))
    return redirect(url_for("console.job_page", job_id=job_id), 303)


@bp.get("/jobs/<job_id>")
def job_page(job_id: str):
    s = services()
    job = queue.job_state(s.store, v.ident(job_id, "job_id", 64))
    return render_template("console/job.html", job=job, done=job["state"] in _DONE, now=time.time())


@bp.get("/jobs/<job_id>/state")
def job_state(job_id: str):
    """The job's progress as a fragment: htmx swaps it in every second until the job ends."""
    s = services()
    job = queue.job_state(s.store, v.ident(job_id, "job_id", 64))
    return render_template("console/_job.html", job=job, done=job["state"] in _DONE, now=time.time())


_DONE = {str(st.value) for st in registry.DONE}
