"""Generate deploy/jenkins/casc.yaml (JCasC + Job DSL) from deploy/jenkins/jobs.yaml.

    python -m deploy.jenkins.generate [--source jobs.yaml] [--output casc.yaml] [--check]

Each job becomes a `pipelineJob` with its choice parameters (`choiceParam`), no concurrent
builds (`disableConcurrentBuilds`), its cron trigger, and a sandboxed pipeline that checks
the parameter against the fixed list again, runs the command with the value as one quoted
shell word from the environment (never pasted into the script), maps exit statuses to
build results, and starts the downstream jobs after a success.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import voluptuous as vol
import yaml
from stackmedic.jobs.config import NAME_RE

from deploy.jenkins.cron import CronError, describe
from stackmedic.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "deploy" / "jenkins" / "jobs.yaml"
OUTPUT = REPO / "deploy" / "jenkins" / "casc.yaml"
JOB_NAME_RE = re.compile(r"^stackmedic-[a-z0-9-]{1,60}$")
PARAM_RE = re.compile(r"^\{([A-Z][A-Z0-9_]*)\}$")
PLAIN_ARG_RE = re.compile(r"^[A-Za-z0-9_./=:-]+$")
STRING_PARAM_HELP = (
    "recorded with the build for whoever triggered it (stackmedic-receiver); never used by the job"
)
HEADER = "# GENERATED from deploy/jenkins/jobs.yaml by `python -m deploy.jenkins.generate`: do not edit.\n"


def _cron(value: Any) -> str:
    try:
        describe(str(value))
    except CronError as exc:
        raise vol.Invalid(f"invalid cron expression {value!r}: {exc}") from None
    return str(value)


def _arg(value: Any) -> str:
    if not isinstance(value, str) or not (PARAM_RE.fullmatch(value) or PLAIN_ARG_RE.fullmatch(value)):
        raise vol.Invalid(f"argument {value!r}: a plain word or a whole {{PARAM}}")
    return value


JOB = {
    vol.Required("description"): str,
    vol.Optional("parameters", default=[]): [vol.Match(r"^[A-Z][A-Z0-9_]*$")],
    vol.Optional("string_parameters", default=[]): [vol.Match(r"^[A-Z][A-Z0-9_]*$")],
    vol.Required("argv"): vol.All([_arg], vol.Length(min=2)),
    vol.Optional("cron"): _cron,
    vol.Optional("schedule"): str,
    vol.Optional("on_success", default=[]): [vol.Match(JOB_NAME_RE)],
    vol.Optional("unstable_exit_codes", default=[]): [vol.All(int, vol.Range(min=1, max=255))],
    vol.Optional("timeout_minutes", default=60): vol.All(int, vol.Range(min=1, max=1440)),
    # Jenkins users that may read and build this job and nothing else (matrix authorisation;
    # their global rights are deploy/compose/jenkins/security.yaml's)
    vol.Optional("build_users", default=[]): [vol.Match(r"^[a-z][a-z0-9_.-]{0,62}$")],
}

SCHEMA = vol.Schema(
    {
        vol.Required("version"): 1,
        vol.Required("concurrent_builds"): False,
        vol.Optional("environment", default={}): {
            vol.Match(r"^[A-Z][A-Z0-9_]*$"): vol.Match(r"^[^$'\"\\]*$")
        },
        vol.Required("choices"): {vol.Match(r"^[A-Z][A-Z0-9_]*$"): [vol.Match(NAME_RE)]},
        vol.Required("jobs"): {vol.Match(JOB_NAME_RE): JOB},
    }
)


@dataclass(frozen=True)
class Job:
    name: str
    description: str
    parameters: tuple[str, ...]
    string_parameters: tuple[str, ...]
    argv: tuple[str, ...]
    cron: str | None
    schedule: str | None
    on_success: tuple[str, ...]
    unstable_exit_codes: tuple[int, ...]
    timeout_minutes: int
    build_users: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobsFile:
    environment: dict[str, str]
    choices: dict[str, list[str]]
    jobs: dict[str, Job]


def _cross_check(spec: JobsFile) -> list[tuple[str, str]]:
    problems = []
    for job in spec.jobs.values():
        where = f"jobs.{job.name}"
        for p in job.parameters:
            if p not in spec.choices:
                problems.append((f"{where}.parameters", f"{p} has no list in choices"))
        used = {m.group(1) for a in job.argv if (m := PARAM_RE.fullmatch(a))}
        for p in sorted(used - set(job.parameters)):
            if p in job.string_parameters:
                problems.append(
                    (f"{where}.argv", f"{{{p}}} is free text: only choice parameters reach a command")
                )
            else:
                problems.append((f"{where}.argv", f"{{{p}}} is not a parameter of the job"))
        for p in sorted(set(job.parameters) & set(job.string_parameters)):
            problems.append((f"{where}.string_parameters", f"{p} is a choice parameter already"))
        for p in sorted(set(job.parameters) - used):
            problems.append((f"{where}.parameters", f"{p} is not used in argv"))
        for down in job.on_success:
            if down not in spec.jobs:
                problems.append((f"{where}.on_success", f"no job named {down}"))
        if bool(job.cron) != bool(job.schedule):
            problems.append((where, "cron and schedule go together"))
        elif job.cron and describe(job.cron) != job.schedule:
            problems.append(
                (f"{where}.schedule", f"says {job.schedule!r} but the cron means {describe(job.cron)!r}")
            )
    return problems


def load(path: Path = SOURCE) -> JobsFile:
    """Read and validate jobs.yaml; ConfigError lists every problem."""
    data = load_config(path, SCHEMA)
    jobs = {
        name: Job(
            name=name,
            description=" ".join(j["description"].split()),
            parameters=tuple(j["parameters"]),
            string_parameters=tuple(j["string_parameters"]),
            argv=tuple(j["argv"]),
            cron=j.get("cron"),
            schedule=j.get("schedule"),
            on_success=tuple(j["on_success"]),
            unstable_exit_codes=tuple(j["unstable_exit_codes"]),
            timeout_minutes=j["timeout_minutes"],
            build_users=tuple(j["build_users"]),
        )
        for name, j in data["jobs"].items()
    }
    spec = JobsFile(dict(data["environment"]), {k: list(v) for k, v in data["choices"].items()}, jobs)
    problems = _cross_check(spec)
    if problems:
        raise ConfigError(problems)
    return spec


def _groovy(text: str) -> str:
    """A single-quoted Groovy string (no interpolation)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _shell_word(arg: str) -> str:
    m = PARAM_RE.fullmatch(arg)
    # The value stays in the environment: the shell expands it as one word, unparsed.
    return f'"${m.group(1)}"' if m else arg


