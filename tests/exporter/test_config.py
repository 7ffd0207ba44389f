"""Configuration: every problem at once with its key path, defaults, secrets, the example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from stackmedic.exporter import config
from stackmedic.exporter.checks import declared_metrics

from stackmedic.config import ConfigError

HERE = Path(__file__).parent
REPO = HERE.parent.parent

BAD_CONFIG_LINES = [
    "config error: backups.directory: required key missing",
    "config error: colour: unknown key",
    "config error: containers.docker_url: invalid Docker URL '/var/run/docker.sock': "
    "expected unix:///path or tcp://host:port",
    "config error: containers.services[0].expected: -1 out of range 0..",
    "config error: http[0].regex: invalid regular expression: missing ), unterminated subpattern at position 7",
    "config error: http[0].url: invalid URL (not shown): expected http/https://host[:port]/...",
    "config error: http[1].status_codes[1]: 999 out of range 100..599",
    "config error: http[1].url: invalid URL (not shown): bad port or host",
    "config error: mysql[0].password: unknown key",
    "config error: mysql[0].tables.petclinic[1]: invalid identifier 'pets; DROP TABLE owners': "
    "letters, digits, _ $ - (at most 64)",
    "config error: ports.targets[0].port: port 70000 out of range 1..65535",
    "config error: ports.targets[1].port: expected a port number (integer 1..65535)",
    "config error: processes.groups[0]: at least one of name, exe, cmdline is required",
    "config error: scrape.retries: unknown key",
    "config error: scrape.timeout: invalid duration 'soon': expected e.g. 500ms, 10s, 5m, 1h",
    "config error: system.filesystems: expected a list",
]


def test_every_problem_reported_at_once_with_its_path():
    with pytest.raises(ConfigError) as err:
        config.load(HERE / "data" / "bad-config.yml")
    assert err.value.lines() == BAD_CONFIG_LINES
    # a password in clear is refused, and not repeated back
    assert "hunter2" not in str(err.value)


def test_duplicate_names_are_reported_when_items_are_otherwise_valid():
    data = {
        "http": [
            {"name": "a", "url": "http://127.0.0.1/"},
            {"url": "http://127.0.0.1/x"},
            {"name": "a", "url": "http://h/"},
        ],
        "ports": {"targets": [{"name": "p", "port": 1}, {"name": "p", "port": 2}]},
    }
    with pytest.raises(ConfigError) as err:
        config.parse(data)
    assert err.value.lines() == [
        "config error: http[2].name: duplicate name 'a'",
        "config error: ports.targets[1].name: duplicate name 'p'",
    ]


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("system:\n  filesystems: [/\n")
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert len(err.value.lines()) == 1
    assert re.fullmatch(r"config error: \(top\): invalid YAML at line \d+: .+", err.value.lines()[0])


def test_missing_file():
    with pytest.raises(ConfigError) as err:
        config.load("/nonexistent/stackmedic.yml")
    assert err.value.lines() == [
        "config error: (top): cannot read /nonexistent/stackmedic.yml: No such file or directory"
    ]


def test_defaults_fill_in():
    cfg = config.parse({"system": None, "http": [{"url": "http://127.0.0.1:1080/"}], "ports": {}})
    assert cfg["scrape"] == {"timeout": 10.0, "timeout_margin": 0.5, "max_concurrency": 32}
    assert cfg["system"] == {"filesystems": [], "timeout": 2.0}
    http = cfg["http"][0]
    assert (http["timeout"], http["max_body_bytes"], http["status_codes"], http["tls_verify"]) == (
        5.0,
        1048576,
        [],
        True,
    )
    assert cfg["ports"] == {"discover": False, "timeout": 2.0, "targets": []}


def test_durations_accept_units():
    cfg = config.parse({"scrape": {"timeout": "1500ms"}, "http": [{"url": "http://h/", "timeout": "2s"}]})
    assert cfg["scrape"]["timeout"] == 1.5
    assert cfg["http"][0]["timeout"] == 2.0


def test_container_service_defaults_to_its_name_unless_matched_by_name():
    cfg = config.parse(
        {"containers": {"services": [{"name": "petclinic"}, {"name": "db", "name_regex": "^mysql"}]}}
    )
    by_label, by_name = cfg["containers"]["services"]
    assert by_label["compose_service"] == "petclinic"
    assert "compose_service" not in by_name
    assert cfg["containers"]["docker_url"] == "unix:///var/run/docker.sock"


def test_password_from_env(monkeypatch):
    monkeypatch.setenv("SM_TEST_PW", "s3cret-from-env")
    cfg = config.parse({"mysql": [{"name": "db", "user": "u", "password_env": "SM_TEST_PW"}]})
    assert cfg["mysql"][0]["password"] == "s3cret-from-env"
    assert "s3cret" not in repr(cfg)  # a Secret does not show itself


def test_password_from_file(tmp_path):
    (tmp_path / "pw").write_text("s3cret-from-file\n")
    cfg = config.parse({"mysql": [{"name": "db", "user": "u", "password_file": str(tmp_path / "pw")}]})
    assert cfg["mysql"][0]["password"] == "s3cret-from-file"


def test_secret_problems_are_reported_without_the_secret(monkeypatch, tmp_path):
    monkeypatch.delenv("SM_TEST_PW_MISSING", raising=False)
    data = {
        "mysql": [
            {"name": "a", "user": "u", "password_env": "SM_TEST_PW_MISSING"},
            {"name": "b", "user": "u", "password_file": str(tmp_path / "nope")},
        ]
    }
    with pytest.raises(ConfigError) as err:
        config.parse(data)
    assert err.value.lines() == [
        "config error: mysql[0].password_env: the environment variable is not set (name not shown)",
        "config error: mysql[1].password_file: cannot read the secret file (path not shown): No such file or directory",
    ]


def test_seed_stack_example_is_valid(monkeypatch):
    monkeypatch.setenv("STACKMEDIC_MYSQL_PASSWORD", "x")
    cfg = config.load(REPO / "examples" / "seed-stack.yml")
    assert [s["name"] for s in cfg["containers"]["services"]] == [
        "petclinic",
        "wordpress",
        "mysql",
        "jenkins",
    ]
    assert [g["group"] for g in cfg["processes"]["groups"]] == ["mysql", "petclinic", "jenkins"]
    assert cfg["http"][0]["keyword"] == "Welcome"
    assert cfg["mysql"][0]["port"] == 3316
    assert "owners" in cfg["mysql"][0]["tables"]["petclinic"]
    assert sorted(t["port"] for t in cfg["ports"]["targets"]) == [1080, 1180, 3316, 8080]


def test_embedded_default_without_docker(tmp_path):
    cfg = config.default_config(docker_socket=str(tmp_path / "no-docker.sock"))
    assert cfg["system"]["filesystems"]
    assert cfg["ports"]["discover"] is True
    assert "containers" not in cfg and "docker_space" not in cfg


def test_embedded_default_with_docker(tmp_path):
    sock = tmp_path / "docker.sock"
    sock.touch()
    cfg = config.default_config(docker_socket=str(sock))
    assert cfg["containers"]["docker_url"] == f"unix://{sock}"
    assert cfg["docker_space"]["docker_url"] == f"unix://{sock}"


def test_metric_table_matches_design_doc():
    """docs/design.md's exporter table and the checks' declarations name the same metrics and labels."""
    text = (REPO / "docs" / "design.md").read_text()
    section = text.split("## Exporter metrics", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, tuple[str, ...]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`stackmedic_"):
            continue
        labels = tuple(re.findall(r"`(\w+)`", cells[1]))
        for name in re.findall(r"`(stackmedic_\w+)`", cells[0]):
            documented[name] = labels
    ours = {s.full_name: s.labels for s in declared_metrics()}
    assert ours == documented


def test_metrics_reference_lists_every_metric():
    text = (REPO / "docs" / "metrics.md").read_text()
    documented = set(re.findall(r"^\| `(stackmedic_\w+)` \|", text, re.M))
    assert documented == {s.full_name for s in declared_metrics()}


def test_docker_checks_share_one_address_from_docker_host(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    cfg = config.parse({"containers": {"services": [{"name": "petclinic"}]}, "docker_space": {}})
    assert cfg["docker"]["url"] == "tcp://127.0.0.1:2375"
    assert cfg["containers"]["docker_url"] == cfg["docker_space"]["docker_url"] == "tcp://127.0.0.1:2375"


def test_docker_url_set_once_beats_docker_host(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    cfg = config.parse({"docker": {"url": "unix:///run/other.sock"}, "containers": {}, "docker_space": {}})
    assert cfg["containers"]["docker_url"] == cfg["docker_space"]["docker_url"] == "unix:///run/other.sock"
    # an older config's per-section docker_url still counts, for both checks
    cfg = config.parse({"containers": {"docker_url": "unix:///run/other.sock"}, "docker_space": {}})
    assert cfg["docker_space"]["docker_url"] == "unix:///run/other.sock"


def test_docker_addresses_that_disagree_are_an_error(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    with pytest.raises(ConfigError) as err:
        config.parse(
            {
                "docker": {"url": "unix:///run/a.sock"},
                "docker_space": {"docker_url": "tcp://127.0.0.1:2375"},
            }
        )
    assert err.value.lines() == [
        "config error: docker_space.docker_url: 'tcp://127.0.0.1:2375' differs from docker.url "
        "'unix:///run/a.sock': Docker checks use one address, set it once as docker.url"
    ]


def test_bad_docker_host_is_named(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "docker.example:2375")
    with pytest.raises(ConfigError) as err:
        config.parse({"containers": {}})
    assert err.value.lines() == [
        "config error: DOCKER_HOST: invalid Docker URL 'docker.example:2375': "
        "expected unix:///path or tcp://host:port"
    ]
    # without a Docker check, DOCKER_HOST is not read at all
    assert "docker" not in config.parse({"system": {}})


def test_embedded_default_follows_docker_host(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    cfg = config.default_config(docker_socket=str(tmp_path / "no.sock"))
    assert cfg["containers"]["docker_url"] == cfg["docker_space"]["docker_url"] == "tcp://127.0.0.1:2375"


def test_a_query_that_writes_is_refused():
    with pytest.raises(ConfigError) as info:
        config.parse(
            {
                "mysql": [
                    {
                        "name": "db",
                        "user": "u",
                        "queries": [
                            {"name": "q", "sql": "DELETE FROM owners"},
                            {"name": "r", "sql": "SELECT 1; DROP TABLE owners"},
                        ],
                    }
                ]
            }
        )
    assert info.value.lines() == [
        "config error: mysql[0].queries[0].sql: expected one statement that reads (SELECT, WITH, SHOW...): queries run read-only",
        "config error: mysql[0].queries[1].sql: expected one statement that reads (SELECT, WITH, SHOW...): queries run read-only",
    ]
