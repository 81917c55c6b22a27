"""``tests/forkserver.py``: a tool run forked from the warm server behaves as ``python script args`` started fresh:
the same exit code, output, working folder and environment; a hung run is killed at its timeout, with whatever it
started; start-up variables send a run to a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import _tool_env
from forkserver import ToolForkServer, needs_fresh

SCRIPT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    print("argv", sys.argv[1:], "cwd", Path.cwd().name, "env", os.environ.get("MV_TEST_VALUE"))
    print("path0", Path(sys.path[0]).name, "stdin", sys.stdin.read() == "")
    print("to stderr", file=sys.stderr)
    if sys.argv[1] == "exit":
        sys.exit(int(sys.argv[2]))
    if sys.argv[1] == "message":
        sys.exit("a message")
    if sys.argv[1] == "raise":
        raise KeyError("boom")
    if sys.argv[1] == "hang":
        import subprocess, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        Path(sys.argv[2]).write_text(str(child.pid))
        time.sleep(600)
    """
)


@pytest.fixture(scope="module")
def server() -> Iterator[ToolForkServer]:
    started = ToolForkServer(_tool_env(None))
    yield started
    started.close()


@pytest.fixture
def script(tmp_path: Path) -> Path:
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "tool.py").write_text(SCRIPT)
    return folder / "tool.py"


@pytest.mark.parametrize(
    "args", [["exit", "0"], ["exit", "3"], ["message"], ["raise"]], ids=["ok", "code", "message", "exception"]
)
def test_a_forked_run_gives_what_a_fresh_interpreter_gives(
    server: ToolForkServer, script: Path, tmp_path: Path, args: list[str]
) -> None:
    env = {**_tool_env(None), "MV_TEST_VALUE": "seen"}
    command = [sys.executable, str(script), *args]
    fresh = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    forked = server.run(command, cwd=tmp_path, env=env, timeout=60)
    assert forked.returncode == fresh.returncode and forked.stdout == fresh.stdout
    assert (
        f"argv {args!r} cwd {tmp_path.name} env seen" in forked.stdout and "path0 scripts stdin True" in forked.stdout
    )
    if args[0] == "raise":  # the traceback's frames differ (runpy's against the interpreter's), its last line not
        assert forked.stderr.splitlines()[-1] == fresh.stderr.splitlines()[-1] == "KeyError: 'boom'"
    else:
        assert forked.stderr == fresh.stderr


def test_a_run_past_its_timeout_is_killed_with_what_it_started(
    server: ToolForkServer, script: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    with pytest.raises(subprocess.TimeoutExpired):
        server.run([sys.executable, str(script), "hang", str(pid_file)], cwd=tmp_path, env=_tool_env(None), timeout=5)
    grandchild = int(pid_file.read_text())
    state = Path(f"/proc/{grandchild}/stat")
    assert not state.exists() or state.read_text().split()[2] == "Z"  # gone, or a zombie awaiting its parent
    again = server.run([sys.executable, str(script), "exit", "0"], cwd=tmp_path, env=_tool_env(None), timeout=60)
    assert again.returncode == 0  # the server goes on serving


def test_start_up_variables_ask_for_a_fresh_interpreter() -> None:
    base = {"OMP_NUM_THREADS": "1", "HOME": "/root"}
    assert not needs_fresh({**base, "HOME": "/tmp", "COLUMNS": "200"}, base)  # read while running: forkable
    assert needs_fresh({**base, "OMP_NUM_THREADS": "2"}, base)
    assert needs_fresh({**base, "PYTHONPATH": "/plugin"}, base)
    assert needs_fresh({**base, "ATEN_CPU_CAPABILITY": "avx2"}, base)
    assert needs_fresh({"HOME": "/root"}, base)  # a variable removed counts too
