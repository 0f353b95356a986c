"""``edge-emotion check-microphone``: the level verdicts on synthetic talking, the command on files, configs and a
fake microphone that fails."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge.cli import main
from edge.ops import mic_record
from edge.ops.mic_check import AIM_DBFS, HIGH_DBFS, LOW_DBFS, Settings, assess, speech_level_dbfs

RATE = 16000


def _talking(seconds: float = 10.0, level_dbfs: float = -30.0, seed: int = 0) -> np.ndarray:
    """Harmonic syllables with pauses (enough for webrtcvad), scaled to an active speech level of ``level_dbfs``."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    x = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / RATE) / k for k in range(1, 8))
    env = (np.sin(2 * np.pi * 2.5 * t) > -0.2).astype(float)
    y = (x * env).astype(np.float32) + np.float32(1e-4) * np.random.default_rng(seed).standard_normal(n).astype(
        np.float32)
    lvl = speech_level_dbfs(y)
    assert lvl is not None
    return (y * np.float32(10 ** ((level_dbfs - lvl) / 20))).astype(np.float32)


def _advice_db(text: str) -> float:
    m = re.search(r"(raise|lower) the input gain by about (\d+) dB", text)
    assert m, text
    return float(m.group(2)) * (1 if m.group(1) == "raise" else -1)


def test_talking_at_a_good_level_is_ok() -> None:
    """Normal talking at -30 dBFS: most windows reach the model, no problem, no warning."""
    rep = assess(_talking(level_dbfs=-30.0))
    assert rep.ok and not rep.warnings, (rep.problems, rep.warnings)
    assert rep.speech_dbfs == pytest.approx(-30.0, abs=0.5)
    assert rep.analysed >= rep.windows * 0.5 and rep.windows == 33  # every 0.25 s, as the service's default hop
    assert assess(_talking(level_dbfs=-30.0), Settings(hop_s=0.5)).windows == 17


@pytest.mark.parametrize("level", [-58.0, -75.0])
def test_quiet_microphone_gets_the_gain_to_add(level: float) -> None:
    """Too quiet for the features (-58) or for the VAD itself (-75): not OK, and the advice brings speech to AIM."""
    rep = assess(_talking(level_dbfs=level))
    assert not rep.ok
    assert _advice_db(rep.problems[0]) == pytest.approx(AIM_DBFS - level, abs=1.5)
    assert rep.analysed > 0  # the VAD raises a quiet window for webrtcvad: speech reaches the model, but too quiet


def test_the_level_bounds_sit_either_side_of_normal_talking() -> None:
    """Just inside the usable range is OK, just outside is not (the bounds are the ones the report prints)."""
    assert assess(_talking(level_dbfs=LOW_DBFS + 2)).ok
    assert not assess(_talking(level_dbfs=LOW_DBFS - 2)).ok
    assert assess(_talking(level_dbfs=HIGH_DBFS - 2)).ok
    loud = _talking(level_dbfs=HIGH_DBFS + 2)
    assert float(np.abs(loud).max()) < 0.999  # loud but not clipped: the headroom rule, not the clipping one
    rep = assess(loud)
    assert not rep.ok and "headroom" in rep.problems[0]
    assert _advice_db(rep.problems[0]) == pytest.approx(AIM_DBFS - HIGH_DBFS - 2, abs=1.5)


def test_a_voice_near_the_microphones_own_noise_is_told_apart_from_silence() -> None:
    """Talking 5 / 2 dB over a -71 dBFS self-noise: not "no speech" but a gain advice with the closer placement that
    the small margin over the noise needs (the VAD finds the louder voice, too quiet for the features; the other is
    too close to the noise to tell); the noise alone stays "no speech"."""
    noise = (10 ** (-71 / 20) * np.random.default_rng(3).standard_normal(10 * RATE)).astype(np.float32)
    for level, start in ((-66.0, "speech at -66 dBFS is too quiet"), (-68.5, "sound, too close to the noise floor")):
        rep = assess(_talking(level_dbfs=level) + noise)
        assert not rep.ok and rep.problems[0].startswith(start), (level, rep.problems)
        assert _advice_db(rep.problems[0]) > 30 and "bring the microphone closer" in rep.problems[0]
        assert not rep.warnings  # the noise is said once, in the problem
    assert assess(_talking(level_dbfs=-66.0) + noise).analysed > 0
    assert "closer" not in assess(_talking(level_dbfs=-58.0)).problems[0]  # quiet but clean: the gain is the fix
    assert assess(noise).problems[0].startswith("no speech heard")


