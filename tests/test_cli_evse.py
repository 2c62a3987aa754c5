"""The `evse` command: fast help (heavy modules only inside subcommands), subcommand help,
`evse secc` + `evse ev` as two processes, graceful SIGINT, `evse config check`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evse import cli
from tests.conftest import ROOT

ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def _evse(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evse", *args], capture_output=True,
                          text=True, cwd=ROOT, env=ENV, timeout=timeout)


def test_help_is_fast_and_imports_nothing_heavy() -> None:
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        p = _evse("--help")
        times.append(time.perf_counter() - t0)
        assert p.returncode == 0 and "secc" in p.stdout and "demo" in p.stdout
    assert min(times) < 2.0  # 0.5 s on an idle machine; generous for loaded CI
    # the plugged commands' light module (simulators.commands) is loaded to list them
    probe = ("import sys; from evse import cli; cli.build_parser('demo'); "
             "print(sorted(m for m in sys.modules if (m.split('.')[0] in "
             "('asyncio', 'exi_codec', 'simulators', 'hal', 'ssl', 'cryptography') "
             "or m.startswith('evse.protocol')) and m not in ('simulators', "
             "'simulators.commands')))")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                       env=ENV, timeout=30)
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stdout + p.stderr


@pytest.mark.parametrize(("command", "options"), [
    ("secc", ["--interface", "--hal", "--config", "--allow-plain-tcp-iso20", "--port",
              "--tls-port", "--address", "--pki"]),
    ("ev", ["--interface", "--scenario", "--host", "--port", "--tls", "--ca"]),
    ("demo", ["--scenario", "--tls", "--speedup", "--loops"]),
    ("fleet-sim", ["--processes", "--broker", "--speedup", "--profile", "--no-aggregator"]),
])
def test_subcommand_help(command: str, options: list[str]) -> None:
    p = _evse(command, "--help")
    assert p.returncode == 0, p.stderr
    for option in options:
        assert option in p.stdout, (option, p.stdout)


def test_demo_rejects_an_unknown_scenario() -> None:
    p = _evse("demo", "--scenario", "no_such_scenario")
    assert p.returncode == 2 and "unknown scenario" in p.stderr and "dc_bpt_scheduled" in p.stderr


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_verbose_flag_before_or_after_the_command() -> None:
    assert cli.build_parser("demo").parse_args(["-vv", "demo"]).verbose == 2
    assert cli.build_parser("demo").parse_args(["demo", "-v"]).verbose == 1
    assert cli.build_parser("demo").parse_args(["demo"]).verbose == 0


def test_secc_refuses_plain_tcp_without_the_test_option() -> None:
    p = _evse("secc", "--address", "127.0.0.1", "--no-sdp", timeout=30)
    assert p.returncode == 2 and "TLS" in p.stderr


def test_config_check(tmp_path: Path) -> None:
    example = ROOT / "config" / "evse.example.toml"
    if example.exists():
        p = _evse("config", "check", str(example))
        assert p.returncode == 0 and "OK" in p.stdout, p.stdout + p.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[station]\nid = 'X'\n[limits]\nmax_voltage = -1\n")
    p = _evse("config", "check", str(bad))
    assert p.returncode == 1 and "limits.max_voltage" in p.stdout


def test_secc_and_ev_processes_then_graceful_sigint() -> None:
    secc = subprocess.Popen(
        [sys.executable, "-m", "evse", "secc", "--address", "127.0.0.1", "--port", "0",
         "--allow-plain-tcp-iso20", "--no-sdp", "--sim-speedup", "10"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert secc.stdout is not None
        line = secc.stdout.readline()
        m = re.search(r"plain TCP on port (\d+)", line)
        assert m, line
        ev = _evse("ev", "--host", "127.0.0.1", "--port", m[1], "--no-tls", "--scenario",
                   "dc_bpt_dynamic", "--loops", "5", "--loop-interval", "0.05")
        assert ev.returncode == 0, ev.stdout + ev.stderr
        assert "scenario dc_bpt_dynamic: OK" in ev.stdout
        secc.send_signal(signal.SIGINT)
        out, err = secc.communicate(timeout=20)
        assert secc.returncode == 0, err
        assert "stopped after 1 session" in out
        assert "session ended" in err  # INFO logging by default for `evse secc`
    finally:
        if secc.poll() is None:
            secc.kill()
            secc.communicate()


def test_secc_protocols_option(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser("secc")
    ns = parser.parse_args(["secc", "--protocols", " ISO20 "])
    assert ns.protocols == ("iso20",)
    assert parser.parse_args(["secc"]).protocols is None  # [station] protocols, else iso20
    assert parser.parse_args(["secc", "--protocols", "iso20,din"]).protocols == ("iso20", "din")
    for bad, error in [("iso20,x", "unknown protocols ['x']"), ("din,din", "listed twice")]:
        with pytest.raises(SystemExit):
            parser.parse_args(["secc", "--protocols", bad])
        assert error in capsys.readouterr().err


def test_secc_protocols_reach_the_seccconfig(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from evse.aio.app import SeccOptions, _needs_tls, _plain_tcp, build_station
    from evse.protocol.standards import STANDARDS

    monkeypatch.setitem(STANDARDS, "din", dataclasses.replace(
        STANDARDS["din"], factory=lambda ctx: ctx))  # as the DIN machine will register
    _, config = build_station(SeccOptions(protocols=("din", "iso20")), None)
    assert config.protocols == ("din", "iso20")
    assert _plain_tcp(config) and _needs_tls(config)  # DIN on TCP, -20 on TLS
    _, config = build_station(SeccOptions(protocols=("din",)), None)
    assert _plain_tcp(config) and not _needs_tls(config)
    _, config = build_station(SeccOptions(), None)
    assert config.protocols == ("iso20",) and not _plain_tcp(config) and _needs_tls(config)


# -- commands plugged in through the `evse.commands` entry points (issue 12 item 5) ---------------
def test_simulator_commands_are_installed_entry_points() -> None:
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group=cli.ENTRY_POINT_GROUP)}
    assert {"demo", "ev", "sim-hw"} <= set(names), "run `make setup` to install entry points"
    plugged = cli.plugged_commands()
    for name in ("demo", "ev", "sim-hw"):
        assert plugged[name].help and plugged[name].description
    assert "secc" not in plugged and "config" not in plugged


@pytest.mark.parametrize("command", ["demo", "ev", "sim-hw", "fleet-sim"])
def test_simulator_command_without_simulators_says_so(
        command: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "plugged_commands", dict)  # a charger installed without them
    assert cli.main([command, "--help"]) == 2
    err = capsys.readouterr().err
    assert f"evse {command}:" in err and "simulators, which are not installed" in err
    assert cli.main(["config"]) == 2  # the charger's own commands still work


class _Hello:
    help = "say hello"
    description = "A command from another distribution."
    log_level = 20

    def __init__(self) -> None:
        self.seen: list[str] = []

    def add_arguments(self, parser: object) -> None:
        parser.add_argument("--name", default="world")  # type: ignore[attr-defined]

    def run(self, ns: object) -> int:
        self.seen.append(ns.name)  # type: ignore[attr-defined]
        return 7


def test_a_plugged_command_gets_its_options_and_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    hello = _Hello()
    monkeypatch.setattr(cli, "plugged_commands", lambda: {"hello": hello})
    assert cli.main(["hello", "--name", "integrator"]) == 7
    assert hello.seen == ["integrator"]
    help_text = cli.build_parser(None, {"hello": hello}).format_help()
    assert "hello" in help_text and "say hello" in help_text
