"""The built wheel works without the clone: ``gunicorn … intake.wsgi:app`` answers
/healthz and ``intake worker`` starts and stops cleanly on SIGTERM, from a folder outside
the repository, with intake imported from the installed wheel (not the source tree).

The wheel is built from a copy of the package sources (what a clean clone holds), then
installed with ``--no-deps`` into a target folder; the test venv supplies the
dependencies. gunicorn's access log is checked as well: no status-link token, no query.
"""

from __future__ import annotations

import http.client
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, free_port, subprocess_env, wait_for

SECRET_PATH = "/status/tok-3f9a7c1e5b2d-secret?lang=es&q=Ada+Lovelace"


def _get(port: int, path: str) -> int:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return 0


def test_the_installed_wheel_serves_and_works_outside_the_clone(
        tmp_path: Path, redis_url: str) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "intake", source / "intake",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "-w", str(tmp_path / "dist"), str(source)],
                           capture_output=True, text=True, timeout=180)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("intake-*.whl")
    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                                "--target", str(site), str(wheel)],
                               capture_output=True, text=True, timeout=180)
    assert installed.returncode == 0, installed.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    env = subprocess_env(PYTHONPATH=str(site), INTAKE_INSTANCE_PATH=str(tmp_path / "instance"),
                         INTAKE_BROKER_URL=redis_url, INTAKE_BIND=f"127.0.0.1:{port}",
                         INTAKE_WEB_WORKERS="1", INTAKE_LOG_LEVEL="INFO")
    where = subprocess.run([sys.executable, "-c", "import intake; print(intake.__file__)"],
                           env=env, cwd=elsewhere, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip() == str(site / "intake" / "__init__.py"), where
    intake = site / "bin" / "intake"  # the console script the wheel installed
    upgraded = subprocess.run([str(intake), "db", "upgrade"], env=env, cwd=elsewhere,
                              capture_output=True, text=True, timeout=120)
    assert upgraded.returncode == 0, upgraded.stderr

    web_log, worker_log = tmp_path / "web.log", tmp_path / "worker.log"
    with open(web_log, "wb") as out:
        web = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config",
                                "python:intake.gunicorn_conf", "intake.wsgi:app"],
                               env=env, cwd=elsewhere, stdout=out, stderr=subprocess.STDOUT)
    with open(worker_log, "wb") as out:
        worker = subprocess.Popen([str(intake), "worker"], env=env, cwd=elsewhere,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: web.poll() is not None or _get(port, "/healthz") == 200,
                 timeout=60, message="the installed app answering /healthz")
        assert web.poll() is None, web_log.read_text()
        assert _get(port, SECRET_PATH) == 404
        wait_for(lambda: worker.poll() is not None or "consuming from redis"
                 in worker_log.read_text(), timeout=60, message="the worker consuming")
        assert worker.poll() is None, worker_log.read_text()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, worker_log.read_text()
        assert "intake worker stopping" in worker_log.read_text()
        web.send_signal(signal.SIGTERM)
        assert web.wait(timeout=30) == 0, web_log.read_text()
    finally:
        for process in (web, worker):
            if process.poll() is None:
                process.kill()
                process.wait()
    log = web_log.read_text()
    assert '"GET /healthz HTTP/1.1" 200' in log, log
    assert '"GET /status/[token] HTTP/1.1" 404' in log, log
    for secret in ("tok-3f9a7c1e5b2d", "lang=es", "Ada", "Lovelace"):
        assert secret not in log, secret
