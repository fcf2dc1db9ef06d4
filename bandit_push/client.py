"""A Python client for notification gateways: decide, feedback, events and users over HTTP.

::

    from bandit_push.client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as bp:
        bp.put_user("alice", timezone="Europe/Berlin")
        d = bp.decide("alice", k=3)
        if d["send"]:
            ...  # push d["items"] to alice, then report what happened
            bp.feedback(d["decision_id"], "delivered")

Every method returns the answer's JSON as a dict. An answer other than 2xx raises :class:`ApiError` (its
``code``, ``message`` and ``field`` are the service's); no answer at all raises :class:`Unreachable`.

Timeouts and retries: each request waits ``timeout`` seconds to connect and as long for its answer. A
request that could not be sent (connection refused, reset before sending, connect timeout) and a 503
(Redis unavailable: the service did nothing) are retried up to ``retries`` times with exponential backoff
(``backoff`` seconds, doubling; a 503's ``Retry-After`` is honoured). A request sent whose answer was lost
is retried only where a second arrival changes nothing: feedback (each (decision, event) counts once),
events that all carry an ``event_id``, and the user calls. A decide is not: a second one would be a second
decision.

The client is safe to share between threads; it keeps up to ``connections`` connections alive to the
service (a gateway with several requests in flight gives each its thread, as the simulator does).

Built on urllib3 (the connection pool, retries with backoff and ``Retry-After`` are its own), which the
``requests`` library also stands on: no HTTP of our own.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable
from urllib.parse import quote, urlencode

import urllib3
from urllib3.exceptions import HTTPError, MaxRetryError

_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class ClientError(Exception):
    """Base of the client's errors."""


class ApiError(ClientError):
    """The service answered with an error: ``status`` and the error body's ``code``, ``message``, ``field``."""

    def __init__(self, status: int, body: dict[str, Any], method: str, path: str):
        self.status = status
        self.code = str(body.get("error", "http_error"))
        self.message = str(body.get("message", ""))
        self.field = body.get("field")
        super().__init__(f"{method} {path}: HTTP {status} {self.code}: {self.message}")


class Unreachable(ClientError):
    """No answer from the service after the retries (connection refused or reset, timeouts)."""


