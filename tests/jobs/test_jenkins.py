"""Jenkins jobs as code: jobs.yaml is valid, casc.yaml is generated from it and parses,
every command exists in stackmedic-job, every cron means what the docs say."""

from __future__ import annotations

import itertools
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from stackmedic.jobs import config as jc
from stackmedic.jobs.cli import SUBCOMMANDS, build_parser

from deploy.jenkins import generate as jenkins_dsl
from deploy.jenkins.cron import CronError, describe, parse
from stackmedic.config import ConfigError

REPO = Path(__file__).resolve().parents[2]
SPEC = jenkins_dsl.load()


def test_generated_casc_is_up_to_date():
    assert jenkins_dsl.main(["--check"]) == 0, "run: python -m deploy.jenkins.generate"


def test_the_job_list_is_the_one_design_md_promises():
    databases = SPEC.choices["DATABASE"]
    expected = {
        "stackmedic-start",
        "stackmedic-stop",
        "stackmedic-restart",
        "stackmedic-restore",
        "stackmedic-prune",
    }
    expected |= {f"stackmedic-{kind}-{db}" for kind in ("backup", "verify") for db in databases}
    assert set(SPEC.jobs) == expected
    design = (REPO / "docs" / "design.md").read_text()
    for name in ("stackmedic-start", "stackmedic-restart", "stackmedic-restore", "stackmedic-backup-<db>"):
        assert f"`{name}`" in design
    for db in databases:
        assert SPEC.jobs[f"stackmedic-backup-{db}"].on_success == (f"stackmedic-verify-{db}",)
        assert SPEC.jobs[f"stackmedic-backup-{db}"].cron


def test_choices_are_the_configured_databases_and_services():
    example = jc.load(REPO / "examples" / "jobs.yml")
    assert SPEC.choices["DATABASE"] == sorted(example.databases)
    assert SPEC.choices["SERVICE"] == sorted(example.services)
    receiver_allowlist = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")  # docs/design.md
    assert all(receiver_allowlist.fullmatch(v) for values in SPEC.choices.values() for v in values)


def test_every_command_exists_and_parses_for_every_choice():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["stackmedic-job"] == "stackmedic.jobs.cli:main"
    example = jc.load(REPO / "examples" / "jobs.yml")
    parser = build_parser()
    for job in SPEC.jobs.values():
        assert job.argv[0] == "stackmedic-job"
        for values in itertools.product(*(SPEC.choices[p] for p in job.parameters)):
            bound = dict(zip(job.parameters, values, strict=True))
            argv = [bound[a[1:-1]] if a.startswith("{") else a for a in job.argv[1:]]
            args = parser.parse_args(argv)  # SystemExit on any unknown flag or subcommand
            assert args.command in SUBCOMMANDS
            if getattr(args, "database", None):
                example.database(args.database)
            if getattr(args, "service", None):
                example.service(args.service)


def test_the_restore_job_waits_for_a_running_backup_within_its_timeout():
    job = SPEC.jobs["stackmedic-restore"]
    args = build_parser().parse_args([a.replace("{DATABASE}", "petclinic") for a in job.argv[1:]])
    assert args.lock_wait == 3600  # a backup holds the lock for at most its dump_timeout (1h)
    assert job.timeout_minutes * 60 >= args.lock_wait + 2 * 3600  # the wait, then the restore itself


def test_petclinic_backs_up_every_two_hours_at_half_past_from_0930_to_1930():
    cron = parse(SPEC.jobs["stackmedic-backup-petclinic"].cron)
    assert cron.every_day
    assert cron.times() == ["09:30", "11:30", "13:30", "15:30", "17:30", "19:30"]


def test_wordpress_backs_up_on_its_own_nightly_schedule():
    cron = parse(SPEC.jobs["stackmedic-backup-wordpress"].cron)
    petclinic = parse(SPEC.jobs["stackmedic-backup-petclinic"].cron)
    assert cron.every_day and len(cron.times()) == 1
    assert int(cron.times()[0][:2]) < 6
    assert not set(cron.times()) & set(petclinic.times())
    prune = parse(SPEC.jobs["stackmedic-prune"].cron)
    assert not set(prune.times()) & (set(cron.times()) | set(petclinic.times()))


