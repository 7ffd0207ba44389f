"""The real services the tests run: MariaDB, dockerd, Prometheus, Alertmanager.

Each is an ordinary process started from the Debian binaries (../shared/ENVIRONMENT.md),
listening on 127.0.0.1 only, with its files in a private folder, and stopped by its PID.
Under CI=true a missing binary fails the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import requests

IN_CI = os.environ.get("CI", "").lower() == "true"
SBIN_PATHS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


def require_binary(name: str) -> str:
    """Path of `name`; skips the test when missing, or fails it under CI=true."""
    path = shutil.which(name) or next(
        (f"{d}/{name}" for d in SBIN_PATHS if os.access(f"{d}/{name}", os.X_OK)), None
    )
    if path:
        return path
    message = f"{name} is not installed (make test installs it: scripts/install-system-deps.sh)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")


NO_SERVICES_ENV = "STACKMEDIC_TESTS_NO_SERVICES"


def refuse_in_fast_loop(what: str) -> None:
    """Fail a test that starts a real service under `make check` (it lacks the services marker)."""
    if os.environ.get(NO_SERVICES_ENV):
        pytest.fail(
            f"this test starts {what} but is not marked `services`: get it through a fixture of "
            "tests/conftest.py (SERVICE_FIXTURES) or mark it, so that `make check` deselects it"
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns a truthy value; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last one
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}; last error: {last_error!r}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Process:
    """A child process with its log in a file, stopped by PID (its whole session)."""

    def __init__(
        self, argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
    ):
        self.argv = argv
        self.log = log
        self._log_file = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check_alive(self, what: str) -> None:
        if not self.alive():
            raise RuntimeError(f"{what} exited with {self.popen.returncode}:\n{_tail(self.log)}")

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the process (and its process group), then SIGKILL after `timeout`."""
        if self.alive():
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.popen.wait(10)
        # children left in its group (e.g. dockerd's containerd) go too
        self._signal(signal.SIGKILL)
        self._log_file.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self._signal(signal.SIGKILL)
        self.popen.wait(10)

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


