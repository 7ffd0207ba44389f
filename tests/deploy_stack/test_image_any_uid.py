"""The image fits OpenShift's restricted-v2 SCC: its state folders belong to group 0 and are
group-writable, so the programs work as an arbitrary uid in group 0, which is how OpenShift runs
them (and no fixed uid is needed anywhere). Proven by running the real receiver as such a uid
against a folder prepared exactly as the Dockerfile prepares it; the same run against a folder
prepared the old way (owner 10001, mode 0750) fails, so the test can fail."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.services import free_port, wait_for
from tests.deploy_stack.conftest import REPO
from tests.deploy_stack.test_dockerfile import parse

# an OpenShift-style uid: from the namespace's range, in no passwd file
ARBITRARY_UID = 1000680000
INSTALL = re.compile(r"install -d -o (\S+) -g (\S+) -m (\d+) ((?:/\S+\s*)+)")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another uid")


def prepared_dirs() -> list[tuple[str, int, int, int]]:
    """(path, uid, gid, mode) of each folder the runtime stage's RUN lines create."""
    _, stages = parse((REPO / "Dockerfile").read_text())
    runtime = next(s for s in stages if s.name == "stackmedic")
    out = []
    for run in runtime.commands("RUN"):
        for owner, group, mode, paths in INSTALL.findall(run):
            out += [(p, int(owner), int(group), int(mode, 8)) for p in paths.split()]
    return out


def image_user() -> tuple[str, str]:
    _, stages = parse((REPO / "Dockerfile").read_text())
    runtime = next(s for s in stages if s.name == "stackmedic")
    user, _, group = runtime.commands("USER")[-1].partition(":")
    return user, group


@pytest.fixture
def root() -> Iterator[Path]:
    """A scratch root every uid can traverse (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="stackmedic-anyuid-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def prepare(root: Path, path: str, uid: int, gid: int, mode: int) -> Path:
    folder = root / path.lstrip("/")
    folder.mkdir(parents=True)
    for parent in folder.relative_to(root).parents:
        (root / parent).chmod(0o755)
    os.chown(folder, uid, gid)
    folder.chmod(mode)
    return folder


def interpreter() -> list[str]:
    """A Python of this version that another uid may run, with this venv's packages on its path
    (the venv's own interpreter may live under root's 0700 home)."""
    candidates = [
        os.path.realpath(sys.executable),
        f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}",
    ]
    for exe in candidates:
        if os.path.exists(exe) and all(
            os.stat(p).st_mode & 0o001 for p in [exe, *map(str, Path(exe).parents)]
        ):
            site_dir = sysconfig.get_paths()["purelib"]
            return [
                exe,
                "-c",
                f"import site, runpy; site.addsitedir({site_dir!r}); "
                "runpy.run_module('stackmedic.receiver', run_name='__main__')",
            ]
    pytest.fail(f"no Python {sys.version_info[:2]} that another uid can run: {candidates}")


def run_receiver(state_dir: Path) -> tuple[int | None, str, list[Path]]:
    """Start the receiver as ARBITRARY_UID:0 with its SQLite store in `state_dir`; (exit code
    if it died, its output, files it made). Stopped by its PID."""
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": "/tmp",
        "STACKMEDIC_RECEIVER_STATE_DIR": str(state_dir),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(
            [*interpreter(), f"--web.listen-address=127.0.0.1:{port}"],
            user=ARBITRARY_UID,
            group=0,
            extra_groups=[],
            env=env,
            cwd="/",
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def ready() -> bool:
            if proc.poll() is not None:
                return True
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as answer:
                    return answer.status == 200
            except OSError:
                return False

        try:
            wait_for(ready, timeout=60, what="the receiver to answer /-/ready or exit")
            died = proc.poll()
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        log.seek(0)
        return died, log.read(), sorted(state_dir.iterdir())


def test_the_image_needs_no_fixed_uid_and_its_group_is_0():
    user, group = image_user()
    assert user.isdigit() and int(user) != 0
    assert group == "0"
    dirs = prepared_dirs()
    assert {d[0] for d in dirs} >= {"/var/lib/stackmedic-receiver", "/var/lib/stackmedic"}
    for path, _, gid, mode in dirs:
        assert gid == 0, path
        assert mode & 0o070 == 0o070, f"{path}: group cannot write ({oct(mode)})"
        assert mode & 0o007 == 0, f"{path}: others may enter ({oct(mode)})"


def test_the_receiver_runs_as_an_arbitrary_uid_in_group_0(root: Path):
    path, uid, gid, mode = next(d for d in prepared_dirs() if d[0] == "/var/lib/stackmedic-receiver")
    state = prepare(root, path, uid, gid, mode)
    died, output, files = run_receiver(state)
    assert died is None, output
    assert files, output
    for f in files:
        st = f.stat()
        assert (st.st_uid, st.st_gid) == (ARBITRARY_UID, 0), f


def test_the_old_image_folder_would_not_do(root: Path):
    """The folder as the image made it before (10001:10001, 0750): the same run fails."""
    state = prepare(root, "/var/lib/stackmedic-receiver", 10001, 10001, 0o750)
    died, output, files = run_receiver(state)
    assert died not in (None, 0), output
    assert files == []
    assert "ermission denied" in output or "unable to open database file" in output, output
