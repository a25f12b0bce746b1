"""Processes the bench starts in a lab host's network namespace, and their CPU counters.

Every process is started by the bench, remembered by PID and stopped by that PID only.
"""

import os
import signal
import subprocess
import time

import lab

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        # The command name may contain spaces; the fields after it are fixed.
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def cpu_split(pid):
    """(user, system) seconds, for a profile of where time goes."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def context_switches(pid):
    """Voluntary + involuntary context switches of every thread of pid so far (/proc/PID/task/*/status).
    Threads that ended are not counted: read it around a run of a process whose threads live on."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status", encoding="ascii") as f:
                # voluntary_ctxt_switches and nonvoluntary_ctxt_switches
                total += sum(int(line.split()[1]) for line in f if "ctxt_switches:" in line)
        except (OSError, ValueError, IndexError):
            pass
    return total


def listening(host, port, address=None):
    out = lab.run(lab.in_netns(host, ["ss", "-Hltn", f"sport = :{port}"]), check=False).stdout
    return any((address is None or f"{address}:{port}" in line) for line in out.splitlines())


def count_lines(path):
    """Lines in a file (0 when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


class Process:
    """One bench process in a lab host's netns; a context manager that always stops it."""

    def __init__(self, name, host, argv, port, log_path, address=None, stdout_path=None):
        """stdout_path: the process's standard output goes there, apart from its log (stderr)."""
        self.name, self.host, self.argv, self.port = name, host, argv, port
        self.address, self.log_path, self.stdout_path = address, log_path, stdout_path
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=15):
        return self.launch().wait_listening(timeout)

    def launch(self):
        """Start the process without waiting for it to listen (see wait_listening)."""
        if listening(self.host, self.port, self.address):
            raise RuntimeError(f"{self.name}: port {self.port} on {self.host} is already taken "
                               "(a bench left behind? see `ss -ltnp` in that netns)")
        log = open(self.log_path, "w", encoding="utf-8")  # pylint: disable=consider-using-with
        out = open(self.stdout_path, "w", encoding="utf-8") if self.stdout_path else None  # pylint: disable=consider-using-with
        self.proc = subprocess.Popen(lab.in_netns(self.host, self.argv), stdout=out or log,  # pylint: disable=consider-using-with
                                     stderr=log if out else subprocess.STDOUT, start_new_session=True)
        log.close()
        if out:
            out.close()
        return self

    def wait_listening(self, timeout):
        deadline = time.monotonic() + timeout
        while not listening(self.host, self.port, self.address):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: "
                                   f"{self.tail_log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not listen on :{self.port} within {timeout}s")
            time.sleep(0.05)
        return self

    def stdout_lines(self):
        """Lines written to stdout_path so far (None without one)."""
        return count_lines(self.stdout_path) if self.stdout_path else None

    def tail_log(self, lines=15):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