def pipeline_script(job: Job, spec: JobsFile) -> str:
    """The pipeline the job runs (sandboxed Groovy)."""
    lines = ["node {"]
    for p in job.parameters:
        allowed = "[" + ", ".join(_groovy(c) for c in spec.choices[p]) + "]"
        lines += [
            f"    if (!({allowed}.contains(params.{p}))) {{",
            f"        error({_groovy(f'{p} is not one of the configured values')})",
            "    }",
        ]
    command = " ".join(_shell_word(a) for a in job.argv)
    shell = f"{command} >stackmedic-result.json; rc=$?; cat stackmedic-result.json; exit $rc"
    lines += [
        f"    timeout(time: {job.timeout_minutes}, unit: 'MINUTES') {{",
        f"        def rc = sh(script: {_groovy(shell)}, returnStatus: true)",
        "        def result = fileExists('stackmedic-result.json') ? readFile('stackmedic-result.json').trim() : ''",
        "        if (result) {",
        "            def lines = result.split('\\n')",
        "            currentBuild.description = lines[lines.length - 1]",
        "        }",
    ]
    if job.unstable_exit_codes:
        codes = "[" + ", ".join(str(c) for c in job.unstable_exit_codes) + "]"
        lines += [
            f"        if ({codes}.contains(rc)) {{",
            "            unstable('stackmedic-job exited with ' + rc)",
            "        } else if (rc != 0) {",
        ]
    else:
        lines.append("        if (rc != 0) {")
    lines += [
        "            error('stackmedic-job exited with ' + rc + ' (1 failed, 2 usage, 3 server down, "
        "4 no valid backup, 5 locked)')",
        "        }",
        "    }",
    ]
    for down in job.on_success:
        lines.append(f"    build(job: {_groovy(down)}, wait: false)")
    lines.append("}")
    return "\n".join(lines)


