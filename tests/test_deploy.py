"""deploy/: Ansible roles run for real into a scratch root (connection: local), the CA helper, and the generated
site broker started as a real mosquitto with its TLS certificates, password file and ACLs."""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import shutil
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge import __version__
from edge.config import load_config, parse_config
from tests.conftest import MOSQUITTO, free_port, wait_port

yaml = pytest.importorskip("yaml", reason="PyYAML comes with ansible-core (pip install -e .[test])")
ROOT = Path(__file__).resolve().parent.parent
ANSIBLE_DIR = ROOT / "deploy" / "ansible"
CA_SH = ROOT / "deploy" / "ca.sh"
PLAYBOOK_BIN = Path(sys.executable).parent / "ansible-playbook"
SITE, PREFIX = "site-t", "edge-emotion"
TOPIC = f"{PREFIX}/{SITE}"
ACCOUNTS = {"tablet-t": ("tablet", "tab-pass-1"), "ops-t": ("operator", "ops-pass-1"),
            "ha-t": ("homeassistant", "ha-pass-1")}

pytestmark = [
    pytest.mark.skipif(not PLAYBOOK_BIN.exists(), reason="ansible-core is not installed (pip install -e .[test])"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
]


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"), "ANSIBLE_HOME": str(tmp / "ahome"),
            "ANSIBLE_LOCAL_TEMP": str(tmp / "atmp"), "ANSIBLE_REMOTE_TEMP": str(tmp / "atmp"),
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_DEPRECATION_WARNINGS": "0", "ANSIBLE_SYSTEM_WARNINGS": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def playbook(tmp: Path, inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run deploy/ansible/site.yml with ``inventory``; stdout+stderr in ``.stdout``."""
    return subprocess.run([str(PLAYBOOK_BIN), "-i", str(inventory), "site.yml", *args], cwd=ANSIBLE_DIR,
                          env=_env(tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)


def ca(*args: str) -> None:
    """Run deploy/ca.sh."""
    subprocess.run([str(CA_SH), *args], check=True, capture_output=True, text=True, timeout=60)


@dataclass
class Deployment:
    """The scratch root after one run of site.yml (broker + kiosk on localhost)."""

    tmp: Path
    root: Path
    pki: Path
    other_pki: Path
    inventory: Path
    mqtts_port: int
    ws_port: int
    first_run: str


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """Make a site CA with deploy/ca.sh and run site.yml once into a temporary root."""
    tmp = tmp_path_factory.mktemp("deploy")
    os.chmod(tmp, 0o755)
    root, pki_dir, other = tmp / "root", tmp / "pki", tmp / "other-pki"
    pki = pki_dir / SITE
    ca(str(pki), "init", SITE)
    ca(str(pki), "server", "localhost", "127.0.0.1")
    ca(str(pki), "client", "kiosk-a", "kiosk-b", "ops-t")
    ca(str(other), "init", "other")
    ca(str(other), "client", "kiosk-a")
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    mqtts_port, ws_port = free_port(), free_port()
    common = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "edge_become": False,
              "edge_root": str(root), "edge_pki_dir": str(pki_dir), "edge_topic_prefix": PREFIX}
    kiosk = {"edge_site_id": SITE, "edge_kiosk_id": "kiosk-a", "edge_kiosk_counter_name": "Counter A \"east\"",
             "edge_kiosk_broker_host": "127.0.0.1", "edge_kiosk_broker_port": mqtts_port,
             "edge_kiosk_install_apt": False, "edge_kiosk_manage_user": False, "edge_kiosk_manage_service": False,
             "edge_kiosk_install_package": False, "edge_kiosk_wait_online": False,
             "edge_kiosk_venv": str(Path(sys.executable).parent.parent), "edge_kiosk_version": __version__,
             "edge_kiosk_user": user, "edge_kiosk_group": group, "edge_kiosk_file_owner": user,
             "edge_kiosk_fleet": {"logging": {"level": "INFO"}, "camera": {"width": 640, "height": 480}},
             "edge_kiosk_defaults": {"alerts": {"language": "zh-CN", "watch_threshold": 0.45},
                                     "camera": {"height": None},
                                     "privacy": {"profile": "cn", "notice_text": {"zh-CN": "本柜台使用情绪感知设备："
                                                                                 "仅在本机估计情绪，不录像、不识别身份。"}}},
             "edge_kiosk_config": {"camera": {"source": "0"}, "microphone": {"source": "USB PnP"},
                                   "analysis": {"customer_zone": [0.25, 0, 1, 1], "voice": False},
                                   "privacy": {"staff_zones": [[[0, 0], [0.3, 0], [0.22, 1], [0, 1]]]},
                                   "alerts": {"alert_threshold": 0.65}}}
    conf_lines = [f"user {user}", "persistence false", f"log_dest file {tmp / 'mosquitto.log'}", "log_type all"]
    broker = {"edge_site_id": SITE, "edge_broker_bind": "127.0.0.1", "edge_broker_mqtts_port": mqtts_port,
              "edge_broker_ws_port": ws_port, "edge_broker_ws_tls": False, "edge_broker_install_apt": False,
              "edge_broker_manage_service": False, "edge_broker_file_owner": user, "edge_broker_file_group": group,
              "edge_broker_extra_conf": conf_lines, "edge_broker_extra_kiosks": ["kiosk-b", "kiosk_c"],
              "edge_broker_homeassistant_prefix": "homeassistant",
              "edge_broker_accounts": [{"name": n, "role": r, "password": p} for n, (r, p) in ACCOUNTS.items()]}
    inventory = tmp / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"vars": common, "children": {
        "brokers": {"hosts": {"broker-t": broker}}, "kiosks": {"hosts": {"kiosk-t": kiosk}}}}}))
    run = playbook(tmp, inventory)
    assert run.returncode == 0, run.stdout[-6000:]
    return Deployment(tmp, root, pki, other, inventory, mqtts_port, ws_port, run.stdout)


