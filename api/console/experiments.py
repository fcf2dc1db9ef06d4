"""Experiments: the list, the creation form, start/pause/stop with a confirmation, and the report."""
from __future__ import annotations

import json
import re
import time
from typing import Any

from flask import abort, redirect, render_template, request, url_for

from bandit_push_api.services import services
from bandit_push_api.console.blueprint import bp
from bandit_push_api.console.access import admin_only
from bandit_push_api.console.fmt import METRICS, scale
from bandit_push import experiment_report, experiments
from bandit_push.errors import InvalidArgument
from bandit_push.policies import POLICIES

#: what each action does, for its confirmation page
ACTIONS = {"start": "Start: eligible users are assigned to its variants at their next decide.",
           "pause": "Pause: decides stop using its variants; exposed users keep their variant when it restarts.",
           "stop": "Stop: for good. Its variants and weights are frozen; the report stays readable."}
#: the actions each status allows (as bandit_push.experiments.transition does)
ALLOWED = {"draft": ("start", "stop"), "running": ("pause", "stop"), "paused": ("start", "stop"), "stopped": ()}


def _id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        abort(404)
    return int(raw)


@bp.get("/")
@bp.get("/experiments")
def experiments_page():
    s = services()
    return render_template("console/experiments.html", experiments=experiments.list_all(s.store), now=time.time())


# -- the creation form -------------------------------------------------------------------------------


def _number(text: str) -> Any:
    """A number typed in a box, or the text itself so that the API's own check names the field."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _rows(form) -> int:
    """How many variant rows the form shows: its ``rows`` field, 2 to MAX_VARIANTS."""
    raw = form.get("rows", "2")
    return min(max(int(raw) if raw.isdigit() and len(raw) < 4 else 2, 2), experiments.MAX_VARIANTS)


def definition(form) -> tuple[dict[str, Any], list[int]]:
    """The API body the form describes, and the form row of each variant in it (blank extra rows are left out).

    Raises :class:`InvalidArgument` for what only the form can get wrong (a settings box that is not a JSON object);
    everything else is left to :func:`bandit_push.experiments.parse_definition`, the API's own validation."""
    rows = _rows(form)
    body: dict[str, Any] = {"name": form.get("name", "")}
    segments = form.get("segments", "").strip()
    if segments:
        body["segments"] = [seg.strip() for seg in segments.split(",")]
    variants, kept = [], []
    for i in range(rows):
        p = f"variants[{i}]"
        name, weight, extra = (form.get(f"{p}.{f}", "").strip() for f in ("name", "weight", "policy"))
        overrides = {k: form.get(f"{p}.guardrails.{k}", "").strip() for k in experiments.GUARDRAIL_OVERRIDES}
        if i >= 2 and not (name or weight or extra or any(overrides.values())):
            continue
        policy: dict[str, Any] = {"name": form.get(f"{p}.policy.name", "")}
        if extra:
            try:
                settings = json.loads(extra)
            except ValueError:
                settings = None
            if not isinstance(settings, dict):
                raise InvalidArgument('policy settings must be a JSON object such as {"cost": 0.2}',
                                      field=f"{p}.policy")
            policy.update({k: v for k, v in settings.items() if k != "name"})
        variant: dict[str, Any] = {"name": name, "policy": policy}
        if weight:
            variant["weight"] = _number(weight)
        guardrails = {k: (v if k == "quiet_hours" else _number(v)) for k, v in overrides.items() if v}
        if guardrails:
            variant["guardrails"] = guardrails
        variants.append(variant)
        kept.append(i)
    body["variants"] = variants
    return body, kept


_VARIANT = re.compile(r"^variants\[(\d+)\]")


def inputs(rows: int) -> list[str]:
    """The names of the form's inputs, longest first."""
    names = ["name", "segments", "variants"]
    for i in range(rows):
        p = f"variants[{i}]"
        names += [p, f"{p}.name", f"{p}.weight", f"{p}.policy", f"{p}.policy.name"]
        names += [f"{p}.guardrails.{k}" for k in experiments.GUARDRAIL_OVERRIDES]
    return sorted(names, key=len, reverse=True)


def form_field(field: str | None, kept: list[int], rows: int) -> str:
    """The input beside which an API error shows: the one the field names, or the nearest one holding it
    (``variants[1].policy.cost`` -> the policy settings box); a variant's index in the body -> its form row."""
    field = field or "body"
    m = _VARIANT.match(field)
    if m and int(m.group(1)) < len(kept):
        field = f"variants[{kept[int(m.group(1))]}]" + field[m.end():]
    for name in inputs(rows):
        if field == name or field.startswith(name + ".") or field.startswith(name + "["):
            return name
    return "body"


@bp.route("/experiments/new", methods=["GET", "POST"])
@admin_only
def new_experiment():
    form = request.form if request.method == "POST" else {}
    rows = _rows(form)
    errors: dict[str, str] = {}
    if request.method == "POST":
        if "add" in form:  # "add a variant": the same form with one more row, nothing stored
            rows = min(rows + 1, experiments.MAX_VARIANTS)
        else:
            kept: list[int] = []
            try:
                body, kept = definition(form)
                s = services()
                x = experiments.create(s.store, s.settings, body)
                return redirect(url_for("console.experiment_page", experiment_id=x.id), 303)
            except InvalidArgument as e:
                errors[form_field(e.field, kept, rows)] = e.message
    return render_template("console/experiment_new.html", form=form, rows=rows, errors=errors,
                           policies=sorted(POLICIES), guardrails=experiments.GUARDRAIL_OVERRIDES,
                           defaults={n: POLICIES[n].defaults for n in POLICIES}), 400 if errors else 200


# -- one experiment: definition, actions, report -------------------------------------------------------


@bp.get("/experiments/<experiment_id>")
def experiment_page(experiment_id: str):
    s = services()
    x = experiments.get(s.store, _id(experiment_id))
    rep = experiment_report.report(s.store, x.id, with_exposures=True)
    # one scale per metric row, holding both intervals, so the bars of a row compare at a glance
    scales = [scale([c["estimate"]["ci_low"], c["estimate"]["ci_high"], c["sequential"]["ci_low"],
                     c["sequential"]["ci_high"]]) for c in rep["comparisons"]]
    labels = {m.name: m.words for m in experiment_report.METRICS}
    return render_template("console/experiment.html", x=x, rep=rep, scales=scales, labels=labels, units=METRICS,
                           actions=ALLOWED.get(x.status, ()), weights=s.settings.weights, now=time.time())


@bp.route("/experiments/<experiment_id>/<action>", methods=["GET", "POST"])
@admin_only
def transition(experiment_id: str, action: str):
    """GET asks for the confirmation; POST (from that page, with its token) does it."""
    if action not in ACTIONS:
        abort(404)
    s = services()
    x = experiments.get(s.store, _id(experiment_id))
    if request.method == "POST":
        experiments.transition(s.store, x.id, action)  # a conflict (e.g. already stopped) renders as 409
        s.engine.snapshot_due()  # (this process's next decide sees the change)
        return redirect(url_for("console.experiment_page", experiment_id=x.id), 303)
    return render_template("console/confirm.html", x=x, action=action, what=ACTIONS[action],
                           allowed=action in ALLOWED.get(x.status, ()))
