"""Keep a mosquitto password file in step with accounts read from stdin (JSON [{name, password}]), idempotently.

Hashes are mosquitto 2.x's PBKDF2-SHA512 format, ``$7$ITERATIONS$SALT$HASH``, made here with ITERATIONS rounds:
mosquitto_passwd 2.0 always uses 101, while the broker verifies whatever count the file states. Salted hashes
differ on every run, so this checks every existing hash ($6$ sha512 and $7$) and rewrites the file only when a
user was added, removed, changed its password or has a hash of another kind or round count than ITERATIONS.
Passwords never appear on a command line. Prints changed/unchanged.
Usage: python3 passwd_sync.py PASSWD_FILE MODE OWNER GROUP
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import sys
import tempfile

# PBKDF2-HMAC-SHA512 rounds. The accounts' passwords are random (deploy/README.md: `openssl rand -base64 24`, 144
# bits), so stretching adds nothing against a stolen file, while mosquitto checks every login on its one main
# thread: at 210,000 rounds wrong-password logins for a guessable tablet name (anyone reaching port 9001 can send
# them) stalled every kiosk's messages by 50-440 ms here. 1,000 rounds: ~0.5 ms per login here.
ITERATIONS = 1_000


def matches(stored: str, password: str) -> bool:
    """Whether ``password`` hashes to ``stored`` (``$6$salt$hash`` or ``$7$iterations$salt$hash``)."""
    parts = stored.split("$")
    try:
        if len(parts) == 4 and parts[1] == "6":
            salt, want = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            got = hashlib.sha512(password.encode() + salt).digest()
        elif len(parts) == 5 and parts[1] == "7":
            salt, want = base64.b64decode(parts[3]), base64.b64decode(parts[4])
            got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]), len(want))
        else:
            return False
    except ValueError:
        return False
    return hmac.compare_digest(got, want)


def current_kind(stored: str) -> bool:
    """Whether ``stored`` is a $7$ hash with exactly ITERATIONS rounds (fewer: weak; more: slow logins)."""
    parts = stored.split("$")
    return len(parts) == 5 and parts[1] == "7" and parts[2].isdigit() and int(parts[2]) == ITERATIONS


def make_hash(password: str) -> str:
    """A fresh ``$7$ITERATIONS$salt$hash`` line value (12-byte salt, 64-byte PBKDF2-SHA512, as mosquitto 2.x)."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS, 64)
    return f"$7${ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def main() -> int:
    """Compare, rewrite when needed, print the outcome."""
    path, mode, owner, group = sys.argv[1:5]
    accounts = {a["name"]: str(a["password"]) for a in json.load(sys.stdin)}
    for name, password in accounts.items():
        if not name or ":" in name or any(c.isspace() for c in name):
            print(f"invalid account name {name!r}", file=sys.stderr)
            return 2
        if not password or ":" in password or "\n" in password:  # mosquitto_passwd -U cuts at a second ':'
            print(f"account {name!r}: the password must be non-empty, without ':' or newline", file=sys.stderr)
            return 2
    current: dict[str, str] = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            current = dict(line.rstrip("\n").split(":", 1) for line in f if ":" in line)
    same = current.keys() == accounts.keys() and all(matches(current[n], p) and current_kind(current[n])
                                                      for n, p in accounts.items())
    write = not same or not os.path.exists(path)  # no accounts: still a (empty) file, mosquitto needs it
    if write:
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".passwd-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.writelines(f"{n}:{make_hash(p)}\n" for n, p in accounts.items())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    shutil.chown(path, owner, group)
    os.chmod(path, int(mode, 8))
    print("changed" if write else "unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
