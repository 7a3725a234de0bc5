"""Start pinned processes in their own sessions and stop exactly those, even when interrupted.

Every process the harness starts goes through `Processes.start`: it runs under `taskset -c CPUS`
in a new session (so its process group id is its pid), its output goes to a log file, and it is
registered. `Processes.stop_all` (run on normal exit, on SIGINT/SIGTERM/SIGHUP and at interpreter
exit) sends SIGTERM to each registered group, waits briefly, then SIGKILLs what is left. Nothing is
ever stopped by name. If the harness is SIGKILLed, its direct children get SIGTERM (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Processes:
    """The registry of everything this run started; `stop_all` is idempotent."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._procs: list[Proc] = []
        atexit.register(self.stop_all)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _raise_interrupt)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cpus: str | None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdout_pipe: bool = False,
    ) -> Proc:
        cmd = (["taskset", "-c", cpus] if cpus is not None else []) + list(argv)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else log,
                stderr=log,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        proc = Proc(name, popen, log_path)
        self._procs.append(proc)
        return proc

    def stop(self, proc: Proc, timeout_s: float = 8.0) -> None:
        """SIGTERM the process group, wait up to `timeout_s` for every member, then SIGKILL it."""
        if proc not in self._procs:
            return
        self._procs.remove(proc)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _group_alive(proc):
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=2)
        if proc.popen.stdout is not None:
            proc.popen.stdout.close()

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs)):
            self.stop(proc)


def _group_alive(proc: Proc) -> bool:
    """Does any live (non-zombie) process remain in the group we started?"""
    proc.popen.poll()  # reap the leader if it has exited
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, pgid = fields[0], int(fields[2])
        if pgid == proc.pid and state != "Z":
            return True
    return False


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the harness itself is SIGKILLed (a backstop; Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, proc: Proc | None, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited (status {proc.popen.returncode}):\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            tail = proc.log_tail() if proc is not None else ""
            raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout_s:.0f}s\n{tail}")
        time.sleep(0.05)


def group_members(pgid: int) -> list[int]:
    """Live pids of the process group (the gateway's supervisor and its worker processes)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return sorted(members)


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pgid: int) -> float:
    """User + system CPU time consumed so far by the live members of a process group."""
    return sum(cpu_split(pgid))


def cpu_split(pgid: int) -> tuple[float, float]:
    """User and system CPU time consumed so far by the live members of a process group."""
    user = system = 0
    for pid in group_members(pgid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime
    return user / _TICKS, system / _TICKS


def rss_mb(pid: int) -> float:
    """Resident set size of one process, MB (VmRSS from /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