def test_clipping_is_a_problem_whatever_the_level() -> None:
    """A voice driven into full scale: lower the gain."""
    rep = assess(np.clip(_talking(level_dbfs=-20.0) * np.float32(8.0), -1.0, 1.0))
    assert not rep.ok and rep.clipped > 0.001 and "clipped" in rep.problems[0]


@pytest.mark.parametrize("what", ["silence", "fan noise"])
def test_no_speech_is_said_plainly(what: str) -> None:
    """Digital silence and steady broadband noise are not talking, at any gain."""
    n = 10 * RATE
    x = np.zeros(n, np.float32) if what == "silence" else \
        (0.03 * np.random.default_rng(1).standard_normal(n)).astype(np.float32)
    rep = assess(x)
    assert not rep.ok and rep.problems[0].startswith("no speech heard")


def test_noisy_room_is_a_warning_not_a_failure() -> None:
    """Speech 8 dB over steady noise still reaches the model here, but the report says the noise is close."""
    x = _talking(level_dbfs=-30.0) + (10 ** (-38 / 20) * np.random.default_rng(2).standard_normal(10 * RATE)).astype(
        np.float32)
    rep = assess(x)
    assert rep.ok and rep.warnings and "room noise" in rep.warnings[0], (rep.problems, rep.warnings)


def test_talking_for_part_of_the_check_is_not_called_silence() -> None:
    """3 s of talking then 7 s of room noise: "talk throughout", not "no speech heard"."""
    x = np.concatenate([_talking(seconds=3.0), (10 ** (-60 / 20) * np.random.default_rng(4).standard_normal(
        7 * RATE)).astype(np.float32)])
    rep = assess(x)
    assert not rep.ok and rep.problems[0].startswith("only") and "talk throughout" in rep.problems[0], rep.problems
    assert 0 < rep.analysed < rep.windows / 2


def test_not_a_number_is_a_clear_error() -> None:
    x = _talking()
    x[100] = np.nan
    with pytest.raises(ValueError, match="not numbers"):
        assess(x)


def test_too_short_a_recording_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 3 s"):
        assess(_talking(seconds=2.0))


def test_command_on_a_file_and_through_a_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--file: exit 0 and OK at a good level, exit 2 and the advice when quiet; --config reads microphone.source."""
    good, quiet = tmp_path / "good.wav", tmp_path / "quiet.wav"
    sf.write(good, _talking(level_dbfs=-30.0), RATE)
    sf.write(quiet, _talking(level_dbfs=-62.0), RATE, subtype="FLOAT")
    assert main(["check-microphone", "--file", str(good)]) == 0
    assert "OK: the voice model can use this level" in capsys.readouterr().out
    assert main(["check-microphone", "--file", str(quiet)]) == 2
    out = capsys.readouterr().out
    assert "NOT OK" in out and _advice_db(out) == pytest.approx(32, abs=1.5)
    conf = tmp_path / "conf"
    conf.mkdir()
    sf.write(conf / "rec.wav", _talking(level_dbfs=-62.0), RATE, subtype="FLOAT")
    cfg = conf / "k.toml"  # a relative source: opened from the config's folder, as the service does
    cfg.write_text('[identity]\nsite_id = "s1"\nkiosk_id = "k1"\n\n[mqtt]\nenabled = false\n\n'
                   '[microphone]\nsource = "rec.wav"\n', encoding="utf-8")
    assert main(["check-microphone", "--config", str(cfg)]) == 2  # cwd is not conf/
    assert _advice_db(capsys.readouterr().out) == pytest.approx(32, abs=1.5)
    long = tmp_path / "long.wav"
    sf.write(long, np.tile(_talking(level_dbfs=-30.0), 4), RATE)  # 40 s: only --seconds of it are read
    assert main(["check-microphone", "--file", str(long), "--seconds", "5"]) == 0
    assert "recording 5.0 s" in capsys.readouterr().out


def test_command_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing file or a too short recording: exit 2 and a clear error, no traceback."""
    assert main(["check-microphone", "--file", str(tmp_path / "nope.wav")]) == 2
    assert "nope.wav" in capsys.readouterr().err
    short = tmp_path / "short.wav"
    sf.write(short, _talking(seconds=1.0), RATE)
    assert main(["check-microphone", "--file", str(short)]) == 2
    assert "at least 3 s" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["check-microphone", "--seconds", "1"])


