"""Keep a mosquitto password file in step with accounts read from stdin (JSON [{name, password}]), idempotently.

mosquitto_passwd salts every hash, so rewriting the file each run would always report a change. This checks
every existing hash ($6$ sha512 and $7$ PBKDF2-SHA512, the formats of mosquitto 1.x/2.x); only when a user was
added, removed or changed its password does it write the plain list to a private temp file, hash it with
``mosquitto_passwd -U`` and move it into place. Passwords never appear on a command line. Prints changed/unchanged.
Usage: python3 passwd_sync.py PASSWD_FILE MODE OWNER GROUP [MOSQUITTO_PASSWD]
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import tempfile


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


def main() -> int:
    """Compare, rewrite when needed, print the outcome."""
    path, mode, owner, group = sys.argv[1:5]
    tool = sys.argv[5] if len(sys.argv) > 5 else "mosquitto_passwd"
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
    same = current.keys() == accounts.keys() and all(matches(current[n], p) for n, p in accounts.items())
    if not same:
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".passwd-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.writelines(f"{n}:{p}\n" for n, p in accounts.items())
            subprocess.run([tool, "-U", tmp], check=True, capture_output=True)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    shutil.chown(path, owner, group)
    os.chmod(path, int(mode, 8))
    print("changed" if not same else "unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
