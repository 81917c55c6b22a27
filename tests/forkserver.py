"""Tool processes forked from a warm interpreter: ``run_tool`` without paying the imports on every run.

A command-line tool spends 4-8 s of CPU importing torch, Lightning, torchvision and Hydra before it reads its first
argument, and the suite runs about a hundred of them; on two cores that was a third of ``make test``. One server
process per test worker imports them once (``PRELOAD``) and forks a child for each run. The child is a process of
its own, as ``python tools/<tool>.py ARGS`` started in ``cwd`` is: its own arguments (``sys.argv``, ``sys.path[0]``
the script's folder), working folder, environment, process group, stdin (``/dev/null``), stdout and stderr (files
the caller reads) and exit code (``SystemExit`` as the interpreter maps it; an uncaught exception prints its
traceback and exits 1; atexit handlers run).

Two things a fork cannot give, and the caller asks for a fresh interpreter instead (``needs_fresh``): what an
interpreter prints while importing (import-time warnings went to the server) and environment variables read when
the interpreter or a library starts (``STARTUP_ENV``: threads, instruction-set caps, ``PYTHONPATH``...).

Run as a script, this module is the server: one JSON request per line on stdin, replies on the stdout it was given.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import locale
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRELOAD = (
    "torch",
    "torchvision",
    "lightning",
    "hydra",
    "albumentations",
    "onnxruntime",
    "mobivision.commands.main",
    "mobivision.commands.train",
    "mobivision.commands.check",
    "mobivision.commands.predict",
    "mobivision.commands.export",
    "mobivision.commands.benchmark",
    "mobivision.commands.profile",
    "mobivision.tasks.runner",
)
# Read when the interpreter or a library starts, so a run that changes one needs a fresh interpreter.
STARTUP_ENV = ("PYTHON", "LD_", "OMP_", "MKL_", "KMP_", "OPENBLAS", "ATEN_", "ONEDNN_", "DNNL_", "TORCH", "CUDA")
STARTUP_ENV_NAMES = ("MOBIVISION_ALL_WARNINGS",)  # the command's warning filters: import-time warnings included


def needs_fresh(env: dict[str, str], server_env: dict[str, str]) -> bool:
    """Whether ``env`` differs from the server's in a variable read at start-up."""
    keys = set(env) | set(server_env)
    startup = [k for k in keys if k.startswith(STARTUP_ENV) or k in STARTUP_ENV_NAMES]
    return any(env.get(k) != server_env.get(k) for k in startup)


class ToolForkServer:
    """The client: ``run(command, cwd=..., env=..., timeout=...)`` as ``subprocess.run(..., capture_output=True,
    text=True)``, for ``command = [python, script, *args]``."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = dict(env)
        self.process = subprocess.Popen(
            [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self.env, bufsize=0
        )
        self._buffer = b""
        ready = self._reply(timeout=300)
        if ready.get("ready") is not True:
            raise RuntimeError(f"the tool fork server did not start: {ready}")

    def _reply(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.process.stdout], [], [], remaining)[0]:
                raise subprocess.TimeoutExpired("tool fork server", timeout)
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"the tool fork server ended (exit code {self.process.poll()})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def run(
        self, command: list[str], *, cwd: Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory(prefix="mv-tool-") as tmp:
            out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
            request = {"argv": command[1:], "cwd": str(cwd), "env": env, "stdout": str(out), "stderr": str(err)}
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            pid = self._reply(timeout=60)["pid"]
            try:
                returncode = self._reply(timeout=timeout)["returncode"]
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)  # the child and whatever it started (its own process group)
                self._reply(timeout=60)
                raise subprocess.TimeoutExpired(command, timeout) from None
            encoding = locale.getpreferredencoding(False)  # as subprocess's text mode decodes
            stdout, stderr = (p.read_text(encoding=encoding) for p in (out, err))
        return subprocess.CompletedProcess(command, returncode, stdout, stderr)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _exit_code(exc: SystemExit) -> int:
    """The exit status the interpreter gives ``sys.exit(code)``: None 0, an int itself, anything else printed, 1."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _child(request: dict, reply_fd: int) -> None:
    """Become ``python script args`` in the request's folder and environment; never returns."""
    import atexit
    import runpy
    import threading
    import traceback

    code = 1
    try:
        os.close(reply_fd)
        os.setsid()
        for fd, path, flags in (
            (0, os.devnull, os.O_RDONLY),
            (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
            (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        ):
            opened = os.open(path, flags, 0o644)
            os.dup2(opened, fd)
            os.close(opened)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # recomputed from this run's TMPDIR
        script, *args = request["argv"]
        sys.argv = [script, *args]
        sys.path[0] = str(Path(script).resolve().parent)
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc)
        except BaseException:
            traceback.print_exc()
            code = 1
        threading._shutdown()  # as the interpreter does at exit: wait for non-daemon threads
        atexit._run_exitfuncs()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """Import ``PRELOAD``, then fork one child per request line until stdin closes."""
    reply_fd = os.dup(1)
    os.dup2(2, 1)  # nothing the server imports writes into the replies
    for name in PRELOAD:
        importlib.import_module(name)
    replies = os.fdopen(reply_fd, "w", buffering=1)
    replies.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request, reply_fd)
        replies.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")


if __name__ == "__main__":
    serve()
