"""PUT and GET /v1/users/<user_id>."""
from __future__ import annotations

import time

from flask import Blueprint, jsonify

from bandit_push_api.services import services
from bandit_push_api import validation as v
from bandit_push import users
from bandit_push.decide import ranked_items
from bandit_push.errors import InvalidArgument

bp = Blueprint("users", __name__)


@bp.put("/v1/users/<id:user_id>")
def put_user(user_id: str):
    s = services()
    user_id = v.ident(user_id, "user_id", s.settings.max_id_length)
    body = v.json_body()
    s.schemas.check("UserUpdate", body)
    tz, opted_out = body.get("timezone"), body.get("opted_out")
    try:
        created = users.put(s.store, user_id, timezone=tz, opted_out=opted_out)
    except KeyError:
        raise InvalidArgument(f"timezone {tz!r} is not an IANA time zone name (e.g. Europe/Berlin)",
                              field="timezone", code="unknown_timezone") from None
    return jsonify(users.get(s.store, s.settings, user_id)), 201 if created else 200


@bp.get("/v1/users/<id:user_id>")
def get_user(user_id: str):
    s = services()
    user_id = v.ident(user_id, "user_id", s.settings.max_id_length)
    v.query_only(("now",))
    now = v.query_timestamp("now", default=time.time())
    return jsonify(users.get(s.store, s.settings, user_id, now=now))


@bp.get("/v1/users/<id:user_id>/items")
def user_items(user_id: str):
    """The ranked items decide would serve now, deciding and recording nothing."""
    s = services()
    user_id = v.ident(user_id, "user_id", s.settings.max_id_length)
    now = v.query_timestamp("now", default=time.time())
    k = v.query_integer("k", 1, s.settings.max_k, default=s.settings.default_k)
    return jsonify(ranked_items(s.store, s.settings, user_id, k, now=now))
@bp.delete("/v1/users/<id:user_id>")
def delete_user(user_id: str):
    """Forget the user: everything stored under their id (see :func:`bandit_push.users.delete`)."""
    s = services()
    user_id = v.ident(user_id, "user_id", s.settings.max_id_length)
    v.query_only(())
    return jsonify({"user_id": user_id, "deleted_keys": users.delete(s.store, user_id)})
