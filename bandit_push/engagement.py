"""Per-user evidence: how much more (or less) than their segment a user engages with pushes.

Each user carries ``pe = {t, E, X}`` in their hash (text, under 30 bytes): decayed counts of their **engaged
decisions** ``E`` (a pushed decision with an opened, clicked or converted report in time, counted once)
and of the number ``X`` of engaged decisions their segment's contexts predicted for those pushes (each
send adds the context's posterior engagement rate). The user's **engagement multiplier** ``theta`` scales
the positive-weight part of the net value (clicks, conversions); the negative part (dismissals, opt-outs)
stays the context's. Hierarchically (user <- segment context <- policy space; a Gamma-Poisson model):

    theta ~ Gamma(kappa, kappa / g),   g = exp(b0 + b1 * x1 + b2 * x2)
    E | theta ~ Poisson(theta * X)   =>   theta | E, X ~ Gamma(kappa + E, kappa / g + X)

with ``x1 = log(1 + organic events per 30 days)`` and ``x2`` the same of purchases (over the user's tenure,
at least 30 days). So a user who ignores pushes is pushed less within days (``X`` grows, ``E`` does not), one
who engages more, and a new user starts from what their organic activity predicts. ``kappa`` (the shrinkage)
and ``b`` are **learned**: :func:`fit` maximises the negative-binomial likelihood of every pushed user's
``(E, X)`` (the Gamma-Poisson marginal), the policy refit publishes them as the model ``policy`` and decide
reads them as a per-process snapshot (:meth:`EngagementParams.serving`). Until the first fit, ``kappa = 4``,
``b = 0``: a prior around the segment whose sd is half its mean.

Setting ``user_evidence`` (on by default; docs/simulation.md has what it measured, alone and with Thompson
episodes). The evidence is kept and the model refitted either way.

:func:`user_theta` and :func:`user_net_value` are the decide script's arithmetic (``user_theta`` and
``posterior`` in bandit_push/lua/includes/evidence.lua and posterior.lua), operation for operation.
"""
from __future__ import annotations

import math
import zlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import gammaln

from bandit_push import models
from bandit_push.config import EVENT_TYPES, Settings
from bandit_push.errors import NoData, NotFound
from bandit_push.schema import USER
from bandit_push.store import Store

#: the outcomes whose rate in a context is the expected engagement of one push there
ENGAGED: tuple[str, ...] = ("opened", "clicked")
#: the user hash fields the model reads: the evidence, the first event's time, the organic counts
FIELDS: tuple[str, ...] = (USER["evidence"], USER["first_event"], *(USER["event_count"] + t for t in EVENT_TYPES))
MODEL = "policy"
#: a Gaussian prior of this sd on b1, b2 (MAP): keeps a fit on a few hundred users sane
B_SD = 2.0


@dataclass(frozen=True)
class EngagementParams:
    kappa: float = 4.0  #: before the first fit: the multiplier's sd is half its mean
    b: tuple[float, float, float] = (0.0, 0.0, 0.0)
    version: str | None = None

    def argument(self) -> str:
        """The decide script's ARGV: ``"kappa b0 b1 b2"``, exact doubles."""
        return " ".join("%.17g" % x for x in (self.kappa, *self.b))

    @classmethod
    def serving(cls, store: Store, cache: models.ModelCache | None = None) -> "EngagementParams":
        """The serving version's parameters (the defaults before the first fit); with ``cache``, loaded only when
        the version pointer moved."""
        try:
            stored = (cache or models.ModelCache()).get(store, MODEL)
        except (NotFound, ValueError):
            return cls()
        if stored is None:
            return cls()
        p = [float(x) for x in stored.arrays["params"]]
        return cls(p[0], (p[1], p[2], p[3]), stored.version)


def organic(values: list, now: float) -> tuple[float, float]:
    """(x1, x2) of one user's hash values in :data:`FIELDS` order: log(1 + events / 30 days), the same of purchases."""
    ff = float(values[1]) if values[1] is not None else None
    evs = 0.0
    for v in values[2:]:
        evs = evs + (float(v) if v is not None else 0.0)
    purchases = float(values[2 + EVENT_TYPES.index("purchase")] or 0.0)
    ten = 30.0
    if ff is not None:
        ten = (now - ff) / 86400
        if ten < 30:
            ten = 30.0
    return math.log(1 + evs * 30 / ten), math.log(1 + purchases * 30 / ten)