def test_each_schedule_is_what_the_cron_means_and_what_the_docs_say():
    docs = (REPO / "docs" / "jobs.md").read_text()
    for job in SPEC.jobs.values():
        if job.cron:
            assert describe(job.cron) == job.schedule
            row = next(line for line in docs.splitlines() if line.startswith(f"| `{job.name}`"))
            assert f"`{job.cron}`" in row and job.schedule in row, row


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("H 2 * * *", "minute: H (hashed) times are not allowed"),
        ("60 2 * * *", "minute: 60 is out of range 0-59"),
        ("0 19-9 * * *", "hour: range 19-9 runs backwards"),
        ("0 2 * *", "expected 5 fields, got 4"),
        ("0 2 * * mon", "day of week: 'mon' is not a number"),
        ("*/0 * * * *", "minute: 0 is out of range 1-60"),
    ],
)
def test_invalid_cron_expressions_are_refused(expression: str, message: str):
    with pytest.raises(CronError, match=re.escape(message)):
        parse(expression)


def test_cron_expansion():
    assert parse("*/15 0 * * *").times() == ["00:00", "00:15", "00:30", "00:45"]
    assert parse("0 0 * * 7").weekdays == {0}
    assert describe("0 3 * * 1-5") == "on Monday, Tuesday, Wednesday, Thursday, Friday at 03:00"
    assert describe("5 1,13 * * *") == "daily at 01:05 and 13:05"