def test_ansible_lint_production_profile() -> None:
    """Issue 22: ansible-lint reported 47 violations (46 var-naming[no-role-prefix]); only `min` passed."""
    lint = Path(sys.executable).parent / "ansible-lint"
    if not lint.exists():
        pytest.skip("ansible-lint is not installed (pip install -e .[test])")
    r = subprocess.run([str(lint), "--offline", "--nocolor", "--profile", "production"], cwd=ANSIBLE_DIR,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "Profile 'production' was required, and it passed" in r.stdout + r.stderr, (
        r.stdout[-4000:] + r.stderr[-2000:])


def test_kiosk_variables_under_their_old_names_are_refused(deployed: Deployment) -> None:
    """An inventory written for the unprefixed names would be silently ignored: the play stops and names them."""
    run = playbook(deployed.tmp, deployed.inventory, "--limit", "kiosk-t", "--tags", "config",
                   "-e", json.dumps({"edge_version": "9.9", "edge_broker_host": "x"}))
    assert run.returncode != 0 and "now carry its prefix" in run.stdout, run.stdout[-3000:]
    assert "edge_broker_host" in run.stdout and "edge_version" in run.stdout


def test_playbook_syntax_check_on_the_example_inventory(tmp_path: Path) -> None:
    run = playbook(tmp_path, ANSIBLE_DIR / "inventory.example" / "hosts.yml", "--syntax-check")
    assert run.returncode == 0, run.stdout
    run = subprocess.run([str(PLAYBOOK_BIN.parent / "ansible-inventory"), "-i", "inventory.example/hosts.yml",
                          "--list"], cwd=ANSIBLE_DIR, env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    hv = json.loads(run.stdout)["_meta"]["hostvars"]
    kiosks = [h for h, v in hv.items() if "edge_kiosk_id" in v]
    assert len(kiosks) == 5 and {hv[h]["edge_site_id"] for h in kiosks} == {"branch-0042", "branch-0107"}


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Ansible's ``combine(recursive=True)``: mappings merge, anything else (lists too) replaces."""
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}


def test_example_inventory_kiosk_settings_are_valid_configs() -> None:
    """Every example kiosk's fleet < site < kiosk settings pass the config schema (what the role then renders)."""
    inv = ANSIBLE_DIR / "inventory.example"
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())["all"]["children"]
    fleet = yaml.safe_load((inv / "group_vars" / "all.yml").read_text())
    checked = 0
    for group in ("branch_0042", "branch_0107"):
        site = yaml.safe_load((inv / "group_vars" / f"{group}.yml").read_text())
        for host in hosts[group]["hosts"]:
            if host not in hosts["kiosks"]["hosts"]:
                continue
            kiosk = yaml.safe_load((inv / "host_vars" / f"{host}.yml").read_text())
            data = _merge(_merge(fleet["edge_kiosk_fleet"], site["edge_kiosk_defaults"]), kiosk["edge_kiosk_config"])
            data = _merge(_drop_none(data), {"identity": {"site_id": site["edge_site_id"],
                                                          "kiosk_id": kiosk["edge_kiosk_id"],
                                                          "counter_name": kiosk["edge_kiosk_counter_name"]}})
            parse_config(data, host)  # raises ConfigError with every problem
            checked += 1
    assert checked == 5


