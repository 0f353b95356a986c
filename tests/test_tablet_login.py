"""The tablet served properly (issue 21): HTTPS with a certificate from the site CA (deploy/ca.sh), a wss:// broker
with password accounts, and a sign-in form instead of credentials in the address. Real mosquitto, headless Chromium."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import MOSQUITTO, Broker, free_port, wait_port
from tablet_kit import browsers, js, severe  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[1]
SITE, USER, PASSWORD = "branch-9", "tablet-branch-9-1", "correct horse battery"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site CA and a server certificate for 127.0.0.1/localhost, made by deploy/ca.sh."""
    d = tmp_path_factory.mktemp("pki") / SITE
    for args in (["init", SITE], ["server", "localhost", "127.0.0.1"]):
        subprocess.run([str(ROOT / "deploy" / "ca.sh"), str(d), *args], check=True, capture_output=True, timeout=60)
    return d


@pytest.fixture
def wss_broker(tmp_path: Path, pki: Path) -> Iterator[Broker]:
    """mosquitto with password accounts only, its websockets listener over TLS with the site certificate."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed")
    d = tmp_path / "broker"
    d.mkdir()
    os.chmod(d, 0o777)
    b = Broker(d, users={USER: PASSWORD})
    conf = b.conf.read_text().replace(f"listener {b.ws_port} {b.host}\nprotocol websockets\n",
                                      f"listener {b.ws_port} {b.host}\nprotocol websockets\n"
                                      f"certfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n")
    assert "certfile" in conf
    b.conf.write_text(conf)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def https_tablet(pki: Path, wss_broker: Broker) -> Iterator[str]:
    """``edge-emotion tablet`` over HTTPS with the site certificate, a bare / sent to the site's page."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edge", "tablet", "--host", "127.0.0.1", "--port", str(port),
                             "--cert", str(pki / "server.crt"), "--key", str(pki / "server.key"), "--site", SITE,
                             "--broker", f"wss://127.0.0.1:{wss_broker.ws_port}", "--lang", "en"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert wait_port("127.0.0.1", port, timeout=15), "edge-emotion tablet did not start"
        yield f"https://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_https_with_the_site_ca_only(pki: Path, https_tablet: str) -> None:
    """The site CA verifies the server; without it the connection fails; plain http gets nothing; a bare / goes to
    the site's page; HSTS is sent."""
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    with urllib.request.urlopen(https_tablet + "/", context=ctx, timeout=5) as r:
        assert r.status == 200 and r.url.startswith(f"{https_tablet}/?site={SITE}&broker=wss")
        assert r.headers["Strict-Transport-Security"] and b"login-form" in r.read()
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(https_tablet + "/", context=ssl.create_default_context(), timeout=5)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(https_tablet.replace("https", "http") + "/", timeout=5)


def test_a_silent_connection_does_not_stall_the_https_server(pki: Path, https_tablet: str) -> None:
    """The TLS handshake runs per connection: one client that connects and says nothing blocks no one else."""
    import socket

    port = int(https_tablet.rsplit(":", 1)[1])
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    with (socket.create_connection(("127.0.0.1", port)),  # no ClientHello, ever
          urllib.request.urlopen(https_tablet + "/index.html", context=ctx, timeout=5) as r):
        assert r.status == 200


def _state(drv: Any) -> dict[str, Any]:
    return drv.execute_script("""return {login: !document.getElementById('login').hidden,
        error: document.getElementById('login-error').hidden ? '' : document.getElementById('login-error').textContent,
        conn: document.getElementById('conn').dataset.state, url: location.href,
        signout: !document.getElementById('signout').hidden};""")


def _sign_in(drv: Any, user: str, password: str) -> None:
    drv.find_element("id", "login-user").clear()
    drv.find_element("id", "login-user").send_keys(user)
    drv.find_element("id", "login-password").send_keys(password)
    drv.find_element("id", "login-submit").click()


def test_sign_in_form_over_https_and_wss(browsers: Any, https_tablet: str) -> None:  # noqa: F811
    drv = browsers()
    drv.get(https_tablet + "/")
    js(drv, "return !document.getElementById('login').hidden")  # the broker refused an anonymous connection
    assert drv.current_url.startswith(f"{https_tablet}/?site={SITE}")
    assert _state(drv)["error"] == "", "a fresh tablet is asked to sign in, not told it failed"
    _sign_in(drv, USER, "wrong password")
    js(drv, "return !document.getElementById('login').hidden && !document.getElementById('login-error').hidden")
    assert "refused" in _state(drv)["error"]
    _sign_in(drv, USER, PASSWORD)
    js(drv, "return document.getElementById('conn').dataset.state === 'online'")
    st = _state(drv)
    assert not st["login"] and st["signout"] and PASSWORD.split()[0] not in st["url"], st
    assert "password" not in st["url"]
    # kept on the device: a reload connects without asking
    drv.refresh()
    js(drv, "return document.getElementById('conn').dataset.state === 'online'")
    assert not _state(drv)["login"]
    # a link naming another broker does not get the kept login: asked instead, nothing connects, nothing forgotten
    drv.get(f"{https_tablet}/?site={SITE}&broker=wss://127.0.0.1:{free_port()}")
    js(drv, "return !document.getElementById('login').hidden")
    st = _state(drv)
    assert "another broker" in st["error"] and st["conn"] != "online", st
    drv.get(f"{https_tablet}/")
    js(drv, "return document.getElementById('conn').dataset.state === 'online'")
    # credentials in the address are refused and removed from it (and from history)
    drv.get(f"{https_tablet}/?site={SITE}&username={USER}&password=in-the-url")
    js(drv, "return !document.getElementById('login').hidden")
    st = _state(drv)
    assert "not accepted" in st["error"] and "in-the-url" not in st["url"] and "username" not in st["url"], st
    assert not severe(drv)
    # sign out: forgotten, asked again
    drv.get(f"{https_tablet}/")
    js(drv, "return document.getElementById('conn').dataset.state === 'online'")
    drv.find_element("id", "signout").click()
    js(drv, "return !document.getElementById('login').hidden")
    assert drv.execute_script("return localStorage.length + sessionStorage.length") == 0
