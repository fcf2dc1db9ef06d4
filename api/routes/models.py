"""GET /v1/models, POST /v1/models/<name>/refit, GET /v1/jobs/<job_id>."""
from __future__ import annotations

from flask import Blueprint, jsonify

from bandit_push_api.services import services
from bandit_push_api import validation as v
from bandit_push import models
from bandit_push_workers import queue

bp = Blueprint("models", __name__)


@bp.get("/v1/models")
def list_models():
    """The version of each model serving now: when and on what data it was fit, its quality; and each model's
    latest version kept, not served (its ``gate`` says why)."""
    s = services()
    return jsonify({"models": models.serving(s.store), "kept": models.kept(s.store)})


@bp.post("/v1/models/<name>/refit")
def refit(name: str):
    """Enqueue a refit (202), or name the refit of this model already queued or running (200)."""
    s = services()
    name = v.ident(name, "name", 32)
    job_id, created = queue.enqueue_refit(s.store, s.settings, name)
    return jsonify({"job_id": job_id, "model": name, "enqueued": created}), 202 if created else 200


@bp.get("/v1/jobs/<job_id>")
def job(job_id: str):
    s = services()
    job_id = v.ident(job_id, "job_id", 64)
    return jsonify(queue.job_state(s.store, job_id))
