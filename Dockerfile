# stackmedic: one image for stackmedic-exporter, stackmedic-receiver and stackmedic-job.
#
#   docker build -t stackmedic:local .                          # the default target
#   docker build --target jenkins -t stackmedic-jenkins:local .  # Jenkins + JCasC + stackmedic-job
#
# The builder stage compiles wheels and installs them into a virtualenv; the final stages
# copy only that virtualenv: no compiler, no pip, no wheel or package cache reaches them.
# tests/deploy_stack/test_dockerfile.py checks those properties.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG JENKINS_IMAGE=jenkins/jenkins:2.440.3-lts-jdk17

# ---- builder: wheels for stackmedic and its dependencies, then a virtualenv of them ----
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# a compiler only for dependencies without a wheel for this platform (e.g. psutil on some arches)
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stackmedic ./stackmedic
COPY exporter ./exporter
COPY receiver ./receiver
COPY jobs ./jobs
RUN pip wheel --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/stackmedic \
    && pip --python /opt/stackmedic/bin/python install --no-index --find-links /wheels stackmedic

# ---- stackmedic: the runtime image (exporter, receiver, job programs) ----
FROM ${PYTHON_IMAGE} AS stackmedic
LABEL org.opencontainers.image.title="stackmedic" \
      org.opencontainers.image.description="Prometheus exporter, Alertmanager webhook receiver and job programs of stackmedic" \
      org.opencontainers.image.licenses="Apache-2.0"
# mariadb-client: stackmedic-job's backup, verify and restore run mariadb-dump and mariadb.
# pip, setuptools and wheel leave: nothing installs packages at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends mariadb-client \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/* \
    && python -m pip uninstall --yes pip setuptools wheel \
    && rm -rf /root/.cache \
    # OpenShift (restricted-v2) runs the pod as an arbitrary uid whose group is 0: the state
    # folders belong to group 0 and are group-writable, so any uid of group 0 can write them;
    # elsewhere the default user 10001 (of group 0) owns them. Group 0 grants nothing else.
    && useradd --system --uid 10001 --gid 0 --no-create-home --home-dir /nonexistent \
               --shell /usr/sbin/nologin stackmedic \
    && install -d -o 10001 -g 0 -m 2770 /var/lib/stackmedic-receiver /var/lib/stackmedic
COPY --from=builder /opt/stackmedic /opt/stackmedic
# HOME: an arbitrary uid has no passwd entry; mariadb's clients look for ~/.my.cnf there
ENV PATH=/opt/stackmedic/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
# numeric, so that runtimes enforcing "non-root" (Kubernetes runAsNonRoot) can verify it; no
# runtime needs this uid (tests/deploy_stack/test_image_any_uid.py)
USER 10001:0
WORKDIR /var/lib/stackmedic
EXPOSE 9877 9878
CMD ["stackmedic-exporter", "--web.listen-address=:9877"]

# ---- jenkins: Jenkins with JCasC, Job DSL and stackmedic-job for the jobs it runs ----
FROM ${JENKINS_IMAGE} AS jenkins-base
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 mariadb-client \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*

# the virtualenv is built against the Jenkins image's own python3 (a venv is not portable
# between interpreters), from the builder's wheels, in a stage of its own
FROM jenkins-base AS jenkins-venv
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv python3-pip \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /wheels /wheels
RUN python3 -m venv --without-pip /opt/stackmedic \
    && python3 -m pip --python /opt/stackmedic/bin/python install --no-cache-dir \
       --no-index --find-links /wheels stackmedic

FROM jenkins-base AS jenkins
COPY --from=jenkins-venv /opt/stackmedic /opt/stackmedic
RUN ln -s /opt/stackmedic/bin/stackmedic-job /usr/local/bin/stackmedic-job \
    # the backups volume takes this owner when Docker first fills it: Jenkins writes there
    && install -d -o jenkins -g jenkins -m 0755 /var/backups/stackmedic
USER jenkins
# JCasC and Job DSL read deploy/jenkins/casc.yaml; its jobs are pipelines (node, sh,
# readFile, timeout, build, cron triggers): the Pipeline plugin suite; matrix-auth for
# deploy/compose/jenkins/security.yaml's per-job rights (3.2 or newer: its `entries` syntax)
RUN jenkins-plugin-cli --plugins configuration-as-code job-dsl workflow-aggregator matrix-auth \
    && rm -rf /var/jenkins_home/.cache
