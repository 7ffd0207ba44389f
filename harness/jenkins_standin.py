"""A Jenkins stand-in: a real HTTP server on 127.0.0.1 that behaves as Jenkins' remote API is documented.

Jenkins cannot run on these machines, so this server does what the receiver relies on:

- HTTP Basic with a user's API token (no CSRF crumb needed) or password (then a crumb from
  ``/crumbIssuer/api/json`` is required on POST, valid only with the session cookie it came
  with; 403 otherwise); anonymous requests get 403, a wrong secret 401;
- ``POST /job/NAME/buildWithParameters`` answers 201 with ``Location: .../queue/item/N/``, or
  303 to an existing queue item when an identical request (same job, same parameters) is
  still waiting; parameters a job does not declare are dropped, as Jenkins does;
- queue items wait (``queue_delay``) before they get ``executable.number``, one build of a
  job at a time, ``executors`` builds at once; left items are forgotten after
  ``forget_after`` seconds (404), as Jenkins does after about 5 minutes;
- builds run the job's runner (``result`` is null while building), then finish;
- ``GET /queue/api/json``, ``/queue/item/N/api/json``, ``/job/NAME/api/json`` (builds, newest
  first), ``/job/NAME/N/api/json`` (result, ``actions[].parameters``), with ``?tree=``;
- failures on demand: an HTTP status (``fail``), refused connections (``refuse``/``accept``),
  requests that hang (``hang``/``release``), before or after doing their work; a slow
  Jenkins (``delay``: every answer that many seconds late).

Every request is recorded in ``calls``. Usage::

    jenkins = JenkinsStandIn(jobs={"stackmedic-restart": lambda params: "SUCCESS"}).start()
    ... jenkins.url, jenkins.user, jenkins.token, jenkins.password ...
    assert [b.params["SERVICE"] for b in jenkins.builds("stackmedic-restart")] == ["petclinic"]
    jenkins.stop()

A runner gets the build's parameters and returns its result (SUCCESS, FAILURE, ...);
``command_runner(argv)`` makes one that runs a program with the parameters in its
environment (and ``$NAME`` in argv replaced), as a Jenkins shell step would.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import string
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from harness.http_standin import Handler, HTTPStandIn

# a job: its parameters -> the build's result, or (result, description) like a Jenkins job
# that sets currentBuild.description
Runner = Callable[[dict[str, str]], "str | tuple[str, str | None]"]


def command_runner(
    argv: Sequence[str] | str,
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
    unstable_exit_codes: Sequence[int] = (),
) -> Runner:
    """A runner that runs a program with the build's parameters in its environment, as Jenkins does.

    `argv` is a list (an element that is exactly ``{NAME}`` becomes the parameter's value, as in
    deploy/jenkins/jobs.yaml; ``$NAME`` inside an element is replaced too) or a shell command
    string. Exit 0 is SUCCESS, a code in `unstable_exit_codes` UNSTABLE, anything else FAILURE,
    a timeout ABORTED. The output of each run is appended to ``runner.output``. The build's
    description is the job's JSON result line (the last stdout line that is a JSON object), as
    deploy/jenkins' jobs set it.
    """

    def expand(arg: str, params: dict[str, str]) -> str:
        m = re.fullmatch(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", arg)
        if m:
            return params.get(m.group(1), "")
        return string.Template(arg).safe_substitute(params)

    def run(params: dict[str, str]) -> str:
        environ = {**os.environ, **(env or {}), **params}
        cmd = ["sh", "-c", argv] if isinstance(argv, str) else [expand(a, params) for a in argv]
        try:
            done = subprocess.run(cmd, env=environ, timeout=timeout, capture_output=True, check=False)
        except subprocess.TimeoutExpired:
            return "ABORTED"
        stdout = done.stdout.decode(errors="replace")
        run.output.append(stdout + done.stderr.decode(errors="replace"))  # type: ignore[attr-defined]
        description = _result_line(stdout)
        if done.returncode == 0:
            return "SUCCESS", description
        return ("UNSTABLE" if done.returncode in unstable_exit_codes else "FAILURE"), description

    run.output = []  # type: ignore[attr-defined]
    return run


def _result_line(stdout: str) -> str | None:
    """The last line of `stdout` that is a JSON object: a stackmedic job's result line."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                if isinstance(json.loads(line), dict):
                    return line
            except ValueError:
                continue
    return None


