"""deploy/ansible role edge_tablet (issue 21), run for real into a scratch root: the app, the site CA's certificate
and a sandboxed unit; the installed server.py (standard library only) then serves HTTPS that the site CA verifies."""

from __future__ import annotations

import json
import os
import re
import shlex
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, wait_port

ROOT = Path(__file__).resolve().parents[1]
ANSIBLE_DIR = ROOT / "deploy" / "ansible"
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
VENDOR = ROOT / "edge" / "tablet" / "vendor" / "mqtt.min.js"
SITE = "branch-7"


@pytest.mark.skipif(not PLAYBOOK.exists() or not VENDOR.is_file(),
                    reason="ansible-core (pip install -e .[test]) or edge/tablet/vendor/mqtt.min.js is missing")
def test_tablet_role_installs_an_https_server_with_the_site_certificate(tmp_path: Path) -> None:
    pki_dir, root, port = tmp_path / "pki", tmp_path / "root", free_port()
    for args in (["init", SITE], ["server", "localhost", "127.0.0.1"]):
        subprocess.run([str(ROOT / "deploy" / "ca.sh"), str(pki_dir / SITE), *args], check=True, capture_output=True)
    user = os.environ.get("USER") or "root"
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "edge_become": False,
            "edge_root": str(root), "edge_pki_dir": str(pki_dir), "edge_site_id": SITE,
            "edge_tablet_port": port, "edge_tablet_bind": "127.0.0.1", "edge_tablet_lang": "zh-CN",
            "edge_tablet_broker_url": "wss://127.0.0.1:9001", "edge_tablet_manage_service": False,
            "edge_tablet_file_owner": user}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"children": {"tablet_servers": {"hosts": {"tablet-t": host}}}}}))
    run = subprocess.run([str(PLAYBOOK), "-i", str(inventory), "site.yml", "--limit", "tablet_servers"],
                         cwd=ANSIBLE_DIR, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp")})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    app, etc = root / "opt" / "edge-emotion-tablet", root / "etc" / "edge-emotion-tablet"
    page = (ROOT / "edge" / "tablet" / "index.html").read_text()
    for name in ["index.html", "server.py", *re.findall(r'(?:src|href)="([\w./-]+\.(?:js|css))"', page)]:
        assert (app / name).read_bytes() == (ROOT / "edge" / "tablet" / name).read_bytes(), name
    assert oct((etc / "tablet.key").stat().st_mode & 0o777) == "0o600"
    assert oct(etc.stat().st_mode & 0o777) == "0o700"
    unit = (root / "etc" / "systemd" / "system" / "edge-emotion-tablet.service").read_text()
    for line in ("DynamicUser=yes", "LoadCredential=tablet.key:/etc/edge-emotion-tablet/tablet.key",
                 "ProtectSystem=strict", "CapabilityBoundingSet=", "NoNewPrivileges=yes"):
        assert f"\n{line}\n" in unit, line
    assert "password" not in unit.lower()
    exec_start = next(ln for ln in unit.splitlines() if ln.startswith("ExecStart="))[len("ExecStart="):]
    argv = shlex.split(exec_start.replace("${CREDENTIALS_DIRECTORY}", str(etc)))
    assert argv[0] == "/usr/bin/python3" and argv[1] == "/opt/edge-emotion-tablet/server.py"
    argv[:2] = [sys.executable, str(app / "server.py")]  # as systemd would run it, from the scratch root
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={"PATH": os.environ.get("PATH", "")})  # no venv packages: standard library only
    try:
        assert wait_port("127.0.0.1", port, timeout=10), proc.stdout.read() if proc.stdout else ""
        ctx = ssl.create_default_context(cafile=str(pki_dir / SITE / "ca.crt"))
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/", context=ctx, timeout=5) as r:
            assert r.url == (f"https://127.0.0.1:{port}/?site={SITE}&broker=wss%3A%2F%2F127.0.0.1%3A9001"
                             "&lang=zh-CN"), r.url
            assert b'id="login-form"' in r.read()
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"https://127.0.0.1:{port}/server.py", context=ctx, timeout=5)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
