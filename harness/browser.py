"""A real headless Chromium (Debian's `chromium`) driven through the DevTools protocol.

Page tests load the receiver's page in it, wait for what its JavaScript renders, read the
DOM back, and keep screenshots. Chromium listens on a port it picks itself
(`--remote-debugging-port=0`) and writes it to `DevToolsActivePort` in its profile folder;
each page is one DevTools target spoken to over a WebSocket (PyPI `websocket-client`).
Uncaught exceptions, console errors and CSP violations of a page are collected, so a test
can assert that there were none.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import threading
from pathlib import Path
from typing import Any

import requests
import websocket

from harness.services import Process, refuse_in_fast_loop, require_binary, wait_for

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--remote-debugging-port=0",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class BrowserError(Exception):
    """A DevTools command failed, or the page did not do what was waited for."""


class Chromium:
    """One headless Chromium with a private profile in `workdir`; stop() ends it by its PID."""

    def __init__(self, workdir: Path, binary: str = "chromium"):
        self.workdir = Path(workdir)
        self.binary = binary
        self.process: Process | None = None
        self.port = 0
        self.pages: list[Page] = []

    def start(self, timeout: float = 30) -> Chromium:
        refuse_in_fast_loop("Chromium")
        path = require_binary(self.binary)
        profile = self.workdir / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        argv = [path, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
        self.process = Process(argv, self.workdir / "chromium.log")
        active = profile / "DevToolsActivePort"

        def ready() -> bool:
            assert self.process is not None
            self.process.check_alive("chromium")
            return active.exists() and bool(active.read_text().strip())

        wait_for(ready, timeout, "chromium to open its DevTools port")
        self.port = int(active.read_text().split()[0])
        return self

    def page(self, width: int = 1280, height: int = 900, mobile: bool = False) -> Page:
        """A new tab of `width` x `height` CSS pixels (`mobile`: a phone's viewport and touch)."""
        resp = requests.put(f"http://127.0.0.1:{self.port}/json/new?about:blank", timeout=10)
        resp.raise_for_status()
        page = Page(resp.json()["webSocketDebuggerUrl"], self.port, resp.json()["id"])
        page.viewport(width, height, mobile)
        self.pages.append(page)
        return page

    def stop(self) -> None:
        for page in self.pages:
            page.close()
        if self.process is not None:
            self.process.stop(timeout=10)


class Page:
    """One tab: navigate, evaluate JavaScript, wait for a condition, take a screenshot."""

    def __init__(self, ws_url: str, port: int, target_id: str):
        self.port = port
        self.target_id = target_id
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._replies: dict[int, dict[str, Any]] = {}
        self._arrived = threading.Condition()
        self.events: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="devtools", daemon=True)
        self._reader.start()
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def _read(self) -> None:
        while not self._closed:
            try:
                message = json.loads(self.ws.recv())
            except (websocket.WebSocketException, OSError, ValueError):
                break
            with self._arrived:
                if "id" in message:
                    self._replies[message["id"]] = message
                else:
                    self.events.append(message)
                    self._note_error(message)
                self._arrived.notify_all()

    def _note_error(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.errors.append(f"exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append("console.error: " + " ".join(str(a.get("value", "")) for a in params["args"]))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(f"log: {params['entry'].get('text', '')}")

    def send(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        """One DevTools command; its `result`, or BrowserError with the protocol's message."""
        with self._lock:
            msg_id = next(self._ids)
            self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        with self._arrived:
            if not self._arrived.wait_for(lambda: msg_id in self._replies, timeout):
                raise BrowserError(f"{method}: no answer within {timeout}s")
            reply = self._replies.pop(msg_id)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def viewport(self, width: int, height: int, mobile: bool = False) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )
        self.send("Emulation.setTouchEmulationEnabled", enabled=mobile)

    def goto(self, url: str, timeout: float = 30) -> None:
        """Navigate and wait for the load event."""
        start = len(self.events)
        result = self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise BrowserError(f"navigating to {url}: {result['errorText']}")
        wait_for(
            lambda: any(e.get("method") == "Page.loadEventFired" for e in self.events[start:]),
            timeout,
            f"{url} to load",
        )

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 10, what: str | None = None) -> Any:
        """Wait until `expression` is truthy in the page; its value."""
        return wait_for(lambda: self.evaluate(expression), timeout, what or expression)

    def text(self, selector: str = "body") -> str:
        """innerText of the first element matching `selector` ('' when none)."""
        return self.evaluate(f"(document.querySelector({json.dumps(selector)}) || {{}}).innerText || ''")

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """A PNG of the page (all of it with `full_page`) written to `path`."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = self.send("Page.captureScreenshot", **params)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(websocket.WebSocketException, OSError):
            self.ws.close()
        with contextlib.suppress(requests.RequestException):
            requests.get(f"http://127.0.0.1:{self.port}/json/close/{self.target_id}", timeout=5)