class MariaDB:
    """A private MariaDB server on 127.0.0.1:port with root's password `root_password`."""

    root_password = "test-root-pw"  # noqa: S105 - a throwaway test server

    def __init__(
        self,
        base_dir: Path,
        port: int | None = None,
        binlog: bool = False,
        tls: tuple[Path, Path, Path] | None = None,
    ):
        self.base_dir = Path(base_dir)
        self.binlog = binlog  # binary logs in ROW format, for point-in-time recovery
        self.tls = tls  # (CA, server certificate, server key): TLS offered, not required
        self.datadir = self.base_dir / "data"
        self.socket = str(self.base_dir / "mysqld.sock")
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.process: Process | None = None

    def start(self) -> MariaDB:
        refuse_in_fast_loop("MariaDB")
        install_db = require_binary("mariadb-install-db")
        mariadbd = require_binary("mariadbd")
        first_start = not self.datadir.exists()
        if first_start:
            self.datadir.mkdir(parents=True)
            # --no-defaults, as for mariadbd below: the machine's /etc/mysql is not this server's
            done = subprocess.run(
                [
                    install_db,
                    "--no-defaults",
                    f"--datadir={self.datadir}",
                    "--user=root",
                    "--auth-root-authentication-method=normal",
                ],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"mariadb-install-db failed ({done.returncode}) for {self.datadir}:\n"
                    f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
                )
        self.process = Process(
            [
                mariadbd,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={self.socket}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=64M",
                "--innodb-log-file-size=48M",
                "--max-connections=300",
                f"--pid-file={self.base_dir / 'mysqld.pid'}",
                *(
                    [
                        f"--log-bin={self.datadir / 'binlog'}",
                        "--server-id=1",
                        "--binlog-format=ROW",
                        # else creating a trigger or routine needs SUPER once binary logs are on
                        "--log-bin-trust-function-creators=1",
                    ]
                    if self.binlog
                    else []
                ),
                *(
                    [f"--ssl-ca={self.tls[0]}", f"--ssl-cert={self.tls[1]}", f"--ssl-key={self.tls[2]}"]
                    if self.tls
                    else []
                ),
            ],
            self.base_dir / "mariadbd.log",
        )
        wait_for(self._ping_socket, 60, f"MariaDB on {self.socket}")
        if first_start:
            self._secure_root()
        wait_for(self._ping_tcp, 30, f"MariaDB on 127.0.0.1:{self.port}")
        return self

    def _ping_socket(self) -> bool:
        assert self.process is not None
        self.process.check_alive("mariadbd")
        import pymysql

        try:
            pymysql.connect(unix_socket=self.socket, user="root", connect_timeout=2).close()
        except pymysql.err.OperationalError as exc:
            # 1045: access denied means it is up (root already has its password)
            return exc.args[0] == 1045
        return True

    def _ping_tcp(self) -> bool:
        self.connect().close()
        return True

    def _secure_root(self) -> None:
        import pymysql

        conn = pymysql.connect(unix_socket=self.socket, user="root", autocommit=True)
        with conn.cursor() as cur:
            pw = self.root_password
            cur.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY %s", (pw,))
            cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")
            # install-db makes password-less root accounts and anonymous users: close them
            cur.execute("SELECT user, host FROM mysql.user WHERE user IN ('root', '')")
            for user, host in cur.fetchall():
                if user == "root" and host in ("localhost", "127.0.0.1", "::1"):
                    cur.execute(f"ALTER USER 'root'@'{host}' IDENTIFIED BY %s", (pw,))
                else:  # anonymous users, and root@<hostname> (unusable with skip-name-resolve)
                    cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")
        conn.close()

    def connect(self, db: str | None = None, user: str = "root", password: str | None = None, **kw: Any):
        """A PyMySQL connection over TCP (autocommit on)."""
        import pymysql

        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=user,
            password=self.root_password if password is None and user == "root" else (password or ""),
            database=db,
            autocommit=True,
            connect_timeout=5,
            read_timeout=60,
            write_timeout=60,
            **kw,
        )

    def execute(self, *statements: str, db: str | None = None) -> list[tuple]:
        """Run statements as root; returns the rows of the last one."""
        conn = self.connect(db)
        try:
            rows: list[tuple] = []
            with conn.cursor() as cur:
                for sql in statements:
                    cur.execute(sql)
                    rows = list(cur.fetchall())
            return rows
        finally:
            conn.close()

    def create_user(self, name: str, password: str, grants: list[str]) -> None:
        """Create `name`@'127.0.0.1' and `name`@'localhost' with `grants` ('SELECT ON db.*')."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                for host in ("127.0.0.1", "localhost"):
                    cur.execute(f"CREATE OR REPLACE USER '{name}'@'{host}' IDENTIFIED BY %s", (password,))
                    for grant in grants:
                        cur.execute(f"GRANT {grant} TO '{name}'@'{host}'")
        finally:
            conn.close()

    def freeze(self) -> None:
        """SIGSTOP the server: connections are accepted by the kernel but nothing answers."""
        assert self.process is not None
        self.process._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process:
            self.process._signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process:
            self.thaw()
            self.process.stop(timeout=30)
            self.process = None

    def kill(self) -> None:
        if self.process:
            self.process.kill()
            self.process.stop()
            self.process = None


BUSYBOX_APPLETS = ("sh", "sleep", "httpd", "cat", "echo", "ls", "kill", "true", "false", "wget", "nc")


class DockerEngine:
    """A private dockerd (own socket, data and exec roots), no bridge, no registry.

    `image` is a local busybox image made by `docker import`; containers run with
    `--network host` to serve on 127.0.0.1.
    """

    image = "local/busybox:test"

    def __init__(self, base_dir: Path):
        self.base_dir = Path(base_dir)
        self.sock = self.base_dir / "docker.sock"
        self.base_url = f"unix://{self.sock}"
        self.process: Process | None = None
        self.client: Any = None

    def start(self) -> DockerEngine:
        refuse_in_fast_loop("dockerd")
        dockerd = require_binary("dockerd")
        require_binary("containerd")
        for d in ("data", "exec"):
            (self.base_dir / d).mkdir(parents=True, exist_ok=True)
        self.process = Process(
            [
                dockerd,
                f"--host={self.base_url}",
                f"--data-root={self.base_dir / 'data'}",
                f"--exec-root={self.base_dir / 'exec'}",
                f"--pidfile={self.base_dir / 'docker.pid'}",
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--ip6tables=false",
            ],
            self.base_dir / "dockerd.log",
        )
        import docker

        def ready() -> bool:
            assert self.process is not None
            self.process.check_alive("dockerd")
            if not self.sock.exists():
                return False
            self.client = docker.DockerClient(base_url=self.base_url, timeout=30)
            return bool(self.client.ping())

        wait_for(ready, 90, "dockerd to answer", interval=0.2)
        self._import_busybox()
        return self

    def _import_busybox(self) -> None:
        busybox = "/bin/busybox"
        if not os.path.exists(busybox):
            require_binary("busybox")
            busybox = shutil.which("busybox") or busybox
        buf = BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for d in ("bin", "www", "tmp", "etc"):
                info = tarfile.TarInfo(d)
                info.type = tarfile.DIRTYPE
                info.mode = 0o1777 if d == "tmp" else 0o755
                tar.addfile(info)
            tar.add(busybox, arcname="bin/busybox")
            for applet in BUSYBOX_APPLETS:
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type = tarfile.SYMTYPE
                info.linkname = "busybox"
                tar.addfile(info)
        self.client.api.import_image_from_data(buf.getvalue(), repository="local/busybox", tag="test")

    def run_http(
        self,
        name: str,
        port: int,
        www_dir: Path | str,
        compose_service: str | None = None,
        project: str = "stack",
        **kwargs: Any,
    ) -> Any:
        """A running container serving `www_dir` on 127.0.0.1:`port` with busybox httpd."""
        labels = {
            "com.docker.compose.project": project,
            "com.docker.compose.service": compose_service or name,
        }
        labels.update(kwargs.pop("labels", {}))
        return self.client.containers.run(
            self.image,
            ["httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", "/www"],
            name=name,
            detach=True,
            network_mode="host",
            volumes={str(www_dir): {"bind": "/www", "mode": "ro"}},
            labels=labels,
            **kwargs,
        )

    def remove_all_containers(self) -> None:
        if self.client is None:
            return
        for c in self.client.containers.list(all=True, sparse=True):
            with contextlib.suppress(Exception):  # best effort clean-up
                c.remove(force=True)

    def stop(self) -> None:
        with contextlib.suppress(Exception):  # the engine may be gone already
            self.remove_all_containers()
        if self.client is not None:
            self.client.close()
        if self.process:
            self.process.stop(timeout=30)
            self.process = None
        self._unmount_leftovers()

    def _unmount_leftovers(self) -> None:
        """dockerd leaves its netns mount behind; unmount what is under our folder."""
        base = str(self.base_dir.resolve())
        with open("/proc/self/mounts") as f:
            points = [line.split()[1] for line in f if line.split()[1].startswith(base + "/")]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


class Prometheus:
    """A private Prometheus on 127.0.0.1 with the given configuration and rule files."""

    def __init__(
        self, base_dir: Path, config: str, rules: dict[str, str] | None = None, port: int | None = None
    ):
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = self.base_dir / "prometheus.yml"
        self.config_path.write_text(config)
        for name, text in (rules or {}).items():
            (self.base_dir / name).write_text(text)
        self.process: Process | None = None

    def start(self) -> Prometheus:
        refuse_in_fast_loop("Prometheus")
        binary = require_binary("prometheus")
        self.process = Process(
            [
                binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.base_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            self.base_dir / "prometheus.log",
            cwd=self.base_dir,
        )

        def ready() -> bool:
            assert self.process is not None
            self.process.check_alive("prometheus")
            return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200

        wait_for(ready, 60, "prometheus to be ready", interval=0.1)
        return self

    def query(self, expr: str, time_: float | None = None) -> list[dict]:
        """Instant query; returns the result list, raises on a query error."""
        params: dict[str, Any] = {"query": expr}
        if time_ is not None:
            params["time"] = time_
        r = requests.get(f"{self.url}/api/v1/query", params=params, timeout=10)
        body = r.json()
        if body.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {body.get('errorType')}: {body.get('error')}")
        return body["data"]["result"]

    def targets_up(self) -> bool:
        r = requests.get(f"{self.url}/api/v1/targets", timeout=5).json()
        active = r["data"]["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)

    def stop(self) -> None:
        if self.process:
            self.process.stop()
            self.process = None


class Alertmanager:
    """A private Alertmanager on 127.0.0.1, clustering off unless `peers` are given."""

    def __init__(
        self,
        base_dir: Path,
        config: str,
        port: int | None = None,
        cluster_port: int | None = None,
        peers: list[str] | None = None,
        log_level: str = "info",
        args: list[str] | None = None,
    ):
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cluster_port = cluster_port
        self.peers = peers or []
        self.log_level = log_level
        self.args = args or []  # more flags (--cluster.peer-timeout=2s ...)
        self.log_path = self.base_dir / "alertmanager.log"
        self.config_path = self.base_dir / "alertmanager.yml"
        self.config_path.write_text(config)
        self.process: Process | None = None

    def start(self) -> Alertmanager:
        refuse_in_fast_loop("Alertmanager")
        binary = require_binary("prometheus-alertmanager")
        cluster = f"127.0.0.1:{self.cluster_port}" if self.cluster_port else ""
        argv = [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.base_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--cluster.listen-address={cluster}",
            f"--log.level={self.log_level}",
        ]
        argv += [f"--cluster.peer={p}" for p in self.peers]
        argv += self.args
        self.process = Process(argv, self.log_path, cwd=self.base_dir)

        def ready() -> bool:
            assert self.process is not None
            self.process.check_alive("alertmanager")
            return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200

        wait_for(ready, 60, "alertmanager to be ready", interval=0.1)
        return self

    def alerts(self) -> list[dict]:
        return requests.get(f"{self.url}/api/v2/alerts", timeout=5).json()

    def reload(self, config: str) -> None:
        """Replace the configuration and reload it (POST /-/reload); raises when refused."""
        self.config_path.write_text(config)
        response = requests.post(f"{self.url}/-/reload", timeout=10)
        if response.status_code != 200:
            raise RuntimeError(f"alertmanager refused the configuration: {response.text}")

    def log(self) -> str:
        """What it has logged so far (--log.level=debug shows each mute and inhibition)."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process:
            self.process.stop()
            self.process = None
