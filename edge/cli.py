"""Command line of the kiosk service and its operator tools (``edge-emotion --help`` lists every command)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from edge import __version__
from edge.bench.commands import positive
from edge.config import ConfigError, KioskConfig, format_errors, load_config, parse_config
from edge.ops.broker_client import SecretSafeParser, add_broker_options, broker_from_args
from edge.runtime import ModelError

log = logging.getLogger("edge")

EXIT_CONFIG, EXIT_MODEL, EXIT_MEDIA, EXIT_FILES = 2, 3, 4, 5


def _setup_logging(verbose: int, level: str = "INFO") -> None:
    lvl = logging.DEBUG if verbose else getattr(logging, level)
    logging.basicConfig(stream=sys.stderr, level=lvl, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        force=True)


def _parser() -> argparse.ArgumentParser:
    p = SecretSafeParser(prog="edge-emotion", description=__doc__)  # its subcommands inherit the class
    p.add_argument("--version", action="version", version=f"edge-emotion {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="debug logging")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the kiosk service")
    r.add_argument("--config", "-c", required=True, type=Path, help="kiosk TOML file")
    r.add_argument("--scripted-readings", action="store_true",
                   help="DEMO ONLY: no face/voice model runs; readings follow the demo script (edge/demo/scripted.py), "
                        "everything after them is real (fusion, alerts, MQTT); status lists the models as SCRIPTED")
    c = sub.add_parser("check-config", help="validate a kiosk TOML file (and its model files); exit 2 on errors, "
                       "3 when only the model files are wrong")
    c.add_argument("config", type=Path)
    c.add_argument("--no-models", action="store_true", help="skip verifying the model files")
    c.add_argument("--env-file", type=Path, help="read ${VAR} values from this systemd EnvironmentFile first "
                   "(KEY=VALUE lines, as the unit reads it; never run as shell); a missing file is skipped")
    rp = sub.add_parser("replay", help="run the pipeline over a video (+audio) file as fast as possible")
    rp.add_argument("--video", type=Path, help="video file (its own audio track is used when --audio is absent)")
    rp.add_argument("--audio", type=Path, help="audio file (wav/flac)")
    rp.add_argument("--config", "-c", type=Path, help="kiosk TOML (identity, analysis, fusion, mqtt)")
    rp.add_argument("--publish", action="store_true", help="also publish the events to the config's broker")
    rp.add_argument("--quiet", "-q", action="store_true", help="print only the summary")
    li = sub.add_parser("listen", help="print events from a broker, one line each")
    add_broker_options(li)
    li.add_argument("--topic", default="edge-emotion/#", help="topic filter (default edge-emotion/#)")
    li.add_argument("--count", type=int, default=0, help="exit after N messages (0 = never)")
    d = sub.add_parser("make-demo", help="generate the demo video+audio from public-domain material")
    d.add_argument("outdir", type=Path)
    d.add_argument("--seconds", type=positive(" of seconds", least=2.0), default=60.0,
                   help="length of the demo media (default 60; at least 2: one voice window)")
    pr = sub.add_parser("privacy-report", help="print (and with --out write) the kiosk's privacy report")
    pr.add_argument("--config", "-c", required=True, type=Path, help="kiosk TOML file")
    pr.add_argument("--out", type=Path, help="folder for report.md, report.html and zones.png")
    t = sub.add_parser("tablet", help="serve the staff tablet web app (static files; HTTPS with --cert/--key)")
    from edge.tablet.server import add_arguments as add_tablet_arguments

    add_tablet_arguments(t)
    ev = sub.add_parser("eval", help="evaluate a model on labelled clips (needs the research corpora or your own)")
    ev.add_argument("target", choices=["voice", "face", "face-slices", "detector"],
                    help="voice | face | face-slices | detector: see `edge-emotion eval TARGET --help`")
    ev.add_argument("args", nargs=argparse.REMAINDER, help="options of the evaluation")
    from edge.bench.commands import add_subcommands  # scenario, bench, soak

    add_subcommands(sub)
    from edge.aggregates.cli import add_subcommand as add_aggregates  # site aggregates for managers
    from edge.ops.cam_capture import add_subcommand as add_cam_check  # the counter camera's view of the customer
    from edge.ops.fleet import add_subcommand as add_fleet  # fleet status
    from edge.ops.mic_record import add_subcommand as add_mic_check  # the counter microphone's level
    from edge.voicegate.calibrate import add_subcommand as add_calibrate  # direction gate's sectors

    for add in (add_fleet, add_mic_check, add_cam_check, add_calibrate, add_aggregates):
        add(sub)
    p.description = "On-device customer emotion sensing: the kiosk service and its tools. Commands: " + ", ".join(
        sub.choices) + ". `edge-emotion COMMAND --help` for each one's options."
    return p


def _load(path: Path) -> KioskConfig:
    cfg = load_config(path)
    return cfg


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate config (and verify its models); print every problem with its key path."""
    from edge.config_check import config_problems, machine_problems, read_env_file, tls_problems

    if args.env_file is not None:
        os.environ.update(read_env_file(args.env_file))
    errors, cfg = config_problems(args.config)
    if cfg is not None:  # an error here (the deploy check fails), though `run` starts and reports the source failed
        errors += machine_problems(cfg)
    model_error = None
    if not args.no_models and cfg is not None and not any(e.startswith("models.") for e in errors):
        from edge.pipeline.analyzers import build_analyzers

        try:
            build_analyzers(cfg)
        except ModelError as exc:
            model_error = str(exc)
    if errors:
        raise ConfigError(str(args.config), errors + ([f"models: {model_error}"] if model_error else []))
    if model_error is not None or cfg is None:
        raise ModelError(model_error or "no configuration")
    # files of another machine (a config checked before its kiosk's certificates are installed): run refuses them
    for line in [*cfg.warnings(), *(f"{p} (run waits for it: exit 5, restarted)" for p in tls_problems(cfg))]:
        print(f"warning: {line}", file=sys.stderr)
    print(f"OK: {args.config} (site {cfg.identity.site_id}, kiosk {cfg.identity.kiosk_id})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the service until SIGTERM/SIGINT."""
    from edge.config_check import tls_problems
    from edge.pipeline.analyzers import build_analyzers
    from edge.pipeline.service import Service

    cfg = _load(args.config)
    _setup_logging(args.verbose, cfg.logging.level)
    problems = tls_problems(cfg)
    if problems:  # files that may yet arrive (certificates installed after the config): exit 5, systemd retries
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_FILES
    for line in cfg.warnings():
        log.warning("%s", line)
    if args.scripted_readings:
        from edge.demo.scripted import scripted_analyzers

        analyzers = scripted_analyzers(face=cfg.camera.enabled, voice=cfg.microphone.enabled)
    else:
        analyzers = build_analyzers(cfg)
    service = Service(cfg, analyzers)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    code = service.run(stop)
    failed = service.failed_sources()
    if code == 0 and failed and service.inputs_done:  # every input ended and one never worked: a failure
        # (systemd's Restart=on-failure); a stop request (SIGTERM, Ctrl-C) is a clean exit whatever failed before
        print(f"error: {', '.join(failed)} failed (see the log above); nothing was analysed from it", file=sys.stderr)
        return EXIT_MEDIA
    return code


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay files through the pipeline and print events as JSON lines."""
    from edge.pipeline.analyzers import build_analyzers
    from edge.pipeline.replay import replay

    if args.video is None and args.audio is None:
        raise ConfigError("replay", ["give --video and/or --audio"])
    for f in (args.video, args.audio):
        if f is not None and not f.is_file():
            from edge.capture.media import MediaError

            raise MediaError(f"media file '{f}': " + ("not a regular file" if f.exists() else "not found"))
    if args.config:
        cfg = load_config(args.config, credentials=args.publish)  # the broker's secrets only when it is used
    else:
        cfg = parse_config({"identity": {"site_id": "replay", "kiosk_id": "replay"}, "mqtt": {"enabled": False}})
    if args.publish and not cfg.mqtt.enabled:
        raise ConfigError(args.config or "replay", ["mqtt.enabled is false: --publish needs the config's broker"])
    # the sources the files stand in for, checked again as a whole: an eu config valid only because its
    # microphone is off must not replay a video's sound track without a staff-voice gate
    data = cfg.model_dump()
    if args.publish:  # its own kiosk id (and so client id): a live kiosk of the config keeps its session and status
        data["identity"]["kiosk_id"] = data["identity"]["kiosk_id"][:57] + "-replay"
        data["mqtt"]["client_id"] = None
    data["camera"]["enabled"] = args.video is not None
    data["microphone"]["enabled"] = args.video is not None or args.audio is not None
    from pydantic import ValidationError

    try:
        cfg = KioskConfig.model_validate({**data, "base_dir": cfg.base_dir})
    except ValidationError as exc:
        what = "with --video the microphone analyses its sound track" if args.video is not None else "replay"
        raise ConfigError(f"{args.config or 'replay'} ({what})",
                          [e for e in format_errors(exc) if not e.startswith("base_dir")]) from None
    analyzers = build_analyzers(cfg)
    publisher = None
    if args.publish:
        from edge.events import EventFactory
        from edge.transport.mqtt import MqttPublisher

        publisher = MqttPublisher(cfg.mqtt, cfg.identity, EventFactory(cfg.identity),
                                  lambda: {"state": "online", "version": __version__,
                                           "counter_name": cfg.identity.counter_name,
                                           "models": analyzers.versions, "degraded": [],
                                           "privacy_profile": cfg.privacy.profile},
                                  resolve=cfg.resolve)
        publisher.start()

    def sink(kind: str, payload: dict[str, Any]) -> None:
        if not args.quiet:
            print(json.dumps(payload, ensure_ascii=False), flush=True)
        if publisher is not None:
            publisher.publish(kind, payload)

    try:
        res = replay(cfg, analyzers, args.video, args.audio, sink)
    finally:
        if publisher is not None:
            publisher.retire()  # waits (bounded) for the broker, flushes, clears the replay id's retained status
    kinds: dict[str, int] = {}
    for e in res.events:
        k = e["schema"].split("/")[1]
        kinds[k] = kinds.get(k, 0) + 1
    print(f"replayed {res.media_s:.2f} s of media in {res.wall_s:.2f} s: {res.frames} frames "
          f"({res.face_readings} with a customer face), {res.voice_windows} voice windows "
          f"({res.voice_readings} with speech); events {kinds}", file=sys.stderr)
    if cfg.microphone.enabled and analyzers.voice is not None and res.voice_windows == 0:
        print(f"warning: no voice window analysed: the audio is shorter than the model's "
              f"{analyzers.voice.window_s:g} s window", file=sys.stderr)
    if publisher is not None and publisher.unsent:
        print(f"error: {publisher.unsent} event(s) not delivered to the broker ({cfg.mqtt.host}:{cfg.mqtt.port}; "
              f"{publisher.last_error or 'no connection within the wait'})", file=sys.stderr)
        return 1
    return 0


def cmd_make_demo(args: argparse.Namespace) -> int:
    """Write the generated demo media."""
    from edge.demo.media import make_demo

    video, audio = make_demo(args.outdir, seconds=args.seconds)
    print(f"demo media: {video} {audio}")
    return 0


def cmd_listen(args: argparse.Namespace) -> int:
    """Subscribe and print readable event lines."""
    from edge.ops.listen import listen

    return listen(broker_from_args(args), args.topic, args.count)


def cmd_privacy_report(args: argparse.Namespace) -> int:
    """Print the privacy report as Markdown; with --out also write report.md, report.html and zones.png."""
    from edge.privacy.report import build_report, load_manifest_or_none, to_markdown, write_report

    cfg = load_config(args.config, credentials=False)  # never connects: the broker's credentials are not needed
    manifest = load_manifest_or_none(cfg)
    print(write_report(cfg, args.out, manifest) if args.out else to_markdown(build_report(cfg, manifest)), end="")
    return 0


def cmd_tablet(args: argparse.Namespace) -> int:
    """Serve the staff tablet until Ctrl-C."""
    from edge.tablet import serve

    return serve(args.host, args.port, args.cert, args.key, args.site, args.broker, args.lang, args.prefix)


def cmd_eval(args: argparse.Namespace) -> int:
    """Run an evaluation command (edge/train is imported only here, never by the service)."""
    import importlib

    module = {"voice": "edge.train.voice_eval", "face": "edge.eval.face", "face-slices": "edge.eval.face_slices",
              "detector": "edge.eval.detector"}
    return int(importlib.import_module(module[args.target]).main(args.args))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    handlers = {"run": cmd_run, "check-config": cmd_check_config, "replay": cmd_replay, "make-demo": cmd_make_demo,
                "listen": cmd_listen, "tablet": cmd_tablet, "privacy-report": cmd_privacy_report, "eval": cmd_eval}
    try:
        return handlers[args.cmd](args) if args.cmd in handlers else int(args.func(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MODEL
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a path given on the command line or in the config: missing, not a folder, no access
        print(f"error: {exc.strerror or exc}: {exc.filename}" if exc.filename else f"error: {exc}", file=sys.stderr)
        return EXIT_FILES
    except Exception as exc:
        from edge.capture.media import MediaError

        if isinstance(exc, MediaError):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_MEDIA
        raise