@dataclass
class Call:
    """One request as the stand-in saw it."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    user: str | None
    auth: str | None  # "token", "password", or None
    status: int = 0
    at: float = field(default_factory=time.monotonic)


@dataclass
class Item:
    id: int
    job: str
    params: dict[str, str]
    since: float
    left_at: float | None = None
    build: int | None = None
    cancelled: bool = False


@dataclass
class Build:
    job: str
    number: int
    params: dict[str, str]
    queue_id: int
    started: float
    finished: float | None = None
    result: str | None = None
    description: str | None = None


class _Tree:
    """Jenkins' ?tree= filter: ``a,b[c,d[e]]{0,10}``."""

    def __init__(self, text: str):
        self.text, self.pos = text, 0
        self.spec = self._fields()

    def _fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while self.pos < len(self.text) and self.text[self.pos] not in "]":
            m = re.compile(r"[A-Za-z0-9_$]+").match(self.text, self.pos)
            if not m:
                raise ValueError(f"bad tree at {self.pos}")
            self.pos = m.end()
            sub, rng = None, None
            if self.text[self.pos : self.pos + 1] == "[":
                self.pos += 1
                sub = self._fields()
                self.pos += 1  # ]
            r = re.compile(r"\{(\d*),?(\d*)\}").match(self.text, self.pos)
            if r:
                self.pos = r.end()
                rng = (int(r.group(1) or 0), int(r.group(2)) if r.group(2) else None)
            out[m.group()] = (sub, rng)
            if self.text[self.pos : self.pos + 1] == ",":
                self.pos += 1
        return out

    @staticmethod
    def apply(value: Any, spec: dict[str, Any] | None) -> Any:
        if spec is None:
            return value
        if isinstance(value, list):
            return [_Tree.apply(v, spec) for v in value]
        if not isinstance(value, dict):
            return value
        out = {"_class": value["_class"]} if "_class" in value else {}
        for name, (sub, rng) in spec.items():
            if name in value:
                v = value[name]
                if isinstance(v, list) and rng:
                    v = v[rng[0] : rng[1]]
                out[name] = _Tree.apply(v, sub)
        return out