def test_ca_helper_is_idempotent_and_keys_are_private(deployed: Deployment) -> None:
    pki = deployed.pki
    for key in [pki / "ca.key", pki / "server.key", *(pki / "clients").glob("*.key")]:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    before = {p: p.read_bytes() for p in pki.rglob("*") if p.is_file()}
    ca(str(pki), "init", SITE)
    ca(str(pki), "server", "localhost", "127.0.0.1")
    ca(str(pki), "client", "kiosk-a")
    assert {p: p.read_bytes() for p in pki.rglob("*") if p.is_file()} == before
    text = subprocess.run(["openssl", "x509", "-in", str(pki / "server.crt"), "-noout", "-ext", "subjectAltName"],
                          capture_output=True, text=True, check=True).stdout
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text
    subj = subprocess.run(["openssl", "x509", "-in", str(pki / "clients" / "kiosk-a.crt"), "-noout", "-subject"],
                          capture_output=True, text=True, check=True).stdout
    assert "CN = kiosk-a" in subj or "CN=kiosk-a" in subj
    ca(str(pki), "server", "localhost")  # SAN list changed: reissued with the same key
    assert (pki / "server.crt").read_bytes() != before[pki / "server.crt"]
    assert (pki / "server.key").read_bytes() == before[pki / "server.key"]
    ca(str(pki), "server", "localhost", "127.0.0.1")


def test_kiosk_role_renders_a_valid_config_and_installs_files(deployed: Deployment) -> None:
    etc = deployed.root / "etc" / "edge-emotion"
    cfg = load_config(etc / "kiosk.toml")
    assert (cfg.identity.site_id, cfg.identity.kiosk_id, cfg.identity.counter_name) == (SITE, "kiosk-a",
                                                                                         'Counter A "east"')
    assert cfg.camera.source == "0" and cfg.camera.width == 640 and cfg.camera.height is None  # null drops a key
    assert cfg.microphone.source == "USB PnP" and cfg.analysis.customer_zone == (0.25, 0.0, 1.0, 1.0)
    assert cfg.analysis.voice is False and cfg.analysis.face is True
    assert cfg.alerts.watch_threshold == 0.45 and cfg.alerts.alert_threshold == 0.65  # site default + kiosk
    assert cfg.alerts.language == "zh-CN" and cfg.privacy.profile == "cn" and len(cfg.privacy.staff_zones) == 1
    assert cfg.mqtt.port == deployed.mqtts_port and cfg.mqtt.tls is not None
    assert cfg.mqtt.tls.key_file == str(etc / "tls" / "kiosk.key")
    assert cfg.models.dir == str(deployed.root / "opt" / "edge-emotion" / "models")
    assert "Validated with `edge-emotion check-config`" in (etc / "kiosk.toml").read_text()
    modes = {"kiosk.toml": 0o640, "tls/kiosk.key": 0o640, "tls/kiosk.crt": 0o644, "tls/ca.crt": 0o644,
             "tls": 0o750, ".": 0o750}
    for rel, mode in modes.items():
        assert stat.S_IMODE((etc / rel).stat().st_mode) == mode, rel
    assert (etc / "tls" / "kiosk.key").read_bytes() == (deployed.pki / "clients" / "kiosk-a.key").read_bytes()
    unit = deployed.root / "etc" / "systemd" / "system" / "edge-emotion.service"
    assert unit.read_bytes() == (ROOT / "systemd" / "edge-emotion.service").read_bytes()
    # the inventory's user and paths reach the unit through a drop-in (the shipped unit names /opt and its user)
    dropin = (unit.parent / "edge-emotion.service.d" / "ansible.conf").read_text()
    venv_cli = Path(sys.executable).parent / "edge-emotion"
    user = pwd.getpwuid(os.getuid()).pw_name
    assert f"\nUser={user}\n" in dropin and "\nExecStart=\n" in dropin
    assert f"ExecStart={venv_cli} run --config {etc / 'kiosk.toml'}" in dropin
    assert "ExecStartPre" not in dropin  # run checks config and models itself (RestartPreventExitStatus applies)
    assert f"Environment=EDGE_EMOTION_MODELS={deployed.root / 'opt' / 'edge-emotion' / 'models'}" in dropin
    manifest = json.loads((ROOT / "models" / "manifest.json").read_text())["models"]
    models = deployed.root / "opt" / "edge-emotion" / "models"
    for m in manifest.values():
        if (ROOT / "models" / m["file"]).exists():
            assert hashlib.sha256((models / m["file"]).read_bytes()).hexdigest() == m["sha256"]