def _balanced(script: str) -> bool:
    """Brackets balance outside Groovy string literals ('...', '''...''', "...") and comments."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    i = 0
    while i < len(script):
        if script.startswith("'''", i):
            end = script.find("'''", i + 3)
            while end != -1 and script[end - 1] == "\\":
                end = script.find("'''", end + 1)
            if end == -1:
                return False
            i = end + 3
            continue
        ch = script[i]
        if ch in "'\"":
            i += 1
            while i < len(script) and script[i] != ch:
                i += 2 if script[i] == "\\" else 1
            if i >= len(script):
                return False
        elif script.startswith("//", i):
            i = script.find("\n", i)
            if i == -1:
                break
        elif ch in "([{":
            stack.append(ch)
        elif ch in ")]}" and (not stack or stack.pop() != pairs[ch]):
            return False
        i += 1
    return not stack


def _pipelines(dsl: str) -> list[str]:
    return [m.replace("\\\\", "\\") for m in re.findall(r"script\('''\\\n(.*?)'''\)", dsl, re.S)]


def test_casc_parses_and_defines_every_job_as_the_source_says():
    casc = yaml.safe_load((REPO / "deploy" / "jenkins" / "casc.yaml").read_text())
    env = casc["jenkins"]["globalNodeProperties"][0]["envVars"]["env"]
    assert env == [{"key": "STACKMEDIC_JOBS_CONFIG", "value": "/etc/stackmedic/jobs.yml"}]
    (entry,) = casc["jobs"]
    dsl = entry["script"]
    assert "${" not in dsl  # JCasC would substitute it
    assert _balanced(dsl)
    blocks = re.split(r"\n\n(?=pipelineJob\()", dsl.strip())
    assert [re.match(r"pipelineJob\('([^']+)'\)", b).group(1) for b in blocks] == list(SPEC.jobs)
    for block, job in zip(blocks, SPEC.jobs.values(), strict=True):
        assert _balanced(block)
        assert block.count("disableConcurrentBuilds()") == 1
        for p in job.parameters:
            choices = ", ".join(f"'{c}'" for c in SPEC.choices[p])
            assert f"choiceParam('{p}', [{choices}]," in block
            assert f"if (!([{choices}].contains(params.{p})))" in block
        assert ("cron { spec('" + job.cron + "') }" in block) if job.cron else "cron {" not in block
        (pipeline,) = _pipelines(block)
        assert _balanced(pipeline)
        command = " ".join(f'"${a[1:-1]}"' if a.startswith("{") else a for a in job.argv)
        assert f"sh(script: '{command} >stackmedic-result.json;" in pipeline
        for down in job.on_success:
            assert f"build(job: '{down}', wait: false)" in pipeline


def test_jobs_the_receiver_triggers_declare_its_action_id_and_never_use_it():
    # docs/design.md: Jenkins drops undeclared parameters; the receiver finds its build by this one
    receiver = yaml.safe_load((REPO / "examples" / "receiver.yml").read_text())
    triggered = {m.group(1) for m in re.finditer(r"job: (\S+)", yaml.safe_dump(receiver))}
    assert triggered >= {"stackmedic-restart", "stackmedic-restore"}
    dsl = yaml.safe_load((REPO / "deploy" / "jenkins" / "casc.yaml").read_text())["jobs"][0]["script"]
    for name in triggered:
        assert SPEC.jobs[name].string_parameters == ("STACKMEDIC_ACTION_ID",)
    for block in re.split(r"\n\n(?=pipelineJob\()", dsl.strip()):
        name = re.match(r"pipelineJob\('([^']+)'\)", block).group(1)
        declared = "stringParam('STACKMEDIC_ACTION_ID', ''," in block
        assert declared == (name in triggered)
        assert "STACKMEDIC_ACTION_ID" not in _pipelines(block)[0]


def test_no_parameter_is_pasted_into_a_path_or_a_script():
    dsl = (REPO / "deploy" / "jenkins" / "casc.yaml").read_text()
    assert "workspace/" not in dsl and "cd " not in dsl
    assert not re.search(r"\$\{?params\.", dsl)  # Groovy interpolation of a parameter into sh


def _write(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(jenkins_dsl.SOURCE.read_text())
    mutate(data)
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_mistakes_in_jobs_yaml_are_reported_with_their_path(tmp_path: Path):
    def mutate(d):
        d["jobs"]["stackmedic-backup-petclinic"]["schedule"] = "daily at 09:30"
        d["jobs"]["stackmedic-backup-wordpress"]["on_success"] = ["stackmedic-verify-nothing"]
        d["jobs"]["stackmedic-restore"]["argv"] = [
            "stackmedic-job",
            "restore",
            "--database",
            "{DATABASE}; rm -rf /",
        ]
        d["jobs"]["stackmedic-start"]["parameters"] = ["PROJECT"]
        d["jobs"]["stackmedic-prune"]["cron"] = "H 3 * * *"
        d["concurrent_builds"] = True

    with pytest.raises(ConfigError) as info:
        jenkins_dsl.load(_write(tmp_path, mutate))
    lines = info.value.lines()
    assert any("jobs.stackmedic-restore.argv[3]: argument '{DATABASE}; rm -rf /'" in line for line in lines)
    assert any("jobs.stackmedic-prune.cron: invalid cron expression 'H 3 * * *'" in line for line in lines)
    assert any(line.startswith("config error: concurrent_builds:") for line in lines)

    def mutate2(d):
        d["jobs"]["stackmedic-backup-petclinic"]["schedule"] = "daily at 09:30"
        d["jobs"]["stackmedic-backup-wordpress"]["on_success"] = ["stackmedic-verify-nothing"]
        d["jobs"]["stackmedic-start"]["parameters"] = ["PROJECT"]

    with pytest.raises(ConfigError) as info:
        jenkins_dsl.load(_write(tmp_path, mutate2))
    assert info.value.lines() == [
        "config error: jobs.stackmedic-backup-petclinic.schedule: says 'daily at 09:30' but the cron means "
        "'daily at 09:30, 11:30, 13:30, 15:30, 17:30 and 19:30'",
        "config error: jobs.stackmedic-backup-wordpress.on_success: no job named stackmedic-verify-nothing",
        "config error: jobs.stackmedic-start.argv: {SERVICE} is not a parameter of the job",
        "config error: jobs.stackmedic-start.parameters: PROJECT has no list in choices",
        "config error: jobs.stackmedic-start.parameters: PROJECT is not used in argv",
    ]


def test_free_text_parameters_never_reach_a_command(tmp_path: Path):
    def mutate(d):
        d["jobs"]["stackmedic-restore"]["argv"] = [
            "stackmedic-job",
            "restore",
            "--database",
            "{STACKMEDIC_ACTION_ID}",
        ]
        d["jobs"]["stackmedic-restore"]["parameters"] = []

    with pytest.raises(ConfigError) as info:
        jenkins_dsl.load(_write(tmp_path, mutate))
    assert info.value.lines() == [
        "config error: jobs.stackmedic-restore.argv: {STACKMEDIC_ACTION_ID} is free text: "
        "only choice parameters reach a command"
    ]
