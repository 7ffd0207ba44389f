"""Jenkins' rights in compose (issue 13 defect 5): the receiver's account may read Jenkins and
read and build the two remediation jobs its rules trigger, and nothing else; only admin
administers. Checked on the files Jenkins reads: security.yaml (JCasC) and the generated
casc.yaml (Job DSL), with matrix-auth 3.2's syntax."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from deploy.jenkins import generate
from stackmedic.config import ConfigError
from tests.deploy_stack.conftest import REPO

SECURITY = REPO / "deploy/compose/jenkins/security.yaml"
RECEIVER = REPO / "deploy/compose/receiver.yml"


def global_rights() -> dict[str, list[str]]:
    strategy = yaml.safe_load(SECURITY.read_text())["jenkins"]["authorizationStrategy"]
    assert set(strategy) == {"projectMatrix"}, "matrix authorisation, not loggedInUsersCanDoAnything"
    rights = {}
    for entry in strategy["projectMatrix"]["entries"]:
        # only named users: no `group` entry (authenticated, anonymous) widens anything
        assert set(entry) == {"user"}, entry
        rights[entry["user"]["name"]] = entry["user"]["permissions"]
    return rights


def job_rights(casc: str) -> dict[str, dict[str, list[str]]]:
    """job -> {user: permissions} from the Job DSL's authorizationMatrix blocks."""
    script = "\n".join(doc["script"] for doc in yaml.safe_load(casc)["jobs"])
    out = {}
    for block in re.split(r"\n(?=pipelineJob\()", script):
        name = re.match(r"pipelineJob\('([^']+)'\)", block.strip()).group(1)
        users = re.findall(r"user \{\s*name\('([^']+)'\)\s*permissions\(\[([^\]]*)\]\)", block)
        out[name] = {user: re.findall(r"'([^']+)'", perms) for user, perms in users}
    return out


def test_admin_administers_and_the_receiver_only_reads_globally():
    receiver_user = yaml.safe_load(RECEIVER.read_text())["jenkins"]["user"]
    assert global_rights() == {"admin": ["Overall/Administer"], receiver_user: ["Overall/Read"]}


def test_the_receiver_builds_exactly_the_jobs_its_rules_trigger():
    receiver = yaml.safe_load(RECEIVER.read_text())
    triggered = {rule["job"] for rule in receiver["rules"]}
    assert triggered == {"stackmedic-restart", "stackmedic-restore"}
    rights = job_rights((REPO / "deploy/jenkins/casc.yaml").read_text())
    assert {job for job, users in rights.items() if users} == triggered
    for job in triggered:
        assert rights[job] == {receiver["jenkins"]["user"]: ["Job/Build", "Job/Read"]}, job
    # inheriting only the global matrix: Overall/Read, never more
    assert (REPO / "deploy/jenkins/casc.yaml").read_text().count(
        "inheritanceStrategy { inheritingGlobal() }"
    ) == 2


def test_casc_yaml_is_generated_from_jobs_yaml():
    assert generate.render(generate.load()) == (REPO / "deploy/jenkins/casc.yaml").read_text()


def test_build_users_must_be_jenkins_user_ids(tmp_path: Path):
    doc = yaml.safe_load(generate.SOURCE.read_text())
    doc["jobs"]["stackmedic-restart"]["build_users"] = [
        "authenticated')\n   permissions(['Overall/Administer"
    ]
    bad = tmp_path / "jobs.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as info:
        generate.load(bad)
    assert info.value.lines()[0].startswith("config error: jobs.stackmedic-restart.build_users[0]: ")


def test_the_jenkins_image_has_the_matrix_auth_plugin():
    dockerfile = (REPO / "Dockerfile").read_text()
    (plugins,) = re.findall(r"jenkins-plugin-cli --plugins ([^\\\n]+)", dockerfile)
    assert "matrix-auth" in plugins.split()