class Client:
    """A client of one bandit-push service at ``base_url`` (``http://`` or ``https://``).

    ``api_key``: sent as ``Authorization: Bearer <key>`` (a ``gateway`` key for decide, feedback, events and
    users). ``timeout``: seconds to connect, and again to read the answer. ``retries``, ``backoff``: see the
    module doc. ``connections``: connections kept alive (requests in flight at once across threads)."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None, timeout: float = 5.0,
                 retries: int = 3, backoff: float = 0.1, connections: int = 4):
        headers = dict(_HEADERS)
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = base_url.rstrip("/")
        self._pool = urllib3.connection_from_url(self.base_url, maxsize=max(1, connections), block=True,
                                                 headers=headers,
                                                 timeout=urllib3.Timeout(connect=timeout, read=timeout))
        # sent and unanswered: retried or not by the call (see the module doc); 503 and unsent: always
        self._safe = urllib3.Retry(total=None, connect=retries, read=retries, status=retries, other=0, redirect=0,
                                   allowed_methods=None, status_forcelist=(503,), backoff_factor=backoff,
                                   raise_on_status=False)
        self._once = self._safe.new(read=0)

    # -- the gateway's calls --------------------------------------------------------------------

    def decide(self, user_id: str, now: float | str | None = None, k: int | None = None,
               channel: str | None = None) -> dict[str, Any]:
        """Whether to push to ``user_id`` now (``now``: the gateway's clock, epoch seconds or ISO 8601), and with
        which ``k`` items: ``send``, ``items``, ``decision_id``, ``reason``, ``propensity``, ..."""
        body = _without_none(user_id=user_id, now=now, k=k, channel=channel)
        return self._call("POST", "/v1/decide", body, self._once)

    def feedback(self, decision_id: str, event: str, ts: float | str | None = None,
                 value: float | None = None) -> dict[str, Any]:
        """What happened after a push: ``event`` is ``delivered``, ``opened``, ``clicked``, ``converted``,
        ``dismissed`` or ``unsubscribed``. Safe to repeat: each (decision, event) counts once."""
        return self._call("POST", "/v1/feedback", _without_none(decision_id=decision_id, event=event, ts=ts,
                                                                  value=value), self._safe)

    def feedback_batch(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Several feedback events (each as :meth:`feedback`'s arguments) in one request (at most ``max_batch``):
        counts per status and each event's status, in order."""
        return self._call("POST", "/v1/feedback", {"events": events}, self._safe)

    def events(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Shopping events (``user_id``, ``type``, ``item_id``, optional ``ts``, ``value``, ``event_id``) in one
        request: ``accepted`` and ``duplicate``. Retried after a lost answer only if every event has an
        ``event_id`` (then a second arrival counts once)."""
        safe = all(e.get("event_id") is not None for e in events)
        return self._call("POST", "/v1/events", {"events": events}, self._safe if safe else self._once)

    def put_user(self, user_id: str, timezone: str | None = None, opted_out: bool | None = None) -> dict[str, Any]:
        """Set a user's IANA time zone and opt-out; returns the user's state."""
        return self._call("PUT", _user_path(user_id), _without_none(timezone=timezone, opted_out=opted_out),
                          self._safe)

    def get_user(self, user_id: str, now: float | None = None) -> dict[str, Any]:
        """A user's segment, last push, pushes in the last 24 h, opt-out and time zone."""
        return self._call("GET", _user_path(user_id), None, self._safe, query=_without_none(now=now))

    def delete_user(self, user_id: str) -> dict[str, Any]:
        """Erase everything stored about a user."""
        return self._call("DELETE", _user_path(user_id), None, self._safe)

    def ready(self) -> dict[str, Any]:
        """``GET /readyz``: the service reaches Redis, and which item model serves."""
        return self._call("GET", "/readyz", None, self._safe)

    def wait_ready(self, timeout: float = 30.0, alive: Callable[[], bool] | None = None) -> None:
        """Return once ``GET /healthz`` answers, or raise :class:`Unreachable` after ``timeout`` seconds (or as
        soon as ``alive()``, when given, is false: a service process that exited)."""
        deadline = time.monotonic() + timeout
        quick = urllib3.Retry(0, read=False, raise_on_status=False)
        while True:
            try:
                if self._pool.urlopen("GET", "/healthz", retries=quick, timeout=1.0).status == 200:
                    return
            except HTTPError:
                pass
            if time.monotonic() > deadline or (alive is not None and not alive()):
                raise Unreachable(f"{self.base_url} did not answer /healthz within {timeout:g} s")
            time.sleep(0.1)

    # -- transport --------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any, retries: urllib3.Retry,
              query: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{path}?{urlencode(query)}" if query else path
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        try:
            resp = self._pool.urlopen(method, url, body=data, retries=retries)
        except MaxRetryError as e:
            raise Unreachable(f"{method} {path}: no answer from {self.base_url}: {e.reason}") from e
        except HTTPError as e:
            raise Unreachable(f"{method} {path}: no answer from {self.base_url}: {e}") from e
        try:
            answer = json.loads(resp.data) if resp.data else {}
        except ValueError:
            answer = {"error": "not_json", "message": resp.data[:200].decode("utf-8", "replace")}
        if resp.status >= 300:
            raise ApiError(resp.status, answer if isinstance(answer, dict) else {}, method, path)
        return answer

    def close(self) -> None:
        """Close the kept-alive connections."""
        self._pool.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _user_path(user_id: str) -> str:
    return "/v1/users/" + quote(user_id, safe="")


def _without_none(**fields: Any) -> dict[str, Any]:
    """The fields that are set (the service treats a null as absent anyway; the body stays short)."""
    return {k: v for k, v in fields.items() if v is not None}

