#!/usr/bin/env python3
"""The two set-up commands, with nothing but Python 3.11+ installed.

    python3 dev.py demo   # install, migrate, seed, start web + worker + beat + Xero sandbox
    python3 dev.py test   # install, then run the whole test suite

Both create `.venv` and install from the lock files (requirements.lock, requirements-dev.lock).
`demo` runs on embedded defaults: SQLite (WAL) and kombu's filesystem broker, which a separate
worker process can reach. `test` uses PostgreSQL and Redis on 127.0.0.1 when they answer (CI
always; with CI=true a missing server is a failure, never a skip).
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
VAR = ROOT / "var"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

WEB_PORT = int(os.environ.get("BMS_DEMO_PORT", "8000"))
SANDBOX_PORT = int(os.environ.get("BMS_SANDBOX_PORT", "8765"))
# The demo has no Redis; the Xero rate limiter talks to fakeredis's TCP server instead (a
# Redis-compatible server with Lua, installed by pip). Production and CI use a real Redis.
EMBEDDED_REDIS_PORT = int(os.environ.get("BMS_EMBEDDED_REDIS_PORT", "6399"))
PG_URL = os.environ.get("BMS_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bms")
REDIS_URL = os.environ.get("BMS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def say(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    subprocess.run([str(a) for a in args], cwd=ROOT, env=env, check=True)


def install(*, dev: bool) -> None:
    locks = [ROOT / "requirements.lock"] + ([ROOT / "requirements-dev.lock"] if dev else [])
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in locks)).hexdigest()
    stamp = VENV / f".installed-{'dev' if dev else 'run'}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    if not PY.exists():
        say(f"creating virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    say("installing pinned dependencies from " + ", ".join(p.name for p in locks))
    run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade", "pip")
    args: list[str | Path] = [PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for lock in locks:
        args += ["-r", lock]
    run(*args)
    stamp.write_text(digest)


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def test_env() -> dict[str, str]:
    env = dict(os.environ)
    if "DATABASE_URL" not in env:
        if reachable("127.0.0.1", 5432):
            env["DATABASE_URL"] = PG_URL
        elif IN_CI:
            sys.exit(
                "[dev] CI=true but PostgreSQL does not answer on 127.0.0.1:5432 (DEVELOPERS.md)"
            )
        else:
            say("PostgreSQL is not running: tests marked 'postgres' will be skipped")
    if "BMS_TEST_REDIS_URL" not in env:
        if reachable("127.0.0.1", 6379):
            env["BMS_TEST_REDIS_URL"] = REDIS_URL
        elif IN_CI:
            sys.exit("[dev] CI=true but Redis does not answer on 127.0.0.1:6379 (DEVELOPERS.md)")
        else:
            say("Redis is not running: tests marked 'redis' will be skipped")
    env.setdefault("DJANGO_SETTINGS_MODULE", "bms.settings.test")
    return env


def cmd_test(extra: list[str]) -> int:
    install(dev=True)
    env = test_env()
    say(
        f"database: {env.get('DATABASE_URL', 'SQLite')}; "
        f"redis: {env.get('BMS_TEST_REDIS_URL', '-')}"
    )
    return subprocess.run([str(PY), "-m", "pytest", *extra], cwd=ROOT, env=env).returncode


def cmd_demo(extra: list[str]) -> int:
    install(dev=False)
    VAR.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "bms.settings.local")
    sandbox_url = f"http://127.0.0.1:{SANDBOX_PORT}"
    for key in ("XERO_API_BASE", "XERO_IDENTITY_BASE", "XERO_LOGIN_BASE"):
        env.setdefault(key, sandbox_url)
    env.setdefault("XERO_RATE_LIMIT_REDIS_URL", f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0")
    env.setdefault("XERO_CLIENT_ID", "BMS-DEMO-CLIENT")
    env.setdefault("XERO_CLIENT_SECRET", "bms-demo-secret")
    env.setdefault("XERO_WEBHOOK_KEY", "bms-demo-webhook-key")
    env.setdefault("XERO_REDIRECT_URI", f"http://127.0.0.1:{WEB_PORT}/xero/callback/")
    # "View in Xero" opens the sandbox's own pages in the demo.
    ui = sandbox_url + "/__sandbox__/ui/{tenant_id}"
    env.setdefault("XERO_CONTACT_URL_TEMPLATE", ui + "/contacts/{contact_id}")
    env.setdefault("XERO_INVOICE_URL_TEMPLATE", ui + "/invoices/{invoice_id}")
    env.setdefault("XERO_JOURNAL_URL_TEMPLATE", ui + "/journals")
    ports = ((WEB_PORT, "BMS web"), (SANDBOX_PORT, "Xero sandbox"),
             (EMBEDDED_REDIS_PORT, "embedded Redis"))  # fmt: skip
    for port, what in ports:
        if reachable("127.0.0.1", port):
            sys.exit(
                f"[dev] port {port} ({what}) is already in use; stop whatever runs there first"
            )
    manage = [str(PY), "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True)
    subprocess.run([*manage, "seed_demo"], cwd=ROOT, env=env, check=True)
    logs = VAR / "logs"
    logs.mkdir(exist_ok=True)
    processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str, args: list[str]) -> None:
        log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - closed when the demo exits
        processes[name] = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=log)

    start("redis", [str(PY), "dev.py", "embedded-redis", str(EMBEDDED_REDIS_PORT)])
    if (ROOT / "xero_sandbox").is_dir():
        start(
            "sandbox",
            [str(PY), "-m", "xero_sandbox", "--port", str(SANDBOX_PORT), "--seed", "demo",
             "--data", str(VAR / "xero-sandbox.json")],
        )  # fmt: skip
    start("web", [*manage, "runserver", f"127.0.0.1:{WEB_PORT}", "--noreload"])
    start(
        "worker",
        [str(BIN / "celery"), "-A", "bms", "worker", "--concurrency", "2", "--loglevel", "INFO"],
    )
    start(
        "beat",
        [str(BIN / "celery"), "-A", "bms", "beat", "--loglevel", "INFO",
         "--schedule", str(VAR / "celerybeat-schedule")],
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not reachable("127.0.0.1", WEB_PORT) and time.monotonic() < deadline:
        time.sleep(0.3)
    print(
        f"\nBMS is running at http://127.0.0.1:{WEB_PORT}/  (sign in as admin / admin, or clerk /"
        f" clerk)\nXero sandbox: {sandbox_url}/__sandbox__/ui/\n"
        f"Logs: {logs}/  ·  Ctrl-C stops everything.\n",
        flush=True,
    )
    # A supervisor (or `kill`) stops the demo with SIGTERM: clean up as Ctrl-C does, rather than
    # leaving the web server, worker, beat, sandbox and Redis running without their parent.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while all(p.poll() is None for p in processes.values()):
            time.sleep(1)
        dead = [name for name, p in processes.items() if p.poll() is not None]
        say(f"{', '.join(dead)} stopped; see {logs}. Shutting down the rest.")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in processes.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in processes.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def cmd_embedded_redis(port: int) -> int:
    """Serve fakeredis on loopback (run with the virtual environment's Python)."""
    from fakeredis import TcpFakeServer  # noqa: PLC0415 - only installed in the venv

    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main() -> int:
    if sys.version_info < (3, 11):
        sys.exit("BMS needs Python 3.11 or newer")
    if len(sys.argv) < 2 or sys.argv[1] not in {"demo", "test", "install", "embedded-redis"}:
        print(__doc__)
        return 2
    command, extra = sys.argv[1], sys.argv[2:]
    if command == "embedded-redis":
        return cmd_embedded_redis(int(extra[0]) if extra else EMBEDDED_REDIS_PORT)
    if command == "install":
        install(dev=True)
        return 0
    return cmd_test(extra) if command == "test" else cmd_demo(extra)


if __name__ == "__main__":
    sys.exit(main())
