"""The suite runs offline (tests/conftest.py sets GENFLOW_OFFLINE=1): connections off this
machine fail with a message that says why, in this process and in the processes it starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

from genflow.offline import NetworkBlockedError, is_local

OUTSIDE = ("203.0.113.7", 443)  # TEST-NET-3: documentation addresses, never a real host


def test_the_suite_itself_runs_offline():
    assert os.environ["GENFLOW_OFFLINE"] == "1"
    with pytest.raises(NetworkBlockedError, match=r"tried to reach host '203\.0\.113\.7'"):
        socket.create_connection(OUTSIDE, timeout=1)
    with pytest.raises(NetworkBlockedError, match=r"tried to reach 203\.0\.113\.7:443"):
        socket.socket().connect(OUTSIDE)
    with pytest.raises(NetworkBlockedError, match="host 'pypi.org'"):
        socket.getaddrinfo("pypi.org", 443)
    with pytest.raises(NetworkBlockedError, match="download=False"):
        socket.socket().connect_ex(OUTSIDE)


def test_loopback_stays_open():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted = threading.Thread(target=lambda: server.accept()[0].close())
    accepted.start()
    with socket.create_connection(("localhost", port), timeout=5):
        pass
    accepted.join(5)
    server.close()
    assert is_local("::1") and is_local("127.0.0.1") and is_local("0.0.0.0")
    assert not is_local("8.8.8.8") and not is_local("example.org")


def test_a_download_fails_instead_of_reaching_the_network(tmp_path):
    from torchvision.datasets import MNIST

    with pytest.raises((RuntimeError, NetworkBlockedError)):
        MNIST(str(tmp_path), download=True)
    assert not any(p.is_file() and p.stat().st_size > 0 for p in tmp_path.rglob("*.gz"))


def test_child_processes_inherit_the_guard():
    code = "import genflow, socket; socket.create_connection(('203.0.113.7', 443), timeout=1)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "NetworkBlockedError" in result.stderr and "GENFLOW_OFFLINE=1" in result.stderr
    assert os.environ["HTTPS_PROXY"] == "http://127.0.0.1:9"  # non-Python children: refused
