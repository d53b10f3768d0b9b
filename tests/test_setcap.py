"""The privilege hint's recipe works: a copy of Python with CAP_NET_RAW captures, nothing else.

The process runs as root without capabilities (securebits ``noroot``: root's uid no longer
brings them), so it reads the same files as the tests; only the file capabilities of the
copy give it the packet socket. Run by hand as nobody, the same commands capture on lo.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

import rawinspect
from conftest import cannot_run

pytestmark = pytest.mark.privileged

NO_CAPS = ["setpriv", "--securebits", "+noroot,+noroot_locked", "--inh-caps=-all"]


@pytest.fixture
def capture_python(tmp_path: Path) -> Iterator[Path]:
    """A virtual environment in tmp_path seeing this one's packages; the copy in its bin/."""
    if os.geteuid() != 0 or not (shutil.which("setcap") and shutil.which("setpriv")):
        cannot_run("needs root, setcap and setpriv to grant and drop capabilities")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (purelib,) = (venv / "lib").glob("python*/site-packages")
    paths = [*site.getsitepackages(), str(Path(rawinspect.__file__).parent.parent)]
    (purelib / "outer.pth").write_text("\n".join(paths) + "\n")
    copy = venv / "bin" / "python3-capture"
    shutil.copy2(os.path.realpath(venv / "bin" / "python3"), copy)
    subprocess.run(["setcap", "cap_net_raw,cap_net_admin+eip", str(copy)], check=True)
    yield copy
    copy.unlink()  # no capable interpreter left behind in the tmp directories pytest keeps


def test_the_copy_with_the_capability_captures(capture_python: Path) -> None:
    args = ["-m", "rawinspect", "capture", "-q", "-T", "jsonl", "-c", "1", "--duration", "5"]
    env = dict(os.environ, PYTHONSAFEPATH="1")
    plain = subprocess.run([*NO_CAPS, str(capture_python.with_name("python3")), *args],
                           capture_output=True, text=True, env=env, timeout=30)
    assert plain.returncode == 77, plain.stderr
    assert "sudo setcap cap_net_raw,cap_net_admin+eip" in plain.stderr
    assert "python3-capture -m rawinspect capture" in plain.stderr
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        proc = subprocess.Popen([*NO_CAPS, str(capture_python), *args, "-f", f"tcp port {port}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert proc.stderr is not None
        started = proc.stderr.readline()   # printed once the socket is open: connect now
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        out, err = proc.communicate(timeout=30)
    assert "capturing on" in started, started + err
    assert proc.returncode == 0, err
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["flags"] == "S" and row["server"].endswith(f":{port}")