def test_config_rerun_is_idempotent_and_a_bad_host_var_keeps_the_old_config(deployed: Deployment) -> None:
    toml = deployed.root / "etc" / "edge-emotion" / "kiosk.toml"
    before, mtime = toml.read_bytes(), toml.stat().st_mtime_ns
    again = playbook(deployed.tmp, deployed.inventory, "--limit", "kiosk-t", "--tags", "config", "--check", "--diff")
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]  # idempotent, --check works
    bad = {"edge_kiosk_config": {"alerts": {"watch_threshold": 1.5}, "analysis": {"customer_zone": [0.9, 0, 0.1, 1]}}}
    run = playbook(deployed.tmp, deployed.inventory, "--limit", "kiosk-t", "--tags", "config", "-e", json.dumps(bad))
    assert run.returncode != 0
    assert "failed to validate" in run.stdout and "alerts.watch_threshold" in run.stdout, run.stdout[-3000:]
    assert "analysis.customer_zone" in run.stdout and "x0 < x1" in run.stdout
    assert toml.read_bytes() == before and toml.stat().st_mtime_ns == mtime


def test_a_password_from_the_environment_file_validates(deployed: Deployment) -> None:
    """The documented route: ``password = "${EDGE_EMOTION_MQTT_PASSWORD}"`` with the value in the unit's environment
    file. check-config on the kiosk reads that file too, or every such deployment failed validation."""
    env = deployed.tmp / "kiosk.env"
    # as systemd reads it: a value with a space is one value (a shell sourcing the file ran "secret" as a command)
    env.write_text("# kiosk secrets\nEDGE_EMOTION_MQTT_PASSWORD=not-printed secret\n")
    env.chmod(0o600)
    toml = deployed.root / "etc" / "edge-emotion" / "kiosk.toml"
    before = toml.read_bytes()
    extra = {"edge_kiosk_env_file": str(env),
             "edge_kiosk_config": {"camera": {"source": "0"}, "microphone": {"source": "USB PnP"},
                                   "analysis": {"customer_zone": [0.25, 0, 1, 1], "voice": False},
                                   "privacy": {"staff_zones": [[[0, 0], [0.3, 0], [0.22, 1], [0, 1]]]},
                                   "mqtt": {"username": "kiosk-t", "password": "${EDGE_EMOTION_MQTT_PASSWORD}"}}}
    try:
        run = playbook(deployed.tmp, deployed.inventory, "--limit", "kiosk-t", "--tags", "config", "--diff",
                       "-e", json.dumps(extra))
        assert run.returncode == 0, run.stdout[-3000:]
        assert "${EDGE_EMOTION_MQTT_PASSWORD}" in toml.read_text() and "not-printed" not in run.stdout
    finally:
        toml.write_bytes(before)


def test_broker_role_files(deployed: Deployment) -> None:
    d = deployed.root / "etc" / "mosquitto" / "edge-emotion"
    acl = (d / "acl").read_text()
    assert f"user kiosk-a\ntopic readwrite {TOPIC}/kiosk-a/#" in acl and "user kiosk-b\n" in acl
    assert f"topic write {TOPIC}/+/config" in acl and not [x for x in acl.splitlines() if x.startswith("pattern")]
    lines = (d / "passwd").read_text().splitlines()
    assert sorted(line.split(":")[0] for line in lines) == sorted(ACCOUNTS)
    assert all("pass-1" not in line for line in lines)  # hashed
    # PBKDF2-SHA512 with 1,000 rounds (random passwords; mosquitto hashes logins on its main thread); the broker tests
    # below log in with them
    assert all(line.split(":", 1)[1].startswith("$7$1000$") for line in lines), lines
    assert stat.S_IMODE((d / "server.key").stat().st_mode) == 0o640
    assert stat.S_IMODE((d / "passwd").stat().st_mode) == 0o640


