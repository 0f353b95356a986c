"""scripts/check-arm64-wheels (issue 25): the tags and requirements it checks, and that it fails naming the package.

The failure paths run against a fake pip (no network); one test asks the real PyPI for an sdist-only package and is
skipped, with the reason, when PyPI cannot be reached.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tomllib
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check-arm64-wheels"

# A stand-in for `pip download`: records its argv, fails like pip for requirements named in $FAKE_PIP_FAIL
# ("top=missing": the top-level requirement `top` fails on its dependency `missing`), else "saves" one wheel each.
FAKE_PIP = r'''
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_PIP_LOG"], "a") as f:
    f.write(json.dumps(args) + "\n")
reqs = args[args.index("--dest") + 2:]
fails = dict(item.split("=", 1) for item in os.environ.get("FAKE_PIP_FAIL", "").split(",") if item)
for req in reqs:
    name = req.split("=")[0].split(">")[0].split("<")[0]
    if name in fails:
        missing = fails[name] or req
        print(f"ERROR: Could not find a version that satisfies the requirement {missing} (from versions: none)",
              file=sys.stderr)
        print(f"ERROR: No matching distribution found for {missing}", file=sys.stderr)
        sys.exit(1)
for req in reqs:
    name = req.split("=")[0].split(">")[0].split("<")[0].replace("-", "_")
    tag = "py3-none-any" if name.startswith("p") else "cp311-cp311-manylinux_2_27_aarch64"
    print(f"Saved ./{name}-1.0-{tag}.whl")
'''


def _module() -> ModuleType:
    loader = SourceFileLoader("check_arm64_wheels", str(SCRIPT))
    spec = spec_from_loader("check_arm64_wheels", loader)
    assert spec is not None
    mod = module_from_spec(spec)
    sys.modules["check_arm64_wheels"] = mod  # dataclasses look their module up
    loader.exec_module(mod)
    return mod


def _run(tmp_path: Path, *args: str, fail: str = "") -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    fake = tmp_path / "fake_pip.py"
    fake.write_text(FAKE_PIP, encoding="utf-8")
    log = tmp_path / "pip.log"
    log.write_text("", encoding="utf-8")
    env = {"FAKE_PIP_LOG": str(log), "FAKE_PIP_FAIL": fail, "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, str(SCRIPT), "--pip", f"{sys.executable} {fake}",
                          "--dest", str(tmp_path / "wheels"), *args],
                         capture_output=True, text=True, env=env, timeout=60, check=False)
    calls = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    return run, calls


def test_platform_tags_cover_every_glibc_the_target_accepts() -> None:
    """pip matches tags exactly: Pi OS bookworm (glibc 2.36) gets 2_17..2_36 and the legacy manylinux2014."""
    mod = _module()
    pi, jetson = mod.TARGETS["pi"], mod.TARGETS["jetson"]
    assert pi.platforms() == ["manylinux2014_aarch64"] + [f"manylinux_2_{m}_aarch64" for m in range(17, 37)]
    assert jetson.platforms()[-1] == "manylinux_2_35_aarch64" and "manylinux_2_36_aarch64" not in jetson.platforms()
    assert "manylinux_2_27_aarch64" in pi.platforms()  # ai-edge-litert 2.3.0's only arm64 tag
    assert (pi.python, pi.abi, jetson.python, jetson.abi) == ("3.11", "cp311", "3.11", "cp311")


def test_checks_the_runtime_dependencies_with_their_ranges() -> None:
    """Every runtime dependency as pinned in pyproject; dev/test/train extras never, demo only when asked."""
    mod = _module()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = mod.requirements(ROOT / "pyproject.toml", [])
    assert runtime == project["dependencies"]
    assert not any(r.startswith(("pytest", "ruff", "mypy", "tensorflow")) for r in runtime)
    with_demo = mod.requirements(ROOT / "pyproject.toml", ["demo"])
    assert with_demo[:len(runtime)] == runtime and any(r.startswith("matplotlib") for r in with_demo)
    with pytest.raises(SystemExit, match="no extra 'nope'"):
        mod.requirements(ROOT / "pyproject.toml", ["nope"])


def test_passes_and_asks_pip_for_binary_wheels_only(tmp_path: Path) -> None:
    """All resolve: exit 0; pip was asked for wheels only, for cp311 on every aarch64 tag, nothing installed."""
    run, calls = _run(tmp_path, "--target", "pi")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "check-arm64-wheels: ok pi" in run.stdout
    assert "built for aarch64" in run.stdout
    (call,) = calls  # one resolve of all the requirements together
    assert call[0] == "download" and "install" not in call
    assert "--only-binary=:all:" in call
    for flag, value in (("--python-version", "3.11"), ("--implementation", "cp"), ("--abi", "cp311")):
        assert call[call.index(flag) + 1] == value
    platforms = [call[i + 1] for i, a in enumerate(call) if a == "--platform"]
    assert platforms == _module().TARGETS["pi"].platforms()


def test_fails_naming_a_package_without_an_aarch64_wheel(tmp_path: Path) -> None:
    """An sdist-only requirement fails the check on every target, named, with pip's reason."""
    run, calls = _run(tmp_path, "--require", "webrtcvad==2.0.10", fail="webrtcvad=")
    assert run.returncode == 1, run.stdout + run.stderr
    for target in ("pi", "jetson"):
        assert f"check-arm64-wheels: FAIL {target}:" in run.stdout
    assert run.stdout.count("- webrtcvad==2.0.10: no cp311 aarch64 wheel for webrtcvad: pip: ERROR: No matching") == 2
    assert "paho-mqtt" not in run.stdout  # the ones that resolve are not blamed
    assert len(calls) > 2  # after the joint resolve failed, each requirement was tried alone


def test_names_the_dependency_and_the_requirement_that_pulls_it_in(tmp_path: Path) -> None:
    """A transitive dependency without a wheel is named with the top-level requirement that needs it."""
    run, _ = _run(tmp_path, "--target", "jetson", fail="jsonschema=rpds-py>=0.7.1")
    assert run.returncode == 1
    line = next(ln for ln in run.stdout.splitlines() if ln.startswith("  - jsonschema"))
    assert "no cp311 aarch64 wheel for rpds-py (a dependency of jsonschema)" in line


def test_missing_names_reads_pips_errors() -> None:
    """The names come from pip's two error lines, versions and extras stripped, each once."""
    err = ("ERROR: Could not find a version that satisfies the requirement rpds-py>=0.7.1 (from referencing)\n"
           "ERROR: No matching distribution found for rpds-py>=0.7.1\n")
    assert _module().missing_names(err) == ["rpds-py"]
    assert _module().missing_names("ERROR: something else") == []


def _pypi_reachable() -> str | None:
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
    except OSError as exc:
        return f"PyPI not reachable from this machine ({exc})"
    return None


def test_real_pypi_rejects_an_sdist_only_package(tmp_path: Path) -> None:
    """Against PyPI: webrtcvad (an sdist only) fails by name; webrtcvad-wheels (our pin) resolves."""
    reason = _pypi_reachable()
    if reason:
        pytest.skip(reason)
    run = subprocess.run([sys.executable, str(SCRIPT), "--target", "pi", "--no-project", "--dest", str(tmp_path),
                          "--require", "webrtcvad==2.0.10", "--require", "webrtcvad-wheels>=2.0.14,<3"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "- webrtcvad==2.0.10: no cp311 aarch64 wheel for webrtcvad" in run.stdout
    assert "- webrtcvad-wheels" not in run.stdout
