"""An error after flag parsing reaches the user as one line `error: <message>` and exit status 1."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_app(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "apps.evaluate", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def empty_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "empty.keras"
    path.write_bytes(b"")
    return str(path)


def test_an_error_is_one_line_and_a_non_zero_exit(empty_model):
    result = run_app(f"--model={empty_model}")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: Expected a valid .keras archive (a zip file). Received: {empty_model!r}, 0 bytes that are "
        "not one: the file is empty, cut short (an interrupted copy or save), or of another format."
    )


def test_debug_shows_the_traceback(empty_model):
    result = run_app(f"--model={empty_model}", "--debug")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("ValueError: Expected a valid .keras archive")