class Client:
    """A paho MQTT 5 client that records messages, PUBACK reason codes and SUBACK results."""

    def __init__(self, port: int, *, cert: str | None = None, cafile: Path | None = None, key: Path | None = None,
                 user: str | None = None, ws: bool = False, client_id: str = "") -> None:
        """Connect (TLS with a client certificate, or websockets with a password); raise on refusal."""
        self.messages: list[tuple[str, bytes]] = []
        self.pubacks: dict[int, int] = {}
        self.subacks: list[list[int]] = []
        self.cond = threading.Condition()
        self.connected = threading.Event()
        self.rc: object = None
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5,
                             transport="websockets" if ws else "tcp")
        if cafile is not None:
            self.c.tls_set(ca_certs=str(cafile), certfile=cert, keyfile=str(key) if key else None)
        if user is not None:
            self.c.username_pw_set(user, ACCOUNTS[user][1] if user in ACCOUNTS else "wrong")
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_publish
        self.c.on_subscribe = self._on_subscribe
        self.disconnects = 0
        self.c.on_disconnect = self._on_disconnect
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()
        self.connected.wait(5)
        if self.rc is None or getattr(self.rc, "is_failure", True):
            self.close()
            raise ConnectionRefusedError(f"not connected: {self.rc}")

    def _on_connect(self, _c: paho.Client, _u: object, _f: object, rc: object, _p: object = None) -> None:
        self.rc = rc
        self.connected.set()

    def _on_disconnect(self, *_: object) -> None:
        self.disconnects += 1
        self.connected.set()  # refused after the TLS handshake: stop waiting

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        with self.cond:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self.cond.notify_all()

    def _on_publish(self, _c: paho.Client, _u: object, mid: int, rc: object, _p: object = None) -> None:
        with self.cond:
            self.pubacks[mid] = int(getattr(rc, "value", 0))
            self.cond.notify_all()

    def _on_subscribe(self, _c: paho.Client, _u: Any, _mid: int, rcs: list[Any], _p: Any = None) -> None:
        with self.cond:
            self.subacks.append([int(getattr(r, "value", 0)) for r in rcs])
            self.cond.notify_all()

    def _wait(self, pred: object, what: str) -> None:
        deadline = time.monotonic() + 5
        with self.cond:
            while not pred():  # type: ignore[operator]
                left = deadline - time.monotonic()
                assert left > 0, f"timed out waiting for {what}; messages {self.messages}"
                self.cond.wait(left)

    def publish(self, topic: str, payload: str = "{}", retain: bool = False) -> int:
        """Publish with QoS 1; the PUBACK reason code: 0 accepted (16, no subscriber, counts as 0), 135 denied."""
        mid = self.c.publish(topic, payload, qos=1, retain=retain).mid
        self._wait(lambda: mid in self.pubacks, f"PUBACK of {topic}")
        return 0 if self.pubacks[mid] == 16 else self.pubacks[mid]

    def subscribe(self, topic: str) -> int:
        """Subscribe with QoS 1 and return the granted QoS / reason code (135 = not authorized)."""
        n = len(self.subacks)
        self.c.subscribe(topic, qos=1)
        self._wait(lambda: len(self.subacks) > n, f"SUBACK of {topic}")
        return self.subacks[n][0]

    def wait_for(self, topic: str) -> bytes:
        """The payload of the first message on ``topic``."""
        self._wait(lambda: any(t == topic for t, _ in self.messages), f"a message on {topic}")
        return next(p for t, p in self.messages if t == topic)

    def close(self) -> None:
        """Disconnect."""
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture(scope="module")
def site_broker(deployed: Deployment) -> Iterator[Deployment]:
    """The generated mosquitto config started as a real broker."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed")
    conf = deployed.root / "etc" / "mosquitto" / "conf.d" / "edge-emotion.conf"
    with open(deployed.tmp / "mosquitto.stderr", "wb") as err:
        proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=err, stderr=err)
    try:
        if not (wait_port("127.0.0.1", deployed.mqtts_port) and wait_port("127.0.0.1", deployed.ws_port)):
            logs = [deployed.tmp / "mosquitto.stderr", deployed.tmp / "mosquitto.log"]
            pytest.fail("mosquitto did not start: " + "".join(p.read_text() for p in logs if p.exists()))
        yield deployed
    finally:
        proc.kill()
        proc.wait(timeout=5)


def kiosk_client(d: Deployment, name: str, pki: Path | None = None, client_id: str = "") -> Client:
    """A client authenticated by ``name``'s certificate from the site CA (or from ``pki``)."""
    pki = pki or d.pki
    return Client(d.mqtts_port, cafile=d.pki / "ca.crt", cert=str(pki / "clients" / f"{name}.crt"),
                  key=pki / "clients" / f"{name}.key", client_id=client_id)


def test_a_tablet_login_with_a_kiosks_client_id_cannot_disconnect_the_kiosk(site_broker: Deployment) -> None:
    d = site_broker
    kiosk_id = f"edge-emotion-{SITE}-kiosk-a"  # the kiosk's client id (the role keeps the default)
    a = kiosk_client(d, "kiosk-a", client_id=kiosk_id)
    tablets: list[Client] = []
    try:
        assert a.subscribe(f"{TOPIC}/kiosk-a/ack") == 1
        for cid in (kiosk_id, "kiosk-a", kiosk_id):  # the kiosk's id, its certificate name, and again
            tablets.append(Client(d.ws_port, user="tablet-t", ws=True, client_id=cid))
        time.sleep(1.0)  # a takeover closes the kiosk's connection at once
        assert a.disconnects == 0 and a.c.is_connected()
        assert tablets[-1].publish(f"{TOPIC}/kiosk-a/ack", '{"alert_id": "a-9"}') == 0
        assert a.wait_for(f"{TOPIC}/kiosk-a/ack") == b'{"alert_id": "a-9"}'
        assert a.publish(f"{TOPIC}/kiosk-a/status", '{"still": "here"}') == 0
        broker_log = (d.tmp / "mosquitto.log").read_text(errors="replace")
        assert "as tablet-t" in broker_log  # the broker's client id of the tablet is its account name
    finally:
        for c in (*tablets, a):
            c.close()


