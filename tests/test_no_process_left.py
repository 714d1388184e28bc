"""The suite's own check that no process outlives it (tests/conftest.py::pytest_sessionfinish) works."""

import subprocess
import sys
import textwrap


def test_a_process_left_running_fails_the_run_and_is_killed(tmp_path):
    (tmp_path / "conftest.py").write_text((__import__("pathlib").Path(__file__).parent / "conftest.py").read_text())
    (tmp_path / "test_leak.py").write_text(textwrap.dedent("""
        import subprocess, sys

        def test_leaves_a_sleeper_behind(tmp_path):
            process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
            (tmp_path.parent / "pid").write_text(str(process.pid))
    """))
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q",
                           str(tmp_path / "test_leak.py"), "--rootdir", str(tmp_path),
                           f"--basetemp={tmp_path / 'base'}"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "processes left running by the tests (now killed)" in done.stdout
    import psutil

    pid = int(next((tmp_path / "base").rglob("pid")).read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
