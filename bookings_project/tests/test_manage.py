"""manage.py as an operator meets it: whatever the command, Ctrl-C ends it with one line."""

import os
import signal
import subprocess
import sys

from django.conf import settings


def test_ctrl_c_in_any_command_is_one_line_and_exit_130_not_a_traceback(tmp_path):
    """Ctrl-C in a command that does not handle it itself (migrate, seed_demo, `make run` while it
    migrates or loads the demo data) printed a KeyboardInterrupt traceback and exited -2."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DOCUMENTS_DATABASE_URL"}}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c",
         "print('ready', flush=True); import time; time.sleep(60)"],
        cwd=settings.BASE_DIR, env={**env, "VAR_DIR": str(tmp_path)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait(10)
    assert process.returncode == 130
    assert stderr == "Interrupted.\n"
