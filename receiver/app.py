"""The Flask application: services built once and kept on the app, one blueprint per area."""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from flask import Flask, jsonify, request
from flask.json.provider import DefaultJSONProvider
from prometheus_client import CollectorRegistry
from werkzeug.exceptions import HTTPException

from . import config as config_mod
from . import headers
from .actuators.base import Actuator
from .actuators.jenkins import JenkinsClient
from .actuators.kube_api import KubeAPI, in_cluster_namespace, in_cluster_url
from .actuators.kubernetes import KubernetesActuator
from .api import bp as api_bp
from .config import Config
from .context import EXTENSION, Services
from .dispatcher import Dispatcher
from .incident_metrics import IncidentCollector
from .intake import Intake
from .metrics import ReceiverMetrics, StateCollector
from .notify import Notifier
from .replicas import Replica, StoreClock, persisted_name
from .rules import Rule, compile_rules
from .store import open_store
from .web import bp as web_bp

log = logging.getLogger(__name__)


def _config(test_config: Config | Mapping[str, Any] | None) -> Config:
    if isinstance(test_config, Config):
        return test_config
    if test_config is None:
        return config_mod.unconfigured(secrets.token_urlsafe(24))
    return config_mod.build(dict(test_config))


def _actuators(
    config: Config, session: requests.Session | None, metrics: ReceiverMetrics
) -> dict[str, Actuator]:
    """The actuators the configuration sets up, by the name a rule picks them with."""
    out: dict[str, Actuator] = {}
    j = config.jenkins
    if j is not None:
        out["jenkins"] = JenkinsClient(
            j.url,
            j.user,
            api_token=j.api_token,
            password=j.password,
            timeout=j.timeout,
            max_concurrent=j.max_concurrent_requests,
            verify_tls=j.verify_tls,
            session=session,
            observe=lambda endpoint, seconds: metrics.jenkins_seconds.labels(endpoint).observe(seconds),
            token_param=j.action_id_param,
        )
    k = config.kubernetes
    if k is not None and not config.dry_run:
        api = KubeAPI(
            k.api_url or in_cluster_url(),
            k.token_file,
            ca_file=k.ca_file,
            verify_tls=k.verify_tls,
            timeout=k.timeout,
            max_concurrent=k.max_concurrent_requests,
            observe=lambda endpoint, seconds: metrics.kubernetes_seconds.labels(endpoint).observe(seconds),
        )
        out["kubernetes"] = KubernetesActuator(api, k.namespace or in_cluster_namespace(), k.restore_template)
    return out


def _replica(config: Config) -> Config:
    """The configured replica name, or the one generated and kept beside the SQLite file."""
    if config.store.replica:
        return config
    name = persisted_name(os.path.dirname(os.path.abspath(config.store.path)))
    return dataclasses.replace(config, store=dataclasses.replace(config.store, replica=name))


def _build_services(
    config: Config, given_clock: Callable[[], float] | None, session: requests.Session | None
) -> Services:
    registry = CollectorRegistry()
    rules = compile_rules(config.rules)
    by_name = {r.name: r for r in rules}
    store = open_store(config.store)
    # one clock: the store server's, unless a test hands one in
    if isinstance(given_clock, StoreClock):  # a test's: the store's time through a skewed local clock
        store_clock: StoreClock | None = given_clock
    elif given_clock is None and store.server_time() is not None:
        store_clock = StoreClock()
    else:
        store_clock = None
    clock: Callable[[], float] = given_clock or store_clock or time.time
    d = config.dispatcher
    replica = Replica(store, config.store.replica, clock, d.heartbeat, d.heartbeat_timeout, store_clock)
    try:
        replica.register()
    except BaseException:
        store.close()
        raise
    replica.start()
    metrics = ReceiverMetrics(registry, rules)
    registry.register(StateCollector(store, clock))
    registry.register(IncidentCollector(store, clock))
    notifier = Notifier()
    dispatcher = None
    actuators = _actuators(config, session, metrics)
    if actuators and not config.dry_run:
        polls = [c.poll_interval for c in (config.jenkins, config.kubernetes) if c is not None]
        timeouts = [c.timeout for c in (config.jenkins, config.kubernetes) if c is not None]
        dispatcher = Dispatcher(
            store,
            actuators,
            config.dispatcher,
            metrics,
            by_name,
            owner=config.store.replica,
            poll_interval=min(polls),
            grace=max(timeouts),
            retention=config.store.retention,
            clock=clock,
        )
        dispatcher.heartbeat_timeout = d.heartbeat_timeout
        dispatcher.flow.on_finished = lambda row: notifier.finished(row, _notify_url(by_name, row.rule))
    intake = Intake(
        store,
        rules,
        metrics,
        clock,
        dry_run=dispatcher is None,
        on_triggered=dispatcher.wake if dispatcher else (lambda: None),
        on_breaker_open=lambda row: notifier.breaker_opened(row, by_name[row.rule].policy.notify_url),
        on_escalated=lambda e: notifier.escalated(e, by_name[e.rule].policy.notify_url),
    )
    return Services(config, store, rules, metrics, registry, intake, notifier, dispatcher, clock, replica)


def _notify_url(rules: Mapping[str, Rule], name: str | None) -> str | None:
    """The rule's notify_url (None for a rule no longer configured)."""
    rule = rules.get(name or "")
    return rule.policy.notify_url if rule else None


def _error(exc: HTTPException):
    if request.path.startswith("/api/"):
        resp = jsonify({"error": exc.description or exc.name})
        resp.status_code = exc.code or 500
        for name, value in exc.get_headers():  # Allow on 405, WWW-Authenticate on 401
            if name.lower() not in ("content-type", "content-length"):
                resp.headers.add(name, value)
        return resp
    return exc


class _OrderedJSON(DefaultJSONProvider):
    """Flask's JSON with keys in the order the API builds them (documented in openapi.yaml)."""

    sort_keys = False


def create_app(
    test_config: Config | Mapping[str, Any] | None = None,
    *,
    clock: Callable[[], float] | None = None,
    session: requests.Session | None = None,
) -> Flask:
    """The receiver app; `test_config` is a Config or a mapping in the YAML file's schema.

    Without one: dry-run, no rules, and a generated webhook token (see `services.config`).
    The dispatcher starts here unless `dispatcher.autostart` is false. Without `clock`, time
    is the store's (replicas.StoreClock); ReplicaNameTaken when a live replica has our name.
    """
    config = _replica(_config(test_config))
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json = _OrderedJSON(app)
    services = _build_services(config, clock, session)
    app.extensions[EXTENSION] = services
    app.register_blueprint(api_bp)
    app.register_blueprint(web_bp)
    headers.install(app)
    app.register_error_handler(HTTPException, _error)
    if services.dispatcher and config.dispatcher.autostart:
        services.dispatcher.start()
    return app
