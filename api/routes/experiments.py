"""Experiments: create, replace a draft, start/pause/stop, list, get, report."""
from __future__ import annotations

from flask import Blueprint, jsonify

from bandit_push_api.services import services
from bandit_push_api import validation as v
from bandit_push import experiment_report, experiments
from bandit_push.errors import InvalidArgument

bp = Blueprint("experiments", __name__)


def _id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidArgument("experiment_id must be a positive integer", field="experiment_id")
    return int(raw)


@bp.post("/v1/experiments")
def create():
    s = services()
    x = experiments.create(s.store, s.settings, v.json_body())
    return jsonify(x.to_json()), 201


@bp.get("/v1/experiments")
def list_all():
    return jsonify({"experiments": [x.to_json() for x in experiments.list_all(services().store)]})


@bp.get("/v1/experiments/<experiment_id>")
def get(experiment_id: str):
    return jsonify(experiments.get(services().store, _id(experiment_id)).to_json())


@bp.put("/v1/experiments/<experiment_id>")
def replace(experiment_id: str):
    s = services()
    return jsonify(experiments.update(s.store, s.settings, _id(experiment_id), v.json_body()).to_json())


def _transition(experiment_id: str, action: str):
    s = services()
    x = experiments.transition(s.store, _id(experiment_id), action)
    s.engine.snapshot_due()  # (this process's next decide sees the change; the others' within snapshot_seconds)
    return jsonify(x.to_json())


@bp.post("/v1/experiments/<experiment_id>/start")
def start(experiment_id: str):
    return _transition(experiment_id, "start")


@bp.post("/v1/experiments/<experiment_id>/pause")
def pause(experiment_id: str):
    return _transition(experiment_id, "pause")


@bp.post("/v1/experiments/<experiment_id>/stop")
def stop(experiment_id: str):
    return _transition(experiment_id, "stop")


@bp.get("/v1/experiments/<experiment_id>/report")
def report(experiment_id: str):
    return jsonify(experiment_report.report(services().store, _id(experiment_id)))
