"""The Jenkins actuator: a small client of Jenkins' remote access API.

It triggers a parameterised build carrying the action's token as a build parameter
(`token_param`), finds it again by that token among the builds and the queue, and follows the
queue item to its build and the build to its result.

Authentication: an API token with HTTP Basic needs no CSRF crumb; a password needs the crumb
from /crumbIssuer/api/json, which is valid only with the session cookie it came with (the
requests.Session keeps it). Every request has a timeout; at most `max_concurrent` run at once.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from .base import ActuatorError, LookupUncertain, MaybeSent, NotSent, Ref, Rejected, request_failure

QUEUE_ITEM = re.compile(r"/queue/item/(\d+)/?$")
PARAMS_TREE = "actions[parameters[name,value]]"


class JenkinsError(ActuatorError):
    """Jenkins could not do what was asked."""


class JenkinsUnavailable(JenkinsError, NotSent):
    """5xx, or the request never reached Jenkins: nothing happened, trying again is safe."""


class JenkinsUncertain(JenkinsError, MaybeSent):
    """A timeout or a connection lost after sending: the request may have been carried out.

    Not a JenkinsUnavailable: that one promises nothing happened, which this cannot.
    """


class JenkinsRejected(JenkinsError, Rejected):
    """A 4xx (unknown job, bad credentials, no permission): trying again will not help."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class QueueRef:
    id: int
    merged: bool  # 303: Jenkins merged the request into an identical queued item


@dataclass(frozen=True)
class QueueItem:
    id: int
    build_number: int | None
    build_url: str | None
    cancelled: bool
    why: str | None


@dataclass(frozen=True)
class Build:
    number: int
    url: str
    result: str | None  # None while building
    description: str | None = None  # our jobs set it to their JSON result line


@dataclass(frozen=True)
class Found:
    """Where a build request with a given token is now: still queued, or a build."""

    queue_id: int | None = None
    build: Build | None = None


def _params(actions: Any) -> dict[str, Any]:
    out = {}
    for action in actions or []:
        for p in (action or {}).get("parameters") or []:
            if isinstance(p, dict) and "name" in p:
                out[p["name"]] = p.get("value")
    return out


