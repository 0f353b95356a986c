"""How operator tools (listen, fleet, aggregates, exporters) reach a broker: shared options, TLS, one-line errors."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import ssl
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.redact import is_secret_key

PASSWORD_ENV = "EDGE_EMOTION_BROKER_PASSWORD"  # read when --password-file is not given (keeps it out of `ps`)


class _RefusePassword(argparse.Action):
    """``--password VALUE`` is refused: a secret on the command line shows in `ps` and in shell history."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        parser.error("--password is not accepted (a password on the command line shows in `ps` and shell "
                     f"history): use --password-file FILE or ${namespace.password_env}")
CONNECT_TIMEOUT_S = 10.0
MAX_PAYLOAD_BYTES = 256 * 1024  # the site broker's own packet limit: anything larger is not a kiosk event


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with terminal control characters (escape sequences, bell, ...) shown as ``\\xNN``: a publisher
    must not be able to drive the installer's terminal through a counter name or a degraded note."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def decode_json(payload: bytes | bytearray) -> Any:
    """A received payload as JSON; ValueError for one too large, not UTF-8, not JSON or nested too deep (a
    RecursionError would otherwise end paho's network thread and with it every later message)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload of {len(payload)} bytes")
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(str(exc)) from None


@dataclass
class Broker:
    """How to reach the broker (same options as the kiosk's ``mqtt`` section)."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False

    def where(self) -> str:
        """``host:port`` for messages."""
        return f"{self.host}:{self.port}"


_OPTION = re.compile(r"--?([\w-]+)(=(.*))?", re.DOTALL)


class SecretSafeParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors never repeat the value of a secret-looking option: argparse accepts
    prefixes (``--pass=...`` is ambiguous between --password and --password-file) and quotes arguments whole."""

    _seen: list[str] | None = None

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        """Remember the arguments (their secret values are hidden from ``error``), then parse as usual."""
        self._seen = [str(a) for a in (sys.argv[1:] if args is None else args)]
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        """Print usage and the message with the value of every secret-looking option as ``***``; exit 2."""
        seen = self._seen or []
        for i, arg in enumerate(seen):
            m = _OPTION.fullmatch(arg)
            if m is None or not is_secret_key(m.group(1)):
                continue
            value = m.group(3) if m.group(2) else (seen[i + 1] if i + 1 < len(seen) else None)
            if value:  # given as --opt=value (spaces and all) or as the next word
                message = message.replace(value, "***")
        super().error(message)


def add_broker_options(p: argparse.ArgumentParser, password_env: str = PASSWORD_ENV) -> None:
    """The connection options every operator command takes."""
    p.add_argument("--host", default="127.0.0.1", help="broker host")
    p.add_argument("--port", type=int, default=None, help="broker port (default 1883, 8883 with TLS)")
    p.add_argument("--username", help="broker username (an operator account)")
    p.add_argument("--password-file", help=f"file whose first line is the broker password (default: ${password_env}"
                   f"{'' if password_env == PASSWORD_ENV else f', or ${PASSWORD_ENV}'})")
    p.add_argument("--password", action=_RefusePassword, help=argparse.SUPPRESS)
    p.add_argument("--tls", action="store_true", help="TLS with the system CAs (or --ca-file)")
    p.add_argument("--ca-file", help="CA bundle (implies --tls)")
    p.add_argument("--cert-file", help="client certificate (implies --tls; with --key-file)")
    p.add_argument("--key-file", help="client key")
    p.add_argument("--insecure", action="store_true", help="skip hostname verification (test benches only)")
    p.set_defaults(password_env=password_env)


def broker_from_args(args: argparse.Namespace) -> Broker:
    """The Broker the options describe."""
    tls = bool(args.tls or args.ca_file or args.cert_file)
    env = getattr(args, "password_env", PASSWORD_ENV)
    password = os.environ.get(env) or os.environ.get(PASSWORD_ENV)
    if getattr(args, "password_file", None):
        lines = Path(args.password_file).read_text(encoding="utf-8").splitlines()  # OSError: named by the CLI
        password = lines[0] if lines else ""
    port = args.port if args.port is not None else (8883 if tls else 1883)
    return Broker(args.host, port, args.username, password, tls, args.ca_file, args.cert_file, args.key_file,
                  args.insecure)


def make_client(broker: Broker, client_id: str = "", manual_ack: bool = False) -> paho.Client:
    """A paho client (MQTT 5) with the broker's credentials and TLS set; ConnectionError for unusable TLS files.
    ``manual_ack``: QoS 1 messages are acknowledged by ``client.ack`` (after they are stored), not on arrival."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5,
                         manual_ack=manual_ack)
    client.suppress_exceptions = True  # a failing callback must not end the network thread for good ...
    client.enable_logger(logging.getLogger("edge.ops.paho"))  # ... and is logged (paho logs it only to a logger)
    if broker.username is not None:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls or broker.ca_file or broker.cert_file:
        if (broker.cert_file is None) != (broker.key_file is None):
            raise ConnectionError("--cert-file and --key-file must be given together")
        try:
            client.tls_set(ca_certs=broker.ca_file, certfile=broker.cert_file, keyfile=broker.key_file,
                           cert_reqs=ssl.CERT_REQUIRED)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConnectionError(f"TLS files: {exc}") from None
        client.tls_insecure_set(broker.insecure)
    return client


def connect(client: paho.Client, broker: Broker, on_ready: Any = None, keepalive: int = 30,
            session_expiry_s: int = 0, receive_maximum: int = 0) -> None:
    """Connect, start the network loop, await the CONNACK (``on_ready``: subscribe, each connect); ConnectionError.
    ``receive_maximum``: at most this many unacknowledged QoS 1 messages are sent to us at once (MQTT 5)."""
    done, failure = threading.Event(), []

    def on_connect(c: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            failure.append(f"broker {broker.where()} refused the connection: {rc}")
        elif on_ready is not None:
            on_ready(c)
        done.set()

    client.on_connect = on_connect
    props = None
    if session_expiry_s > 0 or receive_maximum > 0:
        props = Properties(PacketTypes.CONNECT)
        if session_expiry_s > 0:  # the broker keeps QoS 1 messages for this client id while it is away
            props.SessionExpiryInterval = session_expiry_s
        if receive_maximum > 0:
            props.ReceiveMaximum = receive_maximum
    try:
        client.connect(broker.host, broker.port, keepalive=keepalive,
                       clean_start=False if session_expiry_s > 0 else paho.MQTT_CLEAN_START_FIRST_ONLY,
                       properties=props)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConnectionError(f"cannot connect to {broker.where()}: {exc}") from None
    client.loop_start()
    if not done.wait(CONNECT_TIMEOUT_S) or failure:
        client.disconnect()
        client.loop_stop()
        raise ConnectionError(failure[0] if failure else f"no answer from {broker.where()} "
                              f"within {CONNECT_TIMEOUT_S:g} s (TLS to a plain port, or a firewall?)")