def test_a_stereo_file_with_a_channel_config_goes_through_the_staff_gate(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Two channels configured: the file's channels are judged by the kiosk's gate; a mono file is refused."""
    talk = _talking(level_dbfs=-30.0)
    dead_staff = np.stack([talk, np.zeros_like(talk)], axis=1)  # a dead staff microphone on channel 1
    wav = tmp_path / "two.wav"
    sf.write(wav, dead_staff, RATE)
    mono = tmp_path / "one.wav"
    sf.write(mono, talk, RATE)
    cfg = tmp_path / "k.toml"
    cfg.write_text('[identity]\nsite_id = "s1"\nkiosk_id = "k1"\n\n[mqtt]\nenabled = false\n\n'
                   '[microphone]\nsource = "default"\nchannels = 2\n\n'
                   '[privacy]\nstaff_voice_gate = "channel"\nstaff_audio_channel = 1\n',
                   encoding="utf-8")
    code = main(["check-microphone", "--config", str(cfg), "--file", str(wav)])
    out = capsys.readouterr()
    assert code == 2 and "staff-voice gate held back" in out.out, out
    assert main(["check-microphone", "--config", str(cfg), "--file", str(mono)]) == 2
    assert "1 channel(s), the config's microphone.channels is 2" in capsys.readouterr().err


class _FakeSd:
    """sounddevice stand-in: one input device; ``mode`` picks a failure, else it delivers ``audio``."""

    def __init__(self, mode: str, audio: np.ndarray | None = None) -> None:
        self.mode, self.audio = mode, audio

    def query_devices(self, *a: object, **k: object) -> object:
        info = {"name": "USB mic", "max_input_channels": 1, "default_samplerate": 48000.0}
        return info if a or k else [info]

    def check_input_settings(self, **k: object) -> None:
        if self.mode == "rate":
            raise Exception("Invalid sample rate [PaErrorCode -9997]")

    def InputStream(self, **k: object) -> object:  # noqa: N802 (sounddevice's name)
        fake = self

        class Stream:
            def __enter__(self) -> Stream:
                if fake.mode == "busy":
                    raise Exception("Device unavailable [PaErrorCode -9985]")
                if fake.mode == "ok" and fake.audio is not None:
                    cb, a = k["callback"], fake.audio
                    for i in range(0, a.size, 1600):
                        cb(a[i:i + 1600, None], a[i:i + 1600].size, None, None)  # type: ignore[operator]
                return self

            def __exit__(self, *exc: object) -> None:
                return None

        return Stream()


@pytest.mark.parametrize("mode, expect", [("rate", "plughw"), ("busy", "cannot record"),
                                          ("silent", "stopped delivering audio after 0.0 s")])
def test_microphone_failures_are_one_line_and_exit_2(mode: str, expect: str, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A rate it cannot capture, a busy device, one that never delivers: exit 2 with what is wrong, no traceback."""
    from edge.capture import media

    monkeypatch.setattr(media, "_sounddevice", lambda: _FakeSd(mode))
    monkeypatch.setattr(mic_record.time, "sleep", lambda s: None)
    monkeypatch.setattr(mic_record, "GRACE_S", 0.05)
    assert main(["check-microphone", "--device", "USB", "--seconds", "3"]) == 2
    err = capsys.readouterr().err
    assert expect in err and "Traceback" not in err, err


def test_microphone_recording_is_assessed(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A device that delivers talking at a good level: the report says OK, exit 0."""
    from edge.capture import media

    monkeypatch.setattr(media, "_sounddevice", lambda: _FakeSd("ok", _talking(level_dbfs=-30.0)))
    monkeypatch.setattr(mic_record.time, "sleep", lambda s: None)
    assert main(["check-microphone", "--device", "USB", "--seconds", "10"]) == 0
    assert "OK: the voice model can use this level" in capsys.readouterr().out