class JenkinsClient:
    """Jenkins at `url` as `user`, authenticated by an API token or a password (an Actuator)."""

    lost_advice = "a build may exist: look in Jenkins"

    def __init__(
        self,
        url: str,
        user: str,
        api_token: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        max_concurrent: int = 2,
        verify_tls: bool = True,
        session: requests.Session | None = None,
        observe: Callable[[str, float], None] | None = None,
        token_param: str = "STACKMEDIC_ACTION_ID",  # noqa: S107 - a parameter name
    ):
        self.token_param = token_param
        self.base = url.rstrip("/")
        self.session = session or requests.Session()
        self.session.auth = (user, api_token or password or "")
        self.session.verify = verify_tls
        self.use_crumb = api_token is None
        self.timeout = timeout
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._observe = observe or (lambda endpoint, seconds: None)
        self._crumb: dict[str, str] | None = None
        self._crumb_lock = threading.Lock()

    def _request(
        self, endpoint: str, method: str, path: str, before: Callable[[], None] | None = None, **kw: Any
    ) -> requests.Response:
        with self._slots:
            if before is not None:  # with the slot held: nothing stands between it and the request
                before()
            started = time.monotonic()
            try:
                return self.session.request(
                    method, self.base + path, timeout=self.timeout, allow_redirects=False, **kw
                )
            except requests.exceptions.RequestException as exc:
                raise request_failure(
                    exc, endpoint, self.timeout, JenkinsUnavailable, JenkinsUncertain
                ) from exc
            finally:
                self._observe(endpoint, time.monotonic() - started)

    def _check(self, endpoint: str, resp: requests.Response) -> None:
        if resp.status_code >= 500:
            raise JenkinsUnavailable(f"{endpoint}: HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise JenkinsRejected(f"{endpoint}: HTTP {resp.status_code}", resp.status_code)

    def _json(self, endpoint: str, path: str, params: dict | None = None) -> Any:
        resp = self._request(endpoint, "GET", path, params=params)
        if resp.status_code == 404:
            return None
        self._check(endpoint, resp)
        try:
            return resp.json()
        except ValueError as exc:
            raise JenkinsUnavailable(f"{endpoint}: answer is not JSON") from exc

    def _listing(self, endpoint: str, path: str, params: dict) -> dict:
        """A list that must exist to prove an absence: a 404 is an error here, not "nothing"."""
        data = self._json(endpoint, path, params)
        if data is None:
            raise JenkinsUnavailable(f"{endpoint}: HTTP 404")
        if not isinstance(data, dict):
            raise JenkinsUnavailable(f"{endpoint}: answer is not a JSON object")
        return data

    def _crumb_header(self, refresh: bool = False) -> dict[str, str]:
        if not self.use_crumb:
            return {}
        with self._crumb_lock:
            if self._crumb is None or refresh:
                data = self._json("crumb", "/crumbIssuer/api/json")
                # no crumb issuer: CSRF protection is off
                self._crumb = {data["crumbRequestField"]: data["crumb"]} if data else {}
            return dict(self._crumb)

    def trigger(
        self, job: str, params: Mapping[str, str], token: str, confirm: Callable[[], None] = lambda: None
    ) -> Ref:
        """POST buildWithParameters with the token; the queue item Jenkins created or merged it into."""
        ref = self.post_build(job, {**params, self.token_param: token}, confirm)
        return Ref(queue_id=ref.id, merged=ref.merged)

    def post_build(
        self, job: str, params: Mapping[str, str], confirm: Callable[[], None] = lambda: None
    ) -> QueueRef:
        """POST buildWithParameters; the queue item Jenkins created or merged the request into."""
        path = f"/job/{job}/buildWithParameters"
        resp = self._request("build", "POST", path, confirm, data=params, headers=self._crumb_header())
        if resp.status_code == 403 and self.use_crumb:
            # the crumb's session may have expired: a 403 means nothing was queued
            resp = self._request(
                "build", "POST", path, confirm, data=params, headers=self._crumb_header(refresh=True)
            )
        self._check("build", resp)
        if resp.status_code not in (201, 303):
            raise JenkinsUnavailable(f"build: unexpected HTTP {resp.status_code}")
        m = QUEUE_ITEM.search(resp.headers.get("Location", ""))
        if not m:
            raise JenkinsUnavailable(f"build: no queue item in Location {resp.headers.get('Location')!r}")
        return QueueRef(id=int(m.group(1)), merged=resp.status_code == 303)

    def queue_item(self, item_id: int) -> QueueItem | None:
        """The queue item, or None once Jenkins forgot it (about 5 minutes after it left the queue)."""
        data = self._json("queue_item", f"/queue/item/{item_id}/api/json")
        if data is None:
            return None
        executable = data.get("executable") or {}
        return QueueItem(
            id=item_id,
            build_number=executable.get("number"),
            build_url=executable.get("url"),
            cancelled=bool(data.get("cancelled")),
            why=data.get("why"),
        )

    def build(self, job: str, number: int) -> Build | None:
        tree = {"tree": "number,url,result,description"}
        data = self._json("build_info", f"/job/{job}/{number}/api/json", tree)
        if data is None:
            return None
        description = data.get("description")
        return Build(
            number=data["number"],
            url=data.get("url", ""),
            result=data.get("result"),
            description=description if isinstance(description, str) else None,
        )

    def _builds_with(self, job: str, param: str, token: str) -> Build | None:
        tree = f"builds[number,url,result,{PARAMS_TREE}]{{0,100}}"
        data = self._listing("job_builds", f"/job/{job}/api/json", {"tree": tree})
        for b in data.get("builds") or []:
            if _params(b.get("actions")).get(param) == token:
                return Build(number=b["number"], url=b.get("url", ""), result=b.get("result"))
        return None

    def find(self, job: str, token: str) -> Ref | None:
        """The build request carrying our token parameter, among the builds and the queue.

        None only when Jenkins answered both lists and neither holds it. A 404 (the job or the
        queue not visible: a rename, a permission, a proxy), a 5xx or a timeout cannot tell:
        LookupUncertain, never "absent", or the build would be requested twice.
        """
        try:
            found = self.find_param(job, self.token_param, token)
        except JenkinsError as exc:
            raise LookupUncertain(f"cannot tell whether the build was requested: {exc}") from exc
        if found is None:
            return None
        if found.build is not None:
            return _build_ref(found.build)
        return Ref(queue_id=found.queue_id)

    def follow(self, job: str, ref: Ref, token: str) -> Ref:
        """A queue item on to its build (or, once Jenkins forgot it, the build with our token); a build to its result."""
        if ref.number is not None:
            build = self.build(job, ref.number)
            if build is None:
                return Ref(
                    number=ref.number, url=ref.url, result="LOST", note=f"build {ref.number} not found"
                )
            return _build_ref(build)
        assert ref.queue_id is not None, "a Ref to follow has a queue item or a build"
        item = self.queue_item(ref.queue_id)
        if item is None:  # forgotten: the build, if any, carries our token
            found = self.find(job, token)
            if found is None:
                return Ref(
                    queue_id=ref.queue_id,
                    result="LOST",
                    note=f"queue item {ref.queue_id} gone, no build found",
                )
            return found
        if item.cancelled:
            return Ref(queue_id=ref.queue_id, result="NOT_BUILT", note="queue item cancelled")
        if item.build_number is not None:
            return Ref(queue_id=ref.queue_id, number=item.build_number, url=item.build_url)
        return ref

    def find_param(self, job: str, param: str, token: str) -> Found | None:
        """Look for a build request carrying parameter `param`=`token` among builds and the queue."""
        build = self._builds_with(job, param, token)
        if build:
            return Found(build=build)
        data = self._listing("queue", "/queue/api/json", {"tree": f"items[id,task[name],{PARAMS_TREE}]"})
        for item in data.get("items") or []:
            if (item.get("task") or {}).get("name") == job and _params(item.get("actions")).get(
                param
            ) == token:
                return Found(queue_id=item["id"])
        # it may have left the queue between the two reads
        build = self._builds_with(job, param, token)
        return Found(build=build) if build else None


def _build_ref(build: Build) -> Ref:
    return Ref(number=build.number, url=build.url, result=build.result, description=build.description)