def test_oversized_packets_are_refused_by_the_site_broker(site_broker: Deployment) -> None:
    d = site_broker
    a = kiosk_client(d, "kiosk-a", client_id=f"edge-emotion-{SITE}-kiosk-a")
    tab = Client(d.ws_port, user="tablet-t", ws=True)
    try:
        assert a.subscribe(f"{TOPIC}/kiosk-a/ack") == 1
        tab.c.publish(f"{TOPIC}/kiosk-a/ack", b"x" * (2 * 2**20), qos=1)  # 2 MiB: the tablet is disconnected
        deadline = time.monotonic() + 10
        while tab.disconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tab.disconnects >= 1
        tab.close()
        tab = Client(d.ws_port, user="tablet-t", ws=True)
        assert tab.publish(f"{TOPIC}/kiosk-a/ack", '{"alert_id": "a-1"}') == 0
        assert a.wait_for(f"{TOPIC}/kiosk-a/ack") == b'{"alert_id": "a-1"}'
        assert all(len(p) < 1024 for _, p in a.messages)  # the oversized payload never reached the kiosk
    finally:
        tab.close()
        a.close()
    conf = (d.root / "etc" / "mosquitto" / "conf.d" / "edge-emotion.conf").read_text()
    assert "max_packet_size 262144" in conf and "message_size_limit 262144" in conf
    assert "max_queued_messages 20000" in conf  # a day of a site's counted events for the absent aggregator


def test_acl_kiosk_writes_only_its_own_topics(site_broker: Deployment) -> None:
    d = site_broker
    ops = Client(d.ws_port, user="ops-t", ws=True)
    a = kiosk_client(d, "kiosk-a")
    try:
        assert ops.subscribe(f"{TOPIC}/#") == 1
        assert a.publish(f"{TOPIC}/kiosk-b/emotion", '{"forged": true}') == 135
        assert a.publish(f"{TOPIC}/kiosk-b/status", '{"forged": true}', retain=True) == 135
        assert a.publish(f"{TOPIC}/kiosk-a/emotion", '{"real": true}') == 0
        ops.wait_for(f"{TOPIC}/kiosk-a/emotion")  # ordering barrier: a forged message would have arrived first
        assert [t for t, _ in ops.messages if "/kiosk-b/" in t] == []
        b = kiosk_client(d, "kiosk-b")  # nor read another kiosk's topics (mosquitto grants the
        try:                             # subscription but delivers nothing the ACL does not allow)
            a.subscribe(f"{TOPIC}/kiosk-b/#")
            assert a.subscribe(f"{TOPIC}/kiosk-a/marker") == 1
            assert b.publish(f"{TOPIC}/kiosk-b/status", '{"b": 1}') == 0
            ops.wait_for(f"{TOPIC}/kiosk-b/status")
            assert a.publish(f"{TOPIC}/kiosk-a/marker") == 0
            a.wait_for(f"{TOPIC}/kiosk-a/marker")  # queued to A after B's message would have been
            assert [t for t, _ in a.messages if "/kiosk-b/" in t] == []
        finally:
            b.close()
        assert a.subscribe(f"{TOPIC}/kiosk-a/config") == 1
        assert ops.publish(f"{TOPIC}/kiosk-a/config", '{"alerts": {"watch_threshold": 0.5}}') == 0
        assert a.wait_for(f"{TOPIC}/kiosk-a/config") == b'{"alerts": {"watch_threshold": 0.5}}'
        assert ops.publish(f"{TOPIC}/kiosk-a/emotion") == 135  # operators write config only
    finally:
        a.close()
        ops.close()


