"""The receiver's configuration: YAML validated at start-up, every problem reported at once.

Secrets (webhook token, Jenkins API token or password, MySQL password) come only from
environment variables or files (`*_env`, `*_file`), never from the YAML itself.

Every default is written once, in the dataclasses below: the schema only validates, and a
key left out of the file takes the dataclass' default.
"""

from __future__ import annotations

import hmac
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any

import voluptuous as vol

from stackmedic import mysql_tls
from stackmedic.config import ConfigError, duration, load_config, port, regex, url, validate
from stackmedic.mysql_tls import MysqlTls
from stackmedic.secrets import Secret, SecretError, resolve_secret

DEFAULT_LISTEN = ":9878"
RULE_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
PARAM_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
LABEL_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
ACTUATORS = ["jenkins", "kubernetes"]  # actuators/<name>.py; a rule picks one with `actuator:`
# the jobs of the kubernetes actuator and the parameter each needs (actuators/kubernetes.py)
KUBERNETES_JOBS = {"restart": "DEPLOYMENT", "restore": "DATABASE"}
TEMPLATE_REF = re.compile(r"\{([^{}]*)\}")
# store keys of the MySQL connection; with SQLite they would be silently ignored, so they are refused
MYSQL_ONLY = ("host", "port", "socket", "user", "password_env", "password_file", "database", "timeout")


def _matches(pattern: str, what: str) -> Any:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not re.fullmatch(pattern, value):
            raise vol.Invalid(f"invalid {what} {value!r}: must match {pattern}")
        return value

    return check


def _secret_keys(name: str) -> dict:
    return {vol.Optional(f"{name}_env"): str, vol.Optional(f"{name}_file"): str}


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise vol.Invalid("expected a non-negative integer")
    return value


def _positive_duration(value: Any) -> float:
    seconds = duration(value)
    if seconds <= 0:
        raise vol.Invalid("duration must be greater than zero")
    return seconds


LINKS = ("prometheus", "alertmanager", "grafana")

BREAKER = {
    vol.Optional("cooldown"): duration,
    vol.Optional("max_actions"): _positive_int,
    vol.Optional("window"): _positive_duration,
    vol.Optional("ineffective_after"): duration,
    vol.Optional("settle"): duration,
    vol.Optional("max_ineffective"): _positive_int,
    vol.Optional("reset_timeout"): vol.Any(None, _positive_duration),
    vol.Optional("notify_url"): vol.Any(None, url()),
}

TOKEN_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"  # noqa: S105 - a pattern, not a token
NAMED_TOKEN = {
    vol.Required("name"): _matches(TOKEN_NAME, "token name"),
    **_secret_keys("token"),
    # kept in the file so that its use is refused with a reason ("revoked") and logged
    vol.Optional("revoked"): bool,
}
AUTH = vol.Any(
    vol.All("none", msg="expected 'none' or a mapping with bearer_token_*, tokens or basic_auth"),
    {
        **_secret_keys("bearer_token"),
        # several bearer tokens, each with a name the audit records as the author
        vol.Optional("tokens"): [NAMED_TOKEN],
        vol.Optional("basic_auth"): {vol.Required("username"): str, **_secret_keys("password")},
    },
)

RULE = vol.Schema(
    {
        vol.Required("name"): _matches(RULE_NAME, "rule name"),
        vol.Optional("match", default={}): {_matches(LABEL_NAME, "label name"): str},
        vol.Optional("match_re", default={}): {_matches(LABEL_NAME, "label name"): regex},
        vol.Required("job"): _matches(r"^[A-Za-z0-9_.-]{1,128}$", "job name"),
        vol.Optional("actuator"): vol.In(ACTUATORS),
        vol.Required("target"): _matches(LABEL_NAME, "label name"),
        vol.Optional("params", default={}): {_matches(PARAM_NAME, "parameter name"): str},
        vol.Optional("allow", default={}): {_matches(LABEL_NAME, "label name"): regex},
        vol.Optional("breaker", default={}): BREAKER,
    }
)