class JenkinsStandIn(HTTPStandIn):
    """See the module docstring."""

    def __init__(
        self,
        jobs: Mapping[str, Runner | None] | None = None,
        params: Mapping[str, Sequence[str]] | None = None,
        user: str = "stackmedic",
        token: str | None = None,
        password: str | None = None,
        queue_delay: float = 0.05,
        build_duration: float = 0.05,
        executors: int = 2,
        forget_after: float = 300.0,
        port: int = 0,
    ):
        super().__init__(port)
        self.jobs: dict[str, Runner] = {name: r or (lambda p: "SUCCESS") for name, r in (jobs or {}).items()}
        self.declared = {k: list(v) for k, v in (params or {}).items()}
        self.user = user
        self.token = token or secrets.token_hex(16)
        self.password = password or secrets.token_hex(8)
        self.queue_delay = queue_delay
        self.build_duration = build_duration
        self.executors = executors
        self.forget_after = forget_after
        self.calls: list[Call] = []
        self.items: dict[int, Item] = {}
        self._builds: dict[str, list[Build]] = {name: [] for name in self.jobs}
        self._sessions: dict[str, str] = {}  # session id -> crumb
        self._next_item = 1
        self._tick = threading.Condition(self._lock)
        self._running = 0
        self._hold_queue = False
        self._stopped = threading.Event()

    # life cycle (the server, fail, hang and release: http_standin.py)

    def start(self) -> JenkinsStandIn:
        super().start()
        t = threading.Thread(target=self._scheduler, name="jenkins-standin-queue", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stopped.set()
        with self._tick:
            self._tick.notify_all()
        super().stop()

    # failures on demand

    def hold_queue(self, hold: bool = True) -> None:
        """While held, queue items wait and get no build number."""
        with self._tick:
            self._hold_queue = hold
            self._tick.notify_all()

    def expire_sessions(self) -> None:
        """Forget every web session: crumbs issued so far stop working."""
        with self._lock:
            self._sessions.clear()

    # what happened

    def builds(self, job: str | None = None) -> list[Build]:
        """Builds in the order they were created (of one job, or all)."""
        with self._lock:
            if job:
                return list(self._builds.get(job, []))
            return sorted((b for bs in self._builds.values() for b in bs), key=lambda b: b.started)

    def posts(self, job: str | None = None) -> list[Call]:
        """The buildWithParameters calls (of one job, or all), answered or not."""
        suffix = f"/job/{job}/buildWithParameters" if job else "/buildWithParameters"
        with self._lock:
            return [c for c in self.calls if c.method == "POST" and c.path.endswith(suffix)]

    def finished(self, job: str | None = None) -> list[Build]:
        return [b for b in self.builds(job) if b.result is not None]

    def idle(self) -> bool:
        """Nothing waiting in the queue and nothing building."""
        with self._lock:
            return not any(i.left_at is None for i in self.items.values()) and self._running == 0

    # the queue and the executors

    def _scheduler(self) -> None:
        with self._tick:
            while not self._stopped.is_set():
                now = time.monotonic()
                for item in sorted(self.items.values(), key=lambda i: i.id):
                    if item.left_at is not None or self._hold_queue or now - item.since < self.queue_delay:
                        continue
                    busy = any(b.result is None for b in self._builds[item.job])
                    if busy or self._running >= self.executors:
                        continue
                    self._start_build(item, now)
                self._tick.wait(0.01)

    def _start_build(self, item: Item, now: float) -> None:
        builds = self._builds[item.job]
        build = Build(item.job, len(builds) + 1, dict(item.params), item.id, started=now)
        builds.append(build)
        item.left_at, item.build = now, build.number
        self._running += 1
        t = threading.Thread(
            target=self._run_build, args=(build,), name=f"build-{item.job}-{build.number}", daemon=True
        )
        t.start()

    def _run_build(self, build: Build) -> None:
        description = None
        try:
            result = self.jobs[build.job](dict(build.params))
            if isinstance(result, tuple):
                result, description = result
        except Exception:  # noqa: BLE001 - a job that crashes is a failed build
            result = "FAILURE"
        if self.build_duration:
            self._stopped.wait(self.build_duration)
        with self._tick:
            build.description = description
            build.result, build.finished = result or "FAILURE", time.monotonic()
            self._running -= 1
            self._tick.notify_all()

    # HTTP (the request cycle: http_standin.py)

    json_type = "application/json;charset=utf-8"

    def _call(self, method: str, path: str, query: dict[str, str], body: bytes) -> Call:
        form = dict(parse_qsl(body.decode("utf-8", "replace"))) if method == "POST" else {}
        return Call(method, path, query, form, None, None)

    def _route(self, h: Handler, method: str, path: str, call: Call) -> tuple[int, dict[str, str], Any]:
        injected = self._injected(path)
        if injected is not None:
            return injected, {}, None
        kind = self._authenticate(h, call)
        if kind == "bad":
            return 401, {"WWW-Authenticate": 'Basic realm="Jenkins"'}, None
        if kind is None:
            return 403, {"X-You-Are-Authenticated-As": "anonymous"}, None
        tree = call.query.get("tree")
        try:
            spec = _Tree(tree).spec if tree else None
        except ValueError:
            return 400, {}, None
        if path == "/crumbIssuer/api/json" and method == "GET":
            return self._crumb(h)
        if method == "POST":
            if kind == "password" and not self._crumb_ok(h):
                return 403, {}, {"message": "No valid crumb was included in the request"}
            m = re.fullmatch(r"/job/([^/]+)/buildWithParameters", path)
            if m:
                return self._build_with_parameters(m.group(1), {**call.query, **call.form})
            return 404, {}, None
        status, payload = self._get(path, deep=spec is not None)
        return status, {}, _Tree.apply(payload, spec) if status == 200 else None

    def _authenticate(self, h: Handler, call: Call) -> str | None:
        header = h.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return "bad"
        call.user = user
        if user == self.user and secret == self.token:
            call.auth = "token"
        elif user == self.user and secret == self.password:
            call.auth = "password"
        else:
            return "bad"
        return call.auth

    def _session(self, h: Handler) -> str | None:
        m = re.search(r"JSESSIONID\.standin=([0-9a-f]+)", h.headers.get("Cookie", ""))
        return m.group(1) if m else None

    def _crumb(self, h: Handler) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            session = self._session(h)
            headers = {}
            if session not in self._sessions:
                session = secrets.token_hex(8)
                self._sessions[session] = secrets.token_hex(16)
                headers["Set-Cookie"] = f"JSESSIONID.standin={session}; Path=/; HttpOnly"
            crumb = self._sessions[session]
        return (
            200,
            headers,
            {
                "_class": "hudson.security.csrf.DefaultCrumbIssuer",
                "crumb": crumb,
                "crumbRequestField": "Jenkins-Crumb",
            },
        )

    def _crumb_ok(self, h: Handler) -> bool:
        session = self._session(h)
        with self._lock:
            return session in self._sessions and h.headers.get("Jenkins-Crumb") == self._sessions[session]

    def _build_with_parameters(self, job: str, params: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if job not in self.jobs:
            return 404, {}, None
        if job in self.declared:
            params = {k: v for k, v in params.items() if k in self.declared[job]}
        with self._tick:
            for item in self.items.values():
                if item.job == job and item.left_at is None and item.params == params:
                    return 303, {"Location": f"{self.url}/queue/item/{item.id}/"}, None
            item = Item(self._next_item, job, params, since=time.monotonic())
            self._next_item += 1
            self.items[item.id] = item
            self._tick.notify_all()
        return 201, {"Location": f"{self.url}/queue/item/{item.id}/"}, None

    def _get(self, path: str, deep: bool) -> tuple[int, Any]:
        with self._lock:
            if path == "/api/json":
                return 200, {"_class": "hudson.model.Hudson", "jobs": [{"name": j} for j in self.jobs]}
            if path == "/queue/api/json":
                waiting = [self._item_json(i) for i in self.items.values() if i.left_at is None]
                return 200, {"_class": "hudson.model.Queue", "items": waiting}
            m = re.fullmatch(r"/queue/item/(\d+)/api/json", path)
            if m:
                item = self.items.get(int(m.group(1)))
                if item is None or (
                    item.left_at is not None and time.monotonic() - item.left_at > self.forget_after
                ):
                    return 404, None
                return 200, self._item_json(item)
            m = re.fullmatch(r"/job/([^/]+)/api/json", path)
            if m and m.group(1) in self.jobs:
                return 200, self._job_json(m.group(1), deep)
            m = re.fullmatch(r"/job/([^/]+)/(\d+)/api/json", path)
            if m and m.group(1) in self.jobs:
                builds = self._builds[m.group(1)]
                n = int(m.group(2))
                if 1 <= n <= len(builds):
                    return 200, self._build_json(builds[n - 1])
        return 404, None

    def _params_action(self, params: dict[str, str]) -> dict[str, Any]:
        return {
            "_class": "hudson.model.ParametersAction",
            "parameters": [
                {"_class": "hudson.model.StringParameterValue", "name": k, "value": v}
                for k, v in params.items()
            ],
        }

    def _item_json(self, item: Item) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": item.id,
            "url": f"queue/item/{item.id}/",
            "task": {
                "_class": "hudson.model.FreeStyleProject",
                "name": item.job,
                "url": f"{self.url}/job/{item.job}/",
            },
            "actions": [self._params_action(item.params)],
            "inQueueSince": int(item.since * 1000),
        }
        if item.left_at is None:
            out.update(
                _class="hudson.model.Queue$WaitingItem",
                blocked=False,
                buildable=False,
                why="In the quiet period",
            )
        else:
            out.update(_class="hudson.model.Queue$LeftItem", cancelled=item.cancelled, executable=None)
            if item.build is not None:
                out["executable"] = {
                    "_class": "hudson.model.FreeStyleBuild",
                    "number": item.build,
                    "url": f"{self.url}/job/{item.job}/{item.build}/",
                }
        return out

    def _build_json(self, b: Build) -> dict[str, Any]:
        return {
            "_class": "hudson.model.FreeStyleBuild",
            "number": b.number,
            "url": f"{self.url}/job/{b.job}/{b.number}/",
            "building": b.result is None,
            "result": b.result,
            "description": b.description,
            "timestamp": int(b.started * 1000),
            "duration": int(((b.finished or b.started) - b.started) * 1000),
            "actions": [self._params_action(b.params), {"_class": "hudson.model.CauseAction", "causes": []}],
        }

    def _job_json(self, job: str, deep: bool) -> dict[str, Any]:
        builds = [self._build_json(b) for b in reversed(self._builds[job])]
        if not deep:  # at the default depth a job lists its builds by number and url only
            builds = [{"_class": b["_class"], "number": b["number"], "url": b["url"]} for b in builds]
        return {
            "_class": "hudson.model.FreeStyleProject",
            "name": job,
            "url": f"{self.url}/job/{job}/",
            "builds": builds,
            "nextBuildNumber": len(builds) + 1,
        }