def test_acl_tablet_reads_the_site_and_writes_only_ack_and_pause(site_broker: Deployment) -> None:
    d = site_broker
    tab = Client(d.ws_port, user="tablet-t", ws=True)
    ops = Client(d.ws_port, user="ops-t", ws=True)
    a = kiosk_client(d, "kiosk-a")
    try:
        assert tab.subscribe(f"{TOPIC}/#") == 1 and ops.subscribe(f"{TOPIC}/#") == 1
        assert a.subscribe(f"{TOPIC}/kiosk-a/#") == 1
        assert tab.publish(f"{TOPIC}/kiosk-a/emotion", '{"forged": true}') == 135
        assert tab.publish(f"{TOPIC}/kiosk-a/alert", '{"forged": true}') == 135
        assert tab.publish(f"{TOPIC}/kiosk-a/config", '{"forged": true}') == 135
        assert tab.publish(f"{TOPIC}/kiosk-a/ack", '{"alert_id": "a-1", "by": "tablet"}') == 0
        assert tab.publish(f"{TOPIC}/kiosk-a/pause", '{"action": "pause"}') == 0
        a.wait_for(f"{TOPIC}/kiosk-a/ack")
        a.wait_for(f"{TOPIC}/kiosk-a/pause")
        ops.wait_for(f"{TOPIC}/kiosk-a/pause")
        assert not [t for t, _ in a.messages + ops.messages if t.endswith(("/emotion", "/alert", "/config"))]
        assert a.publish(f"{TOPIC}/kiosk-a/emotion", '{"real": true}') == 0
        assert tab.wait_for(f"{TOPIC}/kiosk-a/emotion") == b'{"real": true}'  # tablets read the site
    finally:
        for c in (a, ops, tab):
            c.close()


def test_acl_home_assistant_discovery_and_pause_switch(site_broker: Deployment) -> None:
    """Kiosks with [homeassistant] enabled publish discovery configs and read HA's birth topic; the broker role
    granted neither, so discovery was refused. Home Assistant's account reads the site and writes only pause."""
    from edge.config import parse_config
    from edge.transport.homeassistant import legacy_object_id, object_id

    def ids(kiosk: str) -> tuple[str, str]:
        cfg = parse_config({"identity": {"site_id": SITE, "kiosk_id": kiosk}})
        return object_id(cfg), legacy_object_id(cfg)

    d = site_broker
    acl = (d.root / "etc" / "mosquitto" / "edge-emotion" / "acl").read_text()
    new_c, old_c = ids("kiosk_c")  # an id with "_": the hashed discovery id, and the old one it clears
    assert new_c != old_c and f"topic write homeassistant/device/{new_c}/config" in acl
    assert f"topic write homeassistant/device/{old_c}/config" in acl
    own, _ = ids("kiosk-a")
    ha = Client(d.ws_port, user="ha-t", ws=True)
    tab = Client(d.ws_port, user="tablet-t", ws=True)
    a = kiosk_client(d, "kiosk-a")
    try:
        assert ha.subscribe("homeassistant/#") == 1 and ha.subscribe(f"{TOPIC}/#") == 1
        assert a.subscribe("homeassistant/status") == 1 and a.subscribe(f"{TOPIC}/kiosk-a/#") == 1
        assert a.publish(f"homeassistant/device/{own}/config", '{"dev": {}}', retain=True) == 0
        assert ha.wait_for(f"homeassistant/device/{own}/config") == b'{"dev": {}}'
        # not another kiosk's device: it could point that counter's pause switch elsewhere
        assert a.publish(f"homeassistant/device/{ids('kiosk-b')[0]}/config", '{"forged": true}') == 135
        assert ha.publish("homeassistant/status", "online") == 0
        assert a.wait_for("homeassistant/status") == b"online"
        assert ha.publish(f"{TOPIC}/kiosk-a/pause", '{"action": "pause", "by": "home-assistant"}') == 0
        a.wait_for(f"{TOPIC}/kiosk-a/pause")
        assert ha.publish(f"{TOPIC}/kiosk-a/config", '{"forged": true}') == 135
        assert ha.publish(f"{TOPIC}/kiosk-a/ack", '{"alert_id": "a-1"}') == 135
        assert tab.publish("homeassistant/device/x/config", '{"forged": true}') == 135  # only kiosks announce
        assert a.publish("homeassistant/light/x/config", '{"forged": true}') == 135  # only device configs
    finally:
        for c in (a, tab, ha):
            c.close()


def test_tls_needs_a_certificate_from_the_site_ca_and_passwords_are_checked(site_broker: Deployment) -> None:
    d = site_broker
    kiosk_client(d, "kiosk-b").close()  # the issued certificate connects
    with pytest.raises((ssl.SSLError, OSError, ConnectionRefusedError)):
        kiosk_client(d, "kiosk-a", pki=d.other_pki).close()  # same CN, another CA
    with pytest.raises((ssl.SSLError, OSError, ConnectionRefusedError)):
        Client(d.mqtts_port, cafile=d.pki / "ca.crt").close()  # no client certificate
    with pytest.raises(ConnectionRefusedError):
        Client(d.ws_port, user="intruder", ws=True).close()  # wrong password / unknown account


