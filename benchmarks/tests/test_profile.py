"""The profile summary names the project's own lines wherever the checkout was cloned."""

from benchmarks.profile import ROOT, summarize

VENV = f"{ROOT}.venv/lib/python3.11/site-packages/"


def _stack(*frames):
    return ";".join(f"{func} ({path}:{line})" for func, path, line in frames)


def test_project_lines_are_found_under_the_checkout_root_and_libraries_by_package():
    request = [("handle", f"{VENV}gunicorn/workers/gthread.py", 10),
               ("get_response", f"{VENV}django/core/handlers/base.py", 140),
               ("booking_create", f"{ROOT}reservations/services.py", 300),
               ("wait", f"{VENV}psycopg/connection.py", 495)]
    idle = [("run", f"{VENV}gunicorn/arbiter.py", 20)]
    raw = f"{_stack(*request)} 3\n{_stack(*idle)} 5\n"

    summary = summarize(raw)

    assert summary["request_samples"] == 3
    assert summary["sql_wait_pct"] == 100.0
    assert ("reservations/services.py:300 booking_create", 100.0) in summary["project_lines"]
    assert summary["leaf_frames"] == [("psycopg/connection.py:495 wait", 100.0)]