SCHEMA = vol.Schema(
    {
        vol.Optional("auth"): AUTH,
        vol.Optional("dry_run"): bool,
        vol.Optional("web", default={}): {
            vol.Optional("max_body_bytes"): vol.All(int, vol.Range(min=1024)),
            vol.Optional("threads"): vol.All(int, vol.Range(min=1, max=256)),
            vol.Optional("links"): {vol.Optional(k): url() for k in LINKS},
        },
        vol.Optional("store", default={}): {
            vol.Optional("type"): vol.In(["sqlite", "mysql"]),
            vol.Optional("path"): str,
            vol.Optional("synchronous"): vol.In(["full", "normal"]),
            vol.Optional("host"): str,
            vol.Optional("port"): port,
            vol.Optional("socket"): str,
            vol.Optional("user"): str,
            **_secret_keys("password"),
            vol.Optional("database"): _matches(r"^[A-Za-z0-9_]{1,64}$", "database name"),
            vol.Optional("replica"): _matches(r"^[A-Za-z0-9_.-]{1,64}$", "replica name"),
            vol.Optional("retention"): _positive_duration,
            vol.Optional("timeout"): _positive_duration,
            **mysql_tls.SCHEMA,
        },
        vol.Optional("jenkins"): {
            vol.Required("url"): url(),
            vol.Required("user"): str,
            **_secret_keys("api_token"),
            **_secret_keys("password"),
            vol.Optional("timeout"): _positive_duration,
            vol.Optional("poll_interval"): _positive_duration,
            vol.Optional("max_concurrent_requests"): vol.All(int, vol.Range(min=1, max=64)),
            vol.Optional("action_id_param"): _matches(PARAM_NAME, "name"),
            vol.Optional("verify_tls"): bool,
        },
        vol.Optional("kubernetes"): {
            vol.Optional("api_url"): url(),
            vol.Optional("namespace"): _matches(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", "namespace"),
            vol.Optional("token_file"): str,
            vol.Optional("ca_file"): str,
            vol.Optional("verify_tls"): bool,
            vol.Optional("timeout"): _positive_duration,
            vol.Optional("poll_interval"): _positive_duration,
            vol.Optional("max_concurrent_requests"): vol.All(int, vol.Range(min=1, max=64)),
            vol.Optional("restore_template"): _matches(
                r"^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$", "cronjob name"
            ),
        },
        vol.Optional("dispatcher", default={}): {
            vol.Optional("max_attempts"): vol.All(int, vol.Range(min=1, max=100)),
            vol.Optional("backoff_initial"): _positive_duration,
            vol.Optional("backoff_max"): _positive_duration,
            vol.Optional("max_in_flight"): vol.All(int, vol.Range(min=1, max=256)),
            vol.Optional("lease"): _positive_duration,
            vol.Optional("heartbeat"): _positive_duration,
            vol.Optional("heartbeat_timeout"): _positive_duration,
            vol.Optional("follow_timeout"): _positive_duration,
            vol.Optional("autostart"): bool,
        },
        vol.Optional("breaker", default={}): BREAKER,
        # each rule is validated on its own (RULE) so that the problems of every rule are reported
        vol.Optional("rules", default=[]): [dict],
    }
)


@dataclass(frozen=True)
class BreakerPolicy:
    """Loop-breaker limits for one rule (0 disables max_actions / max_ineffective)."""

    cooldown: float = 300.0
    max_actions: int = 3
    window: float = 3600.0
    ineffective_after: float = 900.0
    # an incident still firing this long after its action's build succeeded: it did not help.
    # Longer than an alert takes to resolve after a fix (~30 s as shipped), shorter than
    # Alertmanager's 1m repeat minus a build, so the first repeat after a build judges it and
    # a fix that cannot work pages a person about 2 minutes after the first attempt
    settle: float = 45.0
    max_ineffective: int = 2
    reset_timeout: float | None = None
    notify_url: str | None = None


@dataclass(frozen=True)
class RuleConfig:
    name: str
    job: str
    target: str
    match: dict[str, str] = field(default_factory=dict)
    match_re: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    allow: dict[str, str] = field(default_factory=dict)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    actuator: str = "jenkins"


@dataclass(frozen=True)
class JenkinsConfig:
    url: str
    user: str
    api_token: Secret | None = None
    password: Secret | None = None
    timeout: float = 10.0
    poll_interval: float = 2.0
    max_concurrent_requests: int = 2
    action_id_param: str = "STACKMEDIC_ACTION_ID"
    verify_tls: bool = True


@dataclass(frozen=True)
class KubernetesConfig:
    """The API and namespace the kubernetes actuator works in; in a pod, all from the pod."""

    api_url: str | None = None  # None: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
    namespace: str | None = None  # None: the service account's namespace
    token_file: str = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path
    ca_file: str | None = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    verify_tls: bool = True
    timeout: float = 10.0
    poll_interval: float = 2.0
    max_concurrent_requests: int = 2
    restore_template: str = "stackmedic-restore"


@dataclass(frozen=True)
class StoreConfig:
    type: str = "sqlite"
    path: str = ""
    synchronous: str = "full"
    host: str | None = None
    port: int = 3306
    socket: str | None = None
    user: str | None = None
    password: Secret | None = None
    database: str | None = None
    replica: str = ""
    retention: float = 30 * 86400.0
    # MySQL: connect, read and write timeout of every statement; a frozen store fails within it
    timeout: float = 2.0
    tls: MysqlTls = field(default_factory=MysqlTls)  # MySQL: stackmedic/mysql_tls.py


@dataclass(frozen=True)
class DispatcherConfig:
    max_attempts: int = 8
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    max_in_flight: int = 8
    lease: float = 60.0
    # every replica beats in the store; one silent this long loses its actions to the others
    heartbeat: float = 2.0
    heartbeat_timeout: float = 10.0
    follow_timeout: float = 7200.0
    autostart: bool = True


@dataclass(frozen=True)
class NamedToken:
    """A bearer token with the name the audit records (`alertmanager-a`); never logged itself."""

    name: str
    token: Secret
    revoked: bool = False


@dataclass(frozen=True)
class AuthConfig:
    """How webhooks and API mutations authenticate; `none` only when configured so."""

    none: bool = False
    bearer_token: Secret | None = None  # one token without a name
    basic_username: str | None = None
    basic_password: Secret | None = None
    tokens: tuple[NamedToken, ...] = ()


@dataclass(frozen=True)
class Config:
    auth: AuthConfig
    dry_run: bool = False
    max_body_bytes: int = 1 << 20
    threads: int = 4
    links: dict[str, str] = field(default_factory=dict)  # the page links to these (LINKS)
    store: StoreConfig = field(default_factory=StoreConfig)
    jenkins: JenkinsConfig | None = None
    kubernetes: KubernetesConfig | None = None
    dispatcher: DispatcherConfig = field(default_factory=DispatcherConfig)
    rules: tuple[RuleConfig, ...] = ()
    generated_token: bool = False


def _secret(section: dict, name: str, path: str, problems: list) -> Secret | None:
    try:
        value = resolve_secret(env=section.get(f"{name}_env"), file=section.get(f"{name}_file"))
    except SecretError as exc:
        problems.append((path, str(exc)))
        return None
    return Secret(value) if value is not None else None


# HTTP strips the white space around a header's value and cannot carry a control character
UNSENDABLE = re.compile(r"^\s|\s$|[\x00-\x1f\x7f]")


def _check_token(value: str, path: str, problems: list) -> bool:
    """A bearer token a client can send (not empty, no edge white space, no control character)."""
    if not value:
        problems.append((path, "the token is empty"))
    elif UNSENDABLE.search(value):
        what = "begins or ends with white space or holds a control character: no client can send it"
        problems.append((path, f"the token {what}"))
    else:
        return True
    return False


def _auth(data: dict, problems: list) -> AuthConfig:
    raw = data.get("auth")
    if raw is None:
        problems.append(("auth", "required key missing: a bearer token, basic_auth, or 'none'"))
        return AuthConfig()
    if raw == "none":
        return AuthConfig(none=True)
    token = _secret(raw, "bearer_token", "auth.bearer_token", problems)
    user = password = None
    if "basic_auth" in raw:
        user = raw["basic_auth"]["username"]
        password = _secret(raw["basic_auth"], "password", "auth.basic_auth.password", problems)
        if password is None:
            problems.append(("auth.basic_auth", "password_env or password_file is required"))
        elif not password:  # else anyone who knew the user name could post alerts
            problems.append(("auth.basic_auth.password", "the password is empty"))
        if not user:
            problems.append(("auth.basic_auth.username", "the user name is empty"))
    if token is not None:
        _check_token(token, "auth.bearer_token", problems)
    tokens = _named_tokens(raw.get("tokens", []), token, problems)
    usable = [t for t in tokens if not t.revoked]
    if token is None and password is None and not usable and not problems:
        what = "every token in auth.tokens is revoked: " if tokens else ""
        problems.append(("auth", what + "set bearer_token_env, bearer_token_file, tokens or basic_auth"))
    return AuthConfig(bearer_token=token, basic_username=user, basic_password=password, tokens=tuple(tokens))


def _named_tokens(raw: list[dict], unnamed: Secret | None, problems: list) -> list[NamedToken]:
    """auth.tokens: names unique, each token set, not empty and not another's (the author would be ambiguous)."""
    out: list[NamedToken] = []
    seen: dict[str, str] = {}
    values: dict[str, str] = {"auth.bearer_token": unnamed} if unnamed else {}
    for i, entry in enumerate(raw):
        path = f"auth.tokens[{i}]"
        if entry["name"] in seen:
            problems.append(
                (f"{path}.name", f"duplicate token name {entry['name']!r} (also {seen[entry['name']]})")
            )
        seen.setdefault(entry["name"], path)
        if "token_env" in entry and "token_file" in entry:
            problems.append((path, "give token_env or token_file, not both"))
            continue
        value = _secret(entry, "token", f"{path}.token", problems)
        if value is None:
            if "token_env" not in entry and "token_file" not in entry:
                problems.append((path, "token_env or token_file is required"))
            continue
        if not _check_token(value, f"{path}.token", problems):
            continue
        twin = next((p for p, v in values.items() if hmac.compare_digest(v.encode(), value.encode())), None)
        if twin is not None:
            problems.append((f"{path}.token", f"the same token as {twin}: the author would be ambiguous"))
        values[path] = value
        out.append(NamedToken(entry["name"], Secret(value), entry.get("revoked", False)))
    return out


def _rules(data: dict, defaults: dict, problems: list) -> tuple[RuleConfig, ...]:
    rules = []
    seen: set[str] = set()
    for i, raw in enumerate(data["rules"]):
        path = f"rules[{i}]"
        if raw["name"] in seen:
            problems.append((f"{path}.name", f"duplicate rule name {raw['name']!r}"))
        seen.add(raw["name"])
        if raw["target"] not in raw["allow"]:
            problems.append((f"{path}.target", f"label {raw['target']!r} needs an allow pattern"))
        for pname, template in raw["params"].items():
            for ref in TEMPLATE_REF.findall(template):
                if ref not in raw["allow"]:
                    problems.append(
                        (f"{path}.params.{pname}", f"label {ref!r} is used without an allow pattern")
                    )
        if raw.get("actuator") == "kubernetes":
            needed = KUBERNETES_JOBS.get(raw["job"])
            if needed is None:
                problems.append(
                    (f"{path}.job", f"the kubernetes actuator runs {' or '.join(KUBERNETES_JOBS)}")
                )
            elif needed not in raw["params"]:
                problems.append(
                    (f"{path}.params", f"the kubernetes job {raw['job']} needs the parameter {needed}")
                )
        policy = BreakerPolicy(**{**defaults, **raw["breaker"]})
        rules.append(
            RuleConfig(
                name=raw["name"],
                job=raw["job"],
                target=raw["target"],
                match=raw["match"],
                match_re=raw["match_re"],
                params=raw["params"],
                allow=raw["allow"],
                breaker=policy,
                **{k: raw[k] for k in ("actuator",) if k in raw},
            )
        )
    return tuple(rules)


def _uses(data: dict, actuator: str) -> bool:
    """Whether a rule acts through `actuator` (with no rule at all: jenkins, as before)."""
    rules = data["rules"]
    if not rules:
        return actuator == "jenkins" and "kubernetes" not in data
    return any(r.get("actuator", "jenkins") == actuator for r in rules)


def default_state_dir() -> str:
    """Where the SQLite store lives when the configuration does not say."""
    return os.environ.get("STACKMEDIC_RECEIVER_STATE_DIR") or ".run"


def build(data: Any) -> Config:
    """Validate a parsed YAML mapping and turn it into a Config (ConfigError lists every problem)."""
    data = data if data is not None else {}
    problems: list[tuple[str, str]] = []
    rules = data.get("rules") if isinstance(data, dict) else None
    checked_rules = []
    for i, raw in enumerate(rules if isinstance(rules, list) else []):
        try:
            checked_rules.append(validate(RULE, raw))
        except ConfigError as exc:
            problems += [(f"rules[{i}]" + ("." + p if p else ""), m) for p, m in exc.problems]
    try:
        data = validate(SCHEMA, data)
    except ConfigError as exc:
        raise ConfigError(
            problems + [(p, m) for p, m in exc.problems if not p.startswith("rules[")]
        ) from None
    if problems:
        raise ConfigError(problems)
    data["rules"] = checked_rules
    auth = _auth(data, problems)
    jenkins = None
    if "jenkins" in data:
        j = data["jenkins"]
        token = _secret(j, "api_token", "jenkins.api_token", problems)
        password = _secret(j, "password", "jenkins.password", problems)
        if not any(k in j for k in ("api_token_env", "api_token_file", "password_env", "password_file")):
            problems.append(("jenkins", "set api_token_env/api_token_file or password_env/password_file"))
        keep = {k: v for k, v in j.items() if not k.endswith(("_env", "_file"))}
        jenkins = JenkinsConfig(**keep, api_token=token, password=password)
    elif not data.get("dry_run", Config.dry_run) and _uses(data, "jenkins"):
        problems.append(("jenkins", "required key missing (or set dry_run: true)"))
    kubernetes = KubernetesConfig(**data["kubernetes"]) if "kubernetes" in data else None
    if kubernetes is None and not data.get("dry_run", Config.dry_run) and _uses(data, "kubernetes"):
        problems.append(("kubernetes", "required key missing: a rule uses the kubernetes actuator"))
    s = data["store"]
    store_password = _secret(s, "password", "store.password", problems)
    tls = MysqlTls.from_section(s)
    if s.get("type", StoreConfig.type) == "mysql":
        if "synchronous" in s:
            problems.append(("store.synchronous", "applies only to the sqlite store (store.type is mysql)"))
        for key in ("user", "database"):
            if key not in s:
                problems.append((f"store.{key}", "required key missing for the mysql store"))
        if "host" not in s and "socket" not in s:
            problems.append(("store.host", "host or socket is required for the mysql store"))
        problems += tls.problems("store")
    else:
        # silently ignored otherwise: a store.timeout that bounds nothing is worse than an error
        for key in MYSQL_ONLY:
            if key in s:
                problems.append((f"store.{key}", "applies only to the mysql store (store.type is sqlite)"))
        problems += [(f"store.{k}", "only for the mysql store") for k in mysql_tls.KEYS if k in s]
    store = StoreConfig(
        **{k: v for k, v in s.items() if not k.endswith(("_env", "_file")) and k not in mysql_tls.KEYS},
        password=store_password,
        tls=tls,
    )
    if not store.path:
        store = replace(store, path=os.path.join(default_state_dir(), "receiver.sqlite"))
    d = data["dispatcher"]
    beat = d.get("heartbeat", DispatcherConfig.heartbeat)
    if d.get("heartbeat_timeout", DispatcherConfig.heartbeat_timeout) < 2 * beat:
        problems.append(("dispatcher.heartbeat_timeout", "must be at least twice dispatcher.heartbeat"))
    rules = _rules(data, data["breaker"], problems)
    if problems:
        raise ConfigError(problems)
    top = {k: data[k] for k in ("dry_run",) if k in data}
    return Config(
        auth=auth,
        **top,
        **data["web"],
        store=store,
        jenkins=jenkins,
        kubernetes=kubernetes,
        dispatcher=DispatcherConfig(**data["dispatcher"]),
        rules=rules,
    )


def load(path: str) -> Config:
    """Read and validate the configuration file at `path`."""
    return build(load_config(path, vol.Schema(object)))


def unconfigured(token: str) -> Config:
    """The configuration of a receiver started without a file: dry-run, no rules, `token`."""
    config = build({"auth": "none", "dry_run": True})
    return replace(config, auth=AuthConfig(bearer_token=Secret(token)), generated_token=True)