def test_wait_online_script_sees_the_retained_status(site_broker: Deployment) -> None:
    d = site_broker
    script = ANSIBLE_DIR / "roles" / "edge_kiosk" / "files" / "wait_online.py"
    tls = ["--cafile", str(d.pki / "ca.crt"), "--cert", str(d.pki / "clients" / "kiosk-a.crt"),
           "--key", str(d.pki / "clients" / "kiosk-a.key")]
    args = [sys.executable, str(script), "--host", "127.0.0.1", "--port", str(d.mqtts_port),
            "--topic", f"{TOPIC}/kiosk-a/status", "--client-id", "deploy-check", "--version", __version__, *tls]
    a = kiosk_client(d, "kiosk-a")
    try:
        assert a.publish(f"{TOPIC}/kiosk-a/status", json.dumps({"state": "offline", "version": __version__}),
                         retain=True) == 0
        off = subprocess.run([*args, "--timeout", "1"], capture_output=True, text=True, timeout=30)
        assert off.returncode == 1 and '"offline"' in off.stderr
        assert a.publish(f"{TOPIC}/kiosk-a/status", json.dumps({"state": "online", "version": __version__}),
                         retain=True) == 0
        on = subprocess.run([*args, "--timeout", "10"], capture_output=True, text=True, timeout=30)
        assert on.returncode == 0, on.stderr
    finally:
        a.close()


def test_password_sync_with_no_accounts_writes_an_empty_file(tmp_path: Path) -> None:
    """A site whose clients all use certificates (the role's default: no accounts): mosquitto needs the file to
    exist, and the sync must not fail on chown of a file it never wrote."""
    script = ROOT / "deploy" / "ansible" / "roles" / "edge_broker" / "files" / "passwd_sync.py"
    path = tmp_path / "passwd"
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    for outcome in ("changed", "unchanged"):
        run = subprocess.run([sys.executable, str(script), str(path), "0640", user, group], input="[]",
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and run.stdout.strip() == outcome, run.stderr
    assert path.read_text() == "" and stat.S_IMODE(path.stat().st_mode) == 0o640


def test_password_sync_rehashes_slow_and_weak_entries_and_keeps_current_ones(tmp_path: Path) -> None:
    """Hashes of 210,000 rounds let wrong-password logins stall mosquitto's main thread: another round count (more
    or fewer) is rewritten once, a current hash of the same password is kept (no rewrite, no reload)."""
    import base64
    import hashlib

    script = ROOT / "deploy" / "ansible" / "roles" / "edge_broker" / "files" / "passwd_sync.py"
    path = tmp_path / "passwd"
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    salt = b"0123456789ab"
    old = base64.b64encode(hashlib.pbkdf2_hmac("sha512", b"pw-1", salt, 210_000, 64)).decode()
    path.write_text(f"tablet-1:$7$210000${base64.b64encode(salt).decode()}${old}\n")
    accounts = '[{"name": "tablet-1", "password": "pw-1"}]'
    for outcome in ("changed", "unchanged"):
        run = subprocess.run([sys.executable, str(script), str(path), "0640", user, group], input=accounts,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and run.stdout.strip() == outcome, run.stderr
        assert path.read_text().startswith("tablet-1:$7$1000$")


def test_ca_helper_reissues_a_certificate_whose_key_was_made_anew(tmp_path: Path) -> None:
    """A lost client key was made anew but the old certificate kept ('is current'): the kiosk could not connect."""
    pki = tmp_path / "pki"
    ca(str(pki), "init", SITE)
    ca(str(pki), "client", "counter-01")
    crt, key = pki / "clients" / "counter-01.crt", pki / "clients" / "counter-01.key"
    key.unlink()
    ca(str(pki), "client", "counter-01")

    def pub(*cmd: str) -> str:
        return subprocess.run(list(cmd), capture_output=True, text=True, check=True).stdout

    assert pub("openssl", "x509", "-in", str(crt), "-noout", "-pubkey") == pub("openssl", "pkey", "-in", str(key),
                                                                               "-pubout")


def test_a_literal_password_from_any_layer_never_reaches_the_playbook_output(deployed: Deployment) -> None:
    """A fleet- or site-level literal password was printed by --diff (the guard looked at the kiosk layer only),
    and the merged configuration by the set_fact at -v."""
    toml = deployed.root / "etc" / "edge-emotion" / "kiosk.toml"
    before = toml.read_bytes()
    extra = {"edge_kiosk_fleet": {"mqtt": {"username": "kiosk-t", "password": "S3cr3t-literal"}}}
    try:
        run = playbook(deployed.tmp, deployed.inventory, "--limit", "kiosk-t", "--tags", "config", "--check",
                       "--diff", "-v", "-e", json.dumps(extra))
        assert "S3cr3t-literal" not in run.stdout, run.stdout[-3000:]
        assert "Render kiosk.toml" in run.stdout, run.stdout[-3000:]  # the task ran (and was silent)
    finally:
        toml.write_bytes(before)