def job_dsl(job: Job, spec: JobsFile) -> str:
    """One Job DSL `pipelineJob` definition."""
    out = [f"pipelineJob({_groovy(job.name)}) {{", f"    description({_groovy(job.description)})"]
    if job.parameters or job.string_parameters:
        out.append("    parameters {")
        for p in job.parameters:
            choices = "[" + ", ".join(_groovy(c) for c in spec.choices[p]) + "]"
            out.append(
                f"        choiceParam({_groovy(p)}, {choices}, {_groovy('one of the configured values')})"
            )
        for p in job.string_parameters:
            out.append(f"        stringParam({_groovy(p)}, '', {_groovy(STRING_PARAM_HELP)})")
        out.append("    }")
    out += ["    properties {", "        disableConcurrentBuilds()"]
    if job.build_users:
        # matrix-auth 3.2's Job DSL syntax; the global Overall/Read stays the only other right
        out += [
            "        authorizationMatrix {",
            "            inheritanceStrategy { inheritingGlobal() }",
            "            entries {",
        ]
        for user in job.build_users:
            out += [
                "                user {",
                f"                    name({_groovy(user)})",
                "                    permissions(['Job/Build', 'Job/Read'])",
                "                }",
            ]
        out += ["            }", "        }"]
    if job.cron:
        out += [
            "        pipelineTriggers {",
            "            triggers {",
            f"                cron {{ spec({_groovy(job.cron)}) }}",
            "            }",
            "        }",
        ]
    out += ["    }", "    logRotator { numToKeep(200) }", "    definition {", "        cps {"]
    script = pipeline_script(job, spec)
    if "'''" in script:
        raise ValueError(f"{job.name}: pipeline contains ''' and cannot be embedded")
    out += [f"            script('''\\\n{script.replace(chr(92), chr(92) * 2)}''')", "            sandbox()"]
    out += ["        }", "    }", "}"]
    return "\n".join(out)


def render(spec: JobsFile) -> str:
    """The whole casc.yaml text."""
    dsl = "\n\n".join(job_dsl(job, spec) for job in spec.jobs.values())
    if "${" in dsl:
        raise ValueError("the Job DSL must not contain ${: JCasC would substitute it")
    casc: dict[str, Any] = {
        "jenkins": {
            "systemMessage": "stackmedic: jobs are defined in deploy/jenkins/jobs.yaml (this file is generated)",
            "globalNodeProperties": [
                {"envVars": {"env": [{"key": k, "value": v} for k, v in spec.environment.items()]}}
            ],
        },
        "jobs": [{"script": dsl + "\n"}],
    }

    class _Literal(str):
        pass

    def literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")

    dumper = type("CascDumper", (yaml.SafeDumper,), {})
    dumper.add_representer(_Literal, literal)
    casc["jobs"][0]["script"] = _Literal(casc["jobs"][0]["script"])
    return HEADER + yaml.dump(casc, Dumper=dumper, sort_keys=False, width=120)


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with --check, compare) the generated casc.yaml."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.jenkins.generate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if the output is not up to date")
    args = parser.parse_args(argv)
    try:
        text = render(load(args.source))
    except ConfigError as exc:
        for line in exc.lines():
            sys.stderr.write(line + "\n")
        return 2
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    if args.check:
        if current != text:
            sys.stderr.write(f"{args.output} is out of date: run python -m deploy.jenkins.generate\n")
            return 1
        return 0
    if current != text:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
