"""The configuration files the ConfigMaps carry are valid for the real programs, and every
secret file they read is one the pod mounts, from the Secret docs/kubernetes.md names."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy_kubernetes.render import BASE, find, overlay, pod_spec

SECRET_PATH = re.compile(r"/etc/stackmedic/secrets/(\w+)/([\w-]+)")
# program module, config file, a workload that runs it
CONFIGS = {
    "exporter": ("exporter", "exporter.yml", ("Deployment", "stackmedic-exporter")),
    "jobs": ("jobs", "jobs.yml", ("CronJob", "stackmedic-restore")),
    "receiver": ("receiver", "receiver.yml", ("Deployment", "stackmedic-receiver")),
}
CHECKED = ["exporter", "jobs", "receiver"]


def with_secrets_in(path: Path, tmp_path: Path) -> Path:
    """A copy of the config whose secret files exist under `tmp_path`."""
    text = path.read_text()
    for folder, key in SECRET_PATH.findall(text):
        secret = tmp_path / "secrets" / folder / key
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text(f"not-a-real-secret-{folder}-{key}\n")  # each its own: tokens must differ
    out = tmp_path / path.name
    out.write_text(SECRET_PATH.sub(lambda m: f"{tmp_path}/secrets/{m.group(1)}/{m.group(2)}", text))
    return out


@pytest.mark.parametrize("program", CHECKED)
def test_the_program_accepts_its_config(program: str, tmp_path: Path):
    module, file, _ = CONFIGS[program]
    config = with_secrets_in(BASE / file, tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", f"stackmedic.{module}", f"--config.file={config}", "--config.check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("program", sorted(CONFIGS))
def test_every_secret_the_config_reads_is_mounted(program: str):
    _, file, (kind, name) = CONFIGS[program]
    wanted = set(SECRET_PATH.findall((BASE / file).read_text()))
    assert wanted, f"{file} reads no secret?"
    spec = pod_spec(find(overlay("openshift"), kind, name))
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounted = set()
    for mount in spec["containers"][0]["volumeMounts"]:
        m = re.fullmatch(r"/etc/stackmedic/secrets/(\w+)", mount["mountPath"])
        secret = volumes[mount["name"]].get("secret")
        if m and secret:
            mounted |= {(m.group(1), item["path"]) for item in secret["items"]}
    assert wanted <= mounted


def test_the_exporter_reads_the_backups_the_jobs_write():
    exporter = yaml.safe_load((BASE / "exporter.yml").read_text())
    jobs = yaml.safe_load((BASE / "jobs.yml").read_text())
    folder = exporter["backups"]["directory"]
    assert {db["backup_dir"] for db in jobs["databases"].values()} == {folder}
    assert set(exporter["backups"]["databases"]) == set(jobs["databases"])
    objects = overlay("openshift")

    def claim_at(kind: str, name: str) -> str:
        spec = pod_spec(find(objects, kind, name))
        mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == folder)
        return next(v for v in spec["volumes"] if v["name"] == mount["name"])["persistentVolumeClaim"][
            "claimName"
        ]

    assert claim_at("Deployment", "stackmedic-exporter") == "stackmedic-backups"
    for cron in (o for o in objects if o["kind"] == "CronJob"):
        assert claim_at("CronJob", cron["metadata"]["name"]) == "stackmedic-backups"
    # each database the jobs know is backed up and verified on a schedule
    names = {o["metadata"]["name"] for o in objects if o["kind"] == "CronJob"}
    for db in jobs["databases"]:
        assert {f"stackmedic-backup-{db}", f"stackmedic-verify-{db}"} <= names


def test_alertmanager_and_people_have_tokens_of_their_own():
    """As in compose (issue 13): the audit names which token acted, and Alertmanager's and
    people's can be rotated or revoked apart. Alertmanager sends the one named `alertmanager`."""
    receiver = yaml.safe_load((BASE / "receiver.yml").read_text())
    tokens = {t["name"]: t["token_file"] for t in receiver["auth"].get("tokens", [])}
    assert set(tokens) == {"alertmanager", "operator"}
    assert len(set(tokens.values())) == 2
    objects = overlay("openshift")
    hook = find(objects, "AlertmanagerConfig", "stackmedic")["spec"]["receivers"][0]["webhookConfigs"][0]
    credentials = hook["httpConfig"]["authorization"]["credentials"]
    spec = pod_spec(find(objects, "Deployment", "stackmedic-receiver"))
    volume = next(v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == credentials["name"])
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    item = next(i for i in volume["secret"]["items"] if i["key"] == credentials["key"])
    assert tokens["alertmanager"] == f"{mount['mountPath']}/{item['path']}"