def evidence(raw: str | None, now: float, half_life_s: float) -> tuple[float, float]:
    """(E, X) of a stored ``pe`` field (text ``"t E X"``, or ``"t E X u m"`` while a Thompson episode is open: the
    decide script's ``pe_load``), decayed to ``now``. An open episode is still evidence: the users it holds back are
    the ones who ignored their pushes, which a refit that skipped them would never see."""
    parts = raw.split() if raw else []
    if len(parts) not in (3, 5):
        return 0.0, 0.0
    t, e, x = (float(v) for v in parts[:3])
    f = 1.0
    if now > t:
        f = math.pow(2, -(now - t) / half_life_s)
    return float(e) * f, float(x) * f


def user_theta(p: EngagementParams, e: float, x: float, x1: float, x2: float) -> tuple[float, float]:
    """Mean and variance of the user's engagement multiplier (the decide script's ``user_theta``)."""
    g = math.exp(p.b[0] + p.b[1] * x1 + p.b[2] * x2)
    shape, rate = p.kappa + e, p.kappa / g + x
    return shape / rate, shape / (rate * rate)


def user_theta_many(p: EngagementParams, e: npt.NDArray[np.float64], x: npt.NDArray[np.float64],
                    x1: npt.NDArray[np.float64], x2: npt.NDArray[np.float64]
                    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """:func:`user_theta` of many users at once (arrays of shape (n,)): what the version ``p`` would have made of
    each logged decision's user (the policy refit's gate scores versions on the decision log with it)."""
    g = np.exp(p.b[0] + p.b[1] * x1 + p.b[2] * x2)
    shape, rate = p.kappa + e, p.kappa / g + x
    return shape / rate, shape / (rate * rate)


def prior_mean(p: EngagementParams, x1: float, x2: float) -> float:
    """What the model predicts of a user's multiplier from organic activity alone (before their own evidence)."""
    return math.exp(p.b[0] + p.b[1] * x1 + p.b[2] * x2)


def user_net_value(mp: float, vp: float, mn: float, vn: float, th: float, vth: float) -> tuple[float, float]:
    """The net value's mean and variance for a user: ``theta * positive part + negative part``."""
    return th * mp + mn, th * th * vp + vth * (mp * mp + vp) + vn


# -- the fit ----------------------------------------------------------------------------------------------------

def _nll(params: npt.NDArray, e: npt.NDArray, x: npt.NDArray, feats: npt.NDArray) -> float:
    kappa = math.exp(params[0])
    mu = x * np.exp(feats @ params[1:])
    ll = (gammaln(e + kappa) - gammaln(kappa) - gammaln(e + 1) + kappa * np.log(kappa / (kappa + mu))
          + e * np.log(np.maximum(mu, 1e-300) / (kappa + mu)))
    return float(-ll.sum() + 0.5 * (params[2] ** 2 + params[3] ** 2) / B_SD ** 2)


def fit(e: npt.NDArray, x: npt.NDArray, x1: npt.NDArray, x2: npt.NDArray) -> tuple[EngagementParams, float]:
    """MAP of (kappa, b) on users' evidence; returns the parameters and the mean negative log-likelihood."""
    feats = np.column_stack([np.ones_like(x1), x1, x2])
    res = minimize(_nll, np.zeros(4), args=(e, x, feats), method="L-BFGS-B",
                   bounds=[(-5.0, 7.0), (-10.0, 10.0), (-10.0, 10.0), (-10.0, 10.0)])
    p = res.x
    return EngagementParams(math.exp(p[0]), (float(p[1]), float(p[2]), float(p[3]))), float(res.fun) / max(len(e), 1)


def mean_nll(p: EngagementParams, e: npt.NDArray, x: npt.NDArray, x1: npt.NDArray, x2: npt.NDArray) -> float:
    """Mean negative log-likelihood per user of ``p`` on users' evidence (the held-out figure)."""
    feats = np.column_stack([np.ones_like(x1), x1, x2])
    params = np.array([math.log(p.kappa), *p.b])
    return (_nll(params, e, x, feats) - 0.5 * (params[2] ** 2 + params[3] ** 2) / B_SD ** 2) / max(len(e), 1)


def read(chunks: Iterable[list[tuple[str, list]]], settings: Settings, now: float) -> dict[str, npt.NDArray]:
    """Every pushed user's decayed evidence and organic features, as arrays, from chunks of (user id, values of
    :data:`FIELDS`) (``users.scan``: refit only)."""
    hl = settings.half_life_hours * 3600.0
    e: list[float] = []
    x: list[float] = []
    x1: list[float] = []
    x2: list[float] = []
    ids: list[str] = []
    for chunk in chunks:
        for uid, values in chunk:
            ee, xx = evidence(values[0], now, hl)
            if xx <= 0:
                continue
            a, b = organic(values, now)
            ids.append(uid)
            e.append(ee)
            x.append(xx)
            x1.append(a)
            x2.append(b)
    order = np.argsort(ids, kind="stable")  # the scan's order is the server's
    return {k: np.asarray(v, dtype=np.float64)[order] for k, v in (("e", e), ("x", x), ("x1", x1), ("x2", x2))} | {
        "ids": np.asarray(ids, dtype=object)[order]}


def refit(store: Store, settings: Settings, chunks: Iterable[list[tuple[str, list]]],
          progress: Callable[[float, str], None], judge: Callable[[EngagementParams, float], dict[str, Any]],
          now: float | None = None) -> dict[str, Any]:
    """Fit the engagement model on every pushed user (``chunks``: see :func:`read`), measure it on a held-out
    fifth, publish it: serving if ``judge(params, now)`` says it serves (the gate,
    :func:`bandit_push.engagement_gate.judge`), else kept, not served; its verdict is the version's ``gate``."""
    now = time.time() if now is None else now
    progress(0.0, "read")
    d = read(chunks, settings, now)
    n = len(d["e"])
    if n < 20:
        raise NoData(f"no engagement model yet: {n} users have been pushed (20 needed)", field="name")
    progress(0.5, "fit")
    held = np.array([zlib.crc32(u.encode()) % 5 == 0 for u in d["ids"]]) if n >= 100 else np.zeros(n, dtype=bool)
    cols = ("e", "x", "x1", "x2")
    train, _ = fit(*(d[c][~held] for c in cols))
    quality: dict[str, Any] = {"users": n}
    if held.any():
        null, _ = fit(d["e"][~held], d["x"][~held], 0 * d["x1"][~held], 0 * d["x2"][~held])
        quality["heldout_nll"] = mean_nll(train, *(d[c][held] for c in cols))
        quality["heldout_nll_without_features"] = mean_nll(null, *(d[c][held] for c in cols))
    p, nll = fit(*(d[c] for c in cols))
    g = np.exp(p.b[0] + p.b[1] * d["x1"] + p.b[2] * d["x2"])
    edges = np.quantile(g, [0.25, 0.5, 0.75])
    bins = np.searchsorted(edges, g)
    # calibration: per quarter of predicted multiplier g, observed E / X against the mean g
    quality["calibration"] = [{"predicted": float(g[bins == q].mean()),
                               "observed": float(d["e"][bins == q].sum() / d["x"][bins == q].sum())}
                              for q in range(4) if (bins == q).any()]
    progress(0.8, "gate")
    verdict = judge(p, now)
    version = models.publish(store, MODEL, {"params": np.array([p.kappa, *p.b], dtype=np.float64)},
                             {"kappa": p.kappa, "b": list(p.b), "train_nll": nll, "quality": quality,
                              "data_until": now, "gate": verdict}, now=now, serve=verdict["serves"])
    progress(1.0, "published" if verdict["serves"] else "kept")
    return {"version": version, "serving": verdict["serves"], "kappa": p.kappa, "b": list(p.b), **quality,
            "gate": verdict}


def describe(store: Store, settings: Settings, h: dict[str, str], now: float) -> dict[str, Any]:
    """A user's engagement multiplier now, from their hash ``h``: mean and sd, what the model predicts from their
    organic activity alone, and their own decayed evidence."""
    params = EngagementParams.serving(store)
    values = [h.get(f) for f in FIELDS]
    e, x = evidence(values[0], now, settings.half_life_hours * 3600.0)
    x1, x2 = organic(values, now)
    th, vth = user_theta(params, e, x, x1, x2)
    return {"multiplier": th, "sd": math.sqrt(vth), "predicted_by_model": prior_mean(params, x1, x2),
            "engaged_decisions": e, "expected_engaged": x, "model_version": params.version}
