"""docs/receiver.md documents every configuration key, with the default its dataclass holds."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import voluptuous as vol
import yaml
from stackmedic.receiver import config

from stackmedic.config import duration
from stackmedic.mysql_tls import MysqlTls
from stackmedic.secrets import Secret

DOC = Path(__file__).resolve().parents[2] / "docs" / "receiver.md"
# Config's fields that are not a key of the same name: where they are in the YAML file
TOP_LEVEL = {
    "max_body_bytes": "web.max_body_bytes",
    "threads": "web.threads",
    "links": "web.links.prometheus",  # one of its keys (config.LINKS): the schema test checks them all
}
INTERNAL = {"generated_token"}  # set by the program, not by the file
# AuthConfig's fields, by the keys that set them
AUTH_KEYS = {
    "none": ["auth"],
    "bearer_token": ["auth.bearer_token_env", "auth.bearer_token_file"],
    "basic_username": ["auth.basic_auth.username"],
    "basic_password": ["auth.basic_auth.password_env", "auth.basic_auth.password_file"],
    "tokens": ["auth.tokens"],  # its entries: NAMED below
}
NAMED = {config.NamedToken: "auth.tokens[]"}
# the store's TLS settings (stackmedic/mysql_tls.py), flat in the store section
TLS_KEYS = {"enabled": "store.tls"}
SECTIONS = {
    config.StoreConfig: "store",
    config.JenkinsConfig: "jenkins",
    config.KubernetesConfig: "kubernetes",
    config.DispatcherConfig: "dispatcher",
    config.BreakerPolicy: "breaker",
    config.RuleConfig: "rules[]",
}


def documented() -> dict[str, str]:
    """Key path -> its default cell, from every table row of docs/receiver.md."""
    keys: dict[str, str] = {}
    reference = False  # inside a table headed `| key | type | default | meaning |`
    for line in DOC.read_text().splitlines():
        if line.startswith("| key |"):
            reference = line.startswith("| key | type | default | meaning |")
        if not line.startswith("|"):
            reference = False
        if not (reference and line.startswith("| `")):
            continue
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        for key in re.findall(r"`([^`]+)`", cells[0]):
            keys[key] = cells[2] if len(cells) > 2 else ""
    return keys


def dataclass_keys(cls: Any, prefix: str) -> dict[str, dataclasses.Field]:
    """The YAML key paths of a dataclass' fields (a secret is set by `<key>_env` or `<key>_file`)."""
    hints = typing.get_type_hints(cls)
    out: dict[str, dataclasses.Field] = {}
    for f in dataclasses.fields(cls):
        path = f"{prefix}.{f.name}"
        if dataclasses.is_dataclass(f.default_factory):
            continue  # a nested section with keys of its own (store.tls*): walked on its own
        if hints[f.name] is Secret or Secret in typing.get_args(hints[f.name]):
            out[f"{path}_env"] = out[f"{path}_file"] = f
        else:
            out[path] = f
    return out


def every_field() -> dict[str, tuple[Any, dataclasses.Field]]:
    keys: dict[str, tuple[Any, dataclasses.Field]] = {}
    for f in dataclasses.fields(config.Config):
        if f.name in INTERNAL or f.name == "auth":
            continue
        if f.name in TOP_LEVEL:
            keys[TOP_LEVEL[f.name]] = (config.Config, f)
        elif f.name not in ("store", "jenkins", "kubernetes", "dispatcher", "rules"):
            keys[f.name] = (config.Config, f)
    for f in dataclasses.fields(config.AuthConfig):
        for key in AUTH_KEYS[f.name]:
            keys[key] = (config.AuthConfig, f)
    for f in dataclasses.fields(MysqlTls):
        keys[TLS_KEYS.get(f.name, f"store.tls_{f.name}")] = (MysqlTls, f)
    for cls, prefix in {**SECTIONS, **NAMED}.items():
        for key, f in dataclass_keys(cls, prefix).items():
            keys[key] = (cls, f)
    return keys


def schema_keys(schema: Any, prefix: str) -> list[str]:
    """Every leaf key path the voluptuous schema accepts (what a user can write)."""
    if isinstance(schema, vol.Schema):
        schema = schema.schema
    if isinstance(schema, list) and schema and isinstance(schema[0], dict | vol.Schema):
        return schema_keys(schema[0], prefix + "[]")
    if isinstance(schema, vol.Any):
        return [k for v in schema.validators for k in schema_keys(v, prefix)]
    if not isinstance(schema, dict):
        return []
    out = []
    for key, value in schema.items():
        name = key.schema if isinstance(key, vol.Marker) else key
        if not isinstance(name, str):  # a mapping of user-chosen names (match:, params:)
            continue
        path = f"{prefix}.{name}" if prefix else name
        below = schema_keys(value, path)
        out += below or [path]
    return out


def test_every_dataclass_field_is_documented():
    missing = sorted(set(every_field()) - set(documented()))
    assert missing == [], f"not in {DOC.name}: {missing}"


def test_every_key_the_schema_accepts_is_documented():
    accepted = set(schema_keys(config.SCHEMA, "")) | set(schema_keys(config.RULE, "rules[]"))
    # `rules` takes a list of mappings checked by RULE; `breaker` inside a rule is `rules[].breaker`
    accepted = {k for k in accepted if not k.startswith("rules[].breaker.")} - {"rules"}
    missing = sorted(accepted - set(documented()))
    assert missing == [], f"not in {DOC.name}: {missing}"


def doc_value(cell: str, kind: Any) -> Any:
    """The first `value` of a default cell, read as the field's type."""
    found = re.search(r"`([^`]+)`", cell)
    assert found, f"no `value` in {cell!r}"
    value = yaml.safe_load(found.group(1))
    if kind is float or typing.get_args(kind) and float in typing.get_args(kind):
        return duration(value)
    return value


def test_documented_defaults_are_the_dataclass_defaults():
    docs = documented()
    wrong = []
    for key, (cls, f) in every_field().items():
        cell = docs[key]
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:  # required: no default
            if "*required*" not in cell:
                wrong.append((key, cell, "required"))
            continue
        if key == "auth" or cell.startswith("*required*") and default in (None, ""):
            continue
        if default in (None, "", {}, ()) and not cell.startswith("`") or dataclasses.is_dataclass(default):
            # unset, computed (store.path, store.replica) or a section: said in words, no value
            if default not in ({}, ()) and cell.startswith("`"):
                wrong.append((key, cell, default))
            continue
        kind = typing.get_type_hints(cls)[f.name]
        if doc_value(cell, kind) != (list(default) if isinstance(default, tuple) else default):
            wrong.append((key, cell, default))
    assert wrong == [], wrong
