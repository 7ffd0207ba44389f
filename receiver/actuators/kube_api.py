"""A small client of the Kubernetes API over plain `requests`, for the Kubernetes actuator.

Plain HTTP rather than the official `kubernetes` package or `kr8s`: the actuator makes six kinds
of request (get, list by label, merge-patch, create, a pod's log), `requests` is already the
receiver's HTTP client (the Jenkins actuator, its timeouts, its error classes), and in a pod the
configuration is three files and two environment variables. The official client would bring a
generated model of every API kind and its own retry and configuration layers (and urllib3 pool
settings to tune); kr8s is built around asyncio. Neither would change what is sent.

In a pod: the API at `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, the service
account's token (read again for every request: projected tokens rotate), its CA and namespace
under /var/run/secrets/kubernetes.io/serviceaccount. Every request has a timeout; at most
`max_concurrent` run at once. Answers are classified as the Actuator protocol needs: surely not
done (`KubeUnavailable`), perhaps done (`KubeUncertain`), refused for good (`KubeRejected`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from stackmedic.kube import in_cluster_namespace, in_cluster_url, read_token

from .base import ActuatorError, MaybeSent, NotSent, Rejected, request_failure

__all__ = ["KubeAPI", "in_cluster_namespace", "in_cluster_url"]

MERGE_PATCH = "application/merge-patch+json"


class KubeError(ActuatorError):
    """The Kubernetes API could not do what was asked."""


class KubeUnavailable(KubeError, NotSent):
    """5xx, 429, or the request never reached the API: nothing happened, trying again is safe."""


class KubeUncertain(KubeError, MaybeSent):
    """A timeout or a connection lost after sending: the request may have taken effect."""


class KubeRejected(KubeError, Rejected):
    """401, 403, 404 of what must exist, 422: trying again will not help."""

    def __init__(self, message: str, status: int, reason: str = ""):
        super().__init__(message)
        self.status = status
        self.reason = reason


class KubeConflict(KubeError, NotSent):
    """409: AlreadyExists on create, Conflict on a stale resourceVersion. Nothing was changed."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class KubeAPI:
    """The API at `url`, authenticated with the bearer token in `token_file`."""

    def __init__(
        self,
        url: str,
        token_file: str,
        ca_file: str | None = None,
        verify_tls: bool = True,
        timeout: float = 10.0,
        max_concurrent: int = 2,
        session: requests.Session | None = None,
        observe: Callable[[str, float], None] | None = None,
    ):
        self.base = url.rstrip("/")
        self.token_file = token_file
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.verify = (ca_file or True) if verify_tls else False
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._observe = observe or (lambda endpoint, seconds: None)

    def _token(self) -> str:
        try:
            return read_token(self.token_file)
        except OSError as exc:
            raise KubeUnavailable(f"cannot read the token file {self.token_file}: {exc.strerror}") from exc

    def request(
        self, endpoint: str, method: str, path: str, before: Callable[[], None] | None = None, **kw: Any
    ) -> requests.Response:
        """One request; `before()` runs with the connection slot held, right before it is sent."""
        headers = {
            "Authorization": f"Bearer {self._token()}",
            "Accept": "application/json",
            **kw.pop("headers", {}),
        }
        with self._slots:
            if before is not None:  # nothing stands between it and the request
                before()
            started = time.monotonic()
            try:
                return self.session.request(
                    method,
                    self.base + path,
                    timeout=self.timeout,
                    allow_redirects=False,
                    headers=headers,
                    **kw,
                )
            except requests.exceptions.RequestException as exc:
                raise request_failure(exc, endpoint, self.timeout, KubeUnavailable, KubeUncertain) from exc
            finally:
                self._observe(endpoint, time.monotonic() - started)

    @staticmethod
    def _status(resp: requests.Response) -> tuple[str, str]:
        """(reason, message) of the API's Status body, when it sent one."""
        try:
            body = resp.json()
        except ValueError:
            return "", resp.text[:200]
        if not isinstance(body, dict):
            return "", ""
        return str(body.get("reason") or ""), str(body.get("message") or "")

    def check(self, endpoint: str, resp: requests.Response) -> None:
        """Raise the error class that says what a failed answer means."""
        code = resp.status_code
        if code < 400:
            return
        reason, message = self._status(resp)
        text = (
            f"{endpoint}: HTTP {code}"
            + (f" {reason}" if reason else "")
            + (f": {message}" if message else "")
        )
        if code >= 500 or code == 429:
            raise KubeUnavailable(text)
        if code == 409:
            raise KubeConflict(text, reason)
        raise KubeRejected(text, code, reason)

    def get(self, endpoint: str, path: str, params: dict[str, str] | None = None) -> dict[str, Any] | None:
        """The object at `path`, or None on 404."""
        resp = self.request(endpoint, "GET", path, params=params)
        if resp.status_code == 404:
            return None
        self.check(endpoint, resp)
        return self._json(endpoint, resp)

    def patch(
        self, endpoint: str, path: str, body: dict[str, Any], before: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        resp = self.request(endpoint, "PATCH", path, before, json=body, headers={"Content-Type": MERGE_PATCH})
        self.check(endpoint, resp)
        return self._json(endpoint, resp)

    def create(
        self, endpoint: str, path: str, body: dict[str, Any], before: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        resp = self.request(endpoint, "POST", path, before, json=body)
        self.check(endpoint, resp)
        return self._json(endpoint, resp)

    def text(self, endpoint: str, path: str, params: dict[str, str] | None = None) -> str | None:
        """A plain-text answer (a pod's log), or None on 404."""
        resp = self.request(endpoint, "GET", path, params=params, headers={"Accept": "text/plain"})
        if resp.status_code == 404:
            return None
        self.check(endpoint, resp)
        return resp.text

    @staticmethod
    def _json(endpoint: str, resp: requests.Response) -> dict[str, Any]:
        try:
            body = resp.json()
        except ValueError as exc:
            raise KubeUnavailable(f"{endpoint}: answer is not JSON") from exc
        if not isinstance(body, dict):
            raise KubeUnavailable(f"{endpoint}: answer is not a JSON object")
        return body
