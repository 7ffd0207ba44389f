"""The runtime hardening of every compose service, checked one service at a time.

Each exception to a rule is listed here with its reason, the same one compose.yaml gives
in a comment: loosening a service means changing this file on purpose.
"""

from __future__ import annotations

import pytest

from tests.deploy_stack.conftest import ResolvedCompose
from tests.deploy_stack.test_compose import MONITORING, PROXIES, STACK

SERVICES = sorted(STACK | MONITORING | PROXIES)

# the user each service runs as; None: the image's own non-root user
USERS = {
    "mysql": "999:999",  # the image's mysql user: no root entrypoint, so no CHOWN/SETUID
    "petclinic": None,  # Paketo images run as their non-root `cnb` user, whose uid varies by builder
    "wordpress": "33:33",  # www-data: Apache starts unprivileged, binds :80 by the sysctl
    "jenkins": "1000:1000",
    "prometheus": "65534:65534",
    "alertmanager": "65534:65534",
    "grafana": "472:0",
    "stackmedic-exporter": "10001:10001",
    "stackmedic-receiver": "10001:10001",
    # nobody, in the host's docker group (DOCKER_GID; 999 when unset) to open the socket
    "docker-proxy-ro": "65534:999",
    "docker-proxy-jobs": "65534:999",
}
ROOT_ALLOWED: set[str] = set()

# capabilities added back after `cap_drop: [ALL]`: none anywhere, today
CAP_ADD: dict[str, set[str]] = {}

# scratch space each read-only service writes to
TMPFS = {
    "mysql": {"/tmp", "/run/mysqld"},
    "petclinic": {"/tmp"},
    "wordpress": {"/tmp", "/var/run/apache2", "/var/lock/apache2"},
    "jenkins": {"/tmp"},
    "grafana": {"/tmp"},
    "stackmedic-exporter": {"/tmp"},
    "stackmedic-receiver": {"/tmp"},
}

# host namespaces shared, with why
HOST_NAMESPACES = {
    # the process-group checks read the host's /proc (no capability: read only)
    "stackmedic-exporter": {"pid": "host"},
}


def service(resolved_compose: ResolvedCompose, name: str) -> dict:
    return resolved_compose.services[name]


def test_every_service_is_covered_here(resolved_compose: ResolvedCompose):
    assert set(resolved_compose.services) == set(SERVICES) == set(USERS)


@pytest.mark.parametrize("name", SERVICES)
def test_runs_as_its_non_root_user(resolved_compose: ResolvedCompose, name: str):
    s = service(resolved_compose, name)
    assert s.get("user") == USERS[name]
    if name not in ROOT_ALLOWED and s.get("user") is not None:  # petclinic: the image's user
        uid = s["user"].split(":")[0]
        assert uid not in ("0", "root"), f"{name} runs as root"
    assert not s.get("privileged"), f"{name} is privileged"


@pytest.mark.parametrize("name", SERVICES)
def test_drops_every_capability(resolved_compose: ResolvedCompose, name: str):
    s = service(resolved_compose, name)
    assert s.get("cap_drop") == ["ALL"]
    assert set(s.get("cap_add", [])) == CAP_ADD.get(name, set())


@pytest.mark.parametrize("name", SERVICES)
def test_no_new_privileges_and_default_seccomp(resolved_compose: ResolvedCompose, name: str):
    opts = service(resolved_compose, name).get("security_opt", [])
    assert "no-new-privileges:true" in opts
    # Docker's default seccomp and AppArmor profiles apply unless overridden: none is
    for opt in opts:
        assert "unconfined" not in opt, f"{name}: {opt}"
        assert not opt.startswith(("seccomp", "apparmor", "label")), f"{name}: {opt}"


@pytest.mark.parametrize("name", SERVICES)
def test_read_only_root_with_tmpfs_where_it_writes(resolved_compose: ResolvedCompose, name: str):
    s = service(resolved_compose, name)
    assert s.get("read_only") is True
    mounts = {entry.split(":")[0] for entry in s.get("tmpfs", [])}
    assert mounts == TMPFS.get(name, set())
    for entry in s.get("tmpfs", []):
        assert "size=" in entry, f"{name}: unbounded tmpfs {entry}"


@pytest.mark.parametrize("name", SERVICES)
def test_resource_limits(resolved_compose: ResolvedCompose, name: str):
    s = service(resolved_compose, name)
    assert s.get("mem_limit"), f"{name} has no memory limit"
    assert 0 < float(s.get("cpus", 0)) <= 2, f"{name} has no CPU limit"
    assert 0 < int(s.get("pids_limit", 0)) <= 1024, f"{name} has no PID limit"


@pytest.mark.parametrize("name", SERVICES)
def test_restarts_healthchecks_and_bounded_logs(resolved_compose: ResolvedCompose, name: str):
    s = service(resolved_compose, name)
    assert s.get("restart") == "unless-stopped"
    health = s.get("healthcheck", {})
    # a shell only where the check must log in without putting the password in argv
    # (tests/deploy_stack/test_monitoring_auth.py runs those two with busybox)
    kind = "CMD-SHELL" if name in ("prometheus", "alertmanager") else "CMD"
    assert health.get("test") and health["test"][0] == kind and not health.get("disable")
    assert health.get("interval") and health.get("timeout") and health.get("retries")
    logging = s.get("logging", {})
    assert logging.get("driver") == "json-file"
    assert logging["options"]["max-size"] and logging["options"]["max-file"]


@pytest.mark.parametrize("name", SERVICES)
def test_host_namespaces_only_where_explained(resolved_compose: ResolvedCompose, name: str):
    s = service(resolved_compose, name)
    shared = {key: s[key] for key in ("pid", "ipc", "network_mode", "uts", "userns_mode") if key in s}
    assert shared == HOST_NAMESPACES.get(name, {})
    assert not s.get("devices"), f"{name} gets host devices"


def test_python_services_run_under_an_init(resolved_compose: ResolvedCompose):
    # Python as PID 1 ignores SIGTERM: without an init `docker stop` waits and kills it
    for name in ("stackmedic-exporter", "stackmedic-receiver"):
        assert service(resolved_compose, name).get("init") is True
