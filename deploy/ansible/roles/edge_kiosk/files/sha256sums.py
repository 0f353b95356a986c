"""Print {name: sha256 hex or null} as JSON for the files named in argv[2] (a JSON list) inside folder argv[1]."""
import hashlib
import json
import os
import sys

folder, names = sys.argv[1], json.loads(sys.argv[2])
sums = {}
for name in names:
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        sums[name] = None
        continue
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    sums[name] = h.hexdigest()
print(json.dumps(sums))
