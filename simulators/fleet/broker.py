"""A real mosquitto for the fleet, on a free loopback port (when no `--broker` is given)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def find_mosquitto() -> str | None:
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("mosquitto")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """`with Mosquitto(directory) as broker:` a broker on broker.host:broker.port."""

    def __init__(self, directory: Path, *, binary: str | None = None,
                 host: str = "127.0.0.1") -> None:
        found = binary or find_mosquitto()
        if found is None:
            raise RuntimeError("mosquitto not found (looked at /usr/sbin/mosquitto and on "
                               "PATH): install it (apt-get install mosquitto) or give --broker")
        self.binary = found
        self.host = host
        self.port = free_port(host)
        self.conf = directory / "mosquitto.conf"
        self.log = directory / "mosquitto.log"
        # nodelay: setpoint round trips without Nagle delays; the size cap as docs/mqtt_api.md
        # recommends; max_queued_messages: a fleet's state bursts must not be dropped
        self.conf.write_text(
            f"listener {self.port} {host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "set_tcp_nodelay true\n"
            "message_size_limit 262144\n"
            "max_queued_messages 10000\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 5.0) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited at start (see {self.log})")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None

    def cpu_seconds(self) -> float | None:
        """The broker's user + system CPU so far (Linux /proc), None if unknown."""
        if self.proc is None:
            return None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
