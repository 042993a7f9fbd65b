"""A real server for front-door tests: gunicorn on a free loopback port, its own database.

The in-process test client runs one request at a time on the test's own
connection, and pytest-django's live server shares an in-memory SQLite
connection between threads, so neither can show a lost update, a lock error
or a cache eviction. This starts the service as it runs for real: gunicorn
with several worker processes and threads, on a database of its own (a SQLite
file when the suite runs on SQLite, a fresh PostgreSQL database next to the
test database when it runs on PostgreSQL), migrated and seeded with one
tenant admin through the management commands. Tests then talk to it over
HTTP only, and create what else they need through the API.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

REPO = Path(__file__).resolve().parent.parent.parent
ROOT_ADMIN_EMAIL = "root-admin@live.test"
ROOT_ADMIN_PASSWORD = "live-stack-root-2026"
LIVE_TENANT = "Live Plant"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Answer:
    status: int
    body: object
    headers: dict


@dataclass
class LiveStack:
    port: int
    env: dict
    process: subprocess.Popen
    log_path: Path
    _reset: Callable[[], None] = field(repr=False, default=lambda: None)

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        headers: dict | None = None,
        *,
        source: str | None = None,
        timeout: float = 30,
    ) -> Answer:
        """One HTTP request; `source` is the loopback address to send from (e.g. "127.0.0.7"),
        so a test can be many clients: the server sees it as REMOTE_ADDR."""
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=timeout, source_address=(source, 0) if source else None
        )
        try:
            all_headers = {"Content-Type": "application/json", **(headers or {})}
            connection.request(method, path, body=None if body is None else json.dumps(body), headers=all_headers)
            response = connection.getresponse()
            raw = response.read()
            status, answer_headers = response.status, dict(response.getheaders())
        finally:
            connection.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Answer(status=status, body=parsed, headers=answer_headers)

    def login(self, email: str, password: str, headers: dict | None = None, source: str | None = None) -> Answer:
        return self.request(
            "POST", "/api/v1/auth/token", {"email": email, "password": password}, headers, source=source
        )

    def access_token(self, email: str = ROOT_ADMIN_EMAIL, password: str = ROOT_ADMIN_PASSWORD) -> str:
        answer = self.login(email, password)
        assert answer.status == 200, answer
        return answer.body["access"]

    def create_user(self, *, email: str, password: str, role: str = "viewer", admin_token: str | None = None) -> dict:
        token = admin_token or self.access_token()
        answer = self.request(
            "POST",
            "/api/v1/users",
            {"email": email, "password": password, "role": role},
            {"Authorization": f"Bearer {token}"},
        )
        assert answer.status == 201, answer
        return answer.body

    def reset_throttles(self) -> None:
        """Forget every throttle window, so one test's lockouts do not reach the next."""
        self._reset()

    def server_log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def manage(self, *args: str) -> str:
        """Run a management command in the stack's environment (its database, its settings)."""
        return _manage(self.env, *args)


def in_parallel(count: int, work: Callable[[int], object], timeout: float = 60) -> list:
    """Run work(0..count-1) in `count` threads released together by a barrier; their results, in order."""
    barrier = threading.Barrier(count, timeout=timeout)
    results: list = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as exc:  # a crash must fail the test, not vanish with the thread
            results[index] = exc

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    crashed = [result for result in results if isinstance(result, Exception)]
    assert not crashed, crashed
    return results


def _manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _database_for_stack(tmp_dir: Path) -> tuple[str, Callable[[], None], Callable[[], None]]:
    """A DATABASE_URL of the stack's own, a function that empties its throttle table, and a cleanup."""
    default = settings.DATABASES["default"]
    if default["ENGINE"] == "django.db.backends.postgresql":
        import psycopg

        # Next to the test database (e.g. test_haltless_ci_live), on the same server.
        name = f"{default['NAME']}_live"
        conninfo = {
            "host": default.get("HOST") or "127.0.0.1",
            "port": default.get("PORT") or 5432,
            "user": default.get("USER") or "postgres",
            "password": default.get("PASSWORD") or None,
        }

        def admin_sql(sql: str) -> None:
            with psycopg.connect(dbname="postgres", autocommit=True, **conninfo) as conn:
                conn.execute(sql)

        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin_sql(f'CREATE DATABASE "{name}"')
        password = f":{conninfo['password']}" if conninfo["password"] else ""
        url = f"postgres://{conninfo['user']}{password}@{conninfo['host']}:{conninfo['port']}/{name}"

        def reset() -> None:
            with psycopg.connect(dbname=name, autocommit=True, **conninfo) as conn:
                conn.execute("DELETE FROM core_throttlecounter")

        return url, reset, lambda: admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    import sqlite3

    path = tmp_dir / "live.sqlite3"

    def reset_sqlite() -> None:
        with sqlite3.connect(path, timeout=30) as conn:
            conn.execute("DELETE FROM core_throttlecounter")

    return f"sqlite:///{path}", reset_sqlite, lambda: None


# Run by `manage.py shell` in the stack's environment: the live tenant and its root admin,
# and `race_tenants` tenants with exactly two admins each (race{i}-a/-b@live.test), for
# tests of the last-admin rule, which needs a tenant where only two admins are left.
_SEED = """
from tenants.services import tenant_create
from users.services import user_create
from core.caller import Caller
live = tenant_create(name={tenant!r})
user_create(by=Caller.system(tenant_id=live.pk), email={email!r}, password={password!r}, role="admin")
for i in range({race_tenants}):
    race = tenant_create(name="Race %d" % i)
    by = Caller.system(tenant_id=race.pk)
    for side in "ab":
        user_create(by=by, email="race%d-%s@live.test" % (i, side), password={password!r}, role="admin")
"""


def race_admin_email(index: int, side: str) -> str:
    return f"race{index}-{side}@live.test"


def _postgres_reset(database_url: str) -> Callable[[], None]:
    def reset() -> None:
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM core_throttlecounter")

    return reset


def start_live_stack(
    tmp_dir: Path,
    *,
    workers: int = 2,
    threads: int = 8,
    race_tenants: int = 12,
    extra_env: dict | None = None,
    database_url: str | None = None,
):
    """Start the stack; returns (LiveStack, stop). Race admins' password is ROOT_ADMIN_PASSWORD.

    `database_url`: an empty PostgreSQL database the caller made (the fault suite's own
    cluster); by default the stack makes its own next to the test database.
    """
    if database_url is None:
        database_url, reset, drop_database = _database_for_stack(tmp_dir)
    else:
        reset, drop_database = _postgres_reset(database_url), lambda: None
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "haltless.settings.test",
            "DATABASE_URL": database_url,
            "PYTHONDONTWRITEBYTECODE": "1",
            **(extra_env or {}),
        }
    )
    _manage(env, "migrate", "--noinput")
    _manage(
        env,
        "shell",
        "-c",
        _SEED.format(
            tenant=LIVE_TENANT, email=ROOT_ADMIN_EMAIL, password=ROOT_ADMIN_PASSWORD, race_tenants=race_tenants
        ),
    )
    port = free_port()
    log_path = tmp_dir / "gunicorn.log"
    log = log_path.open("w")
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen(
        [
            str(gunicorn),
            "haltless.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--timeout",
            "60",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    stack = LiveStack(port=port, env=env, process=process, log_path=log_path, _reset=reset)
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, stack.server_log()
        try:
            if stack.request("GET", "/healthz", timeout=2).status == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the live server did not come up:\n" + stack.server_log()
        time.sleep(0.2)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        drop_database()

    return stack, stop
