"""Shared pieces of the benchmarks: the machine, databases, a real server process, wrk."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PY = sys.executable
SECRET = "bench-secret-" + "0123456789abcdef" * 5
PG = {"host": os.environ.get("BENCH_PG_HOST", "127.0.0.1"), "port": "5432", "user": "postgres"}
RUNS = int(os.environ.get("BENCH_RUNS", "3"))

sys.path.insert(0, str(ROOT))


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def machine() -> dict[str, Any]:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        kib = int(f.readline().split()[1])
    return {"nproc": os.cpu_count(), "cpu": model, "ram_gib": round(kib / 2**20, 1)}


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def psql(sql: str, db: str = "postgres") -> str:
    out = subprocess.run(
        [
            "psql",
            "-h",
            PG["host"],
            "-U",
            PG["user"],
            "-d",
            db,
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


@contextlib.contextmanager
def database(prefix: str) -> Iterator[str]:
    """A fresh, empty database (dropped afterwards)."""
    name = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
    psql(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(db: str) -> None:
    from sqlalchemy import URL

    from store.migrate import upgrade

    upgrade(
        URL.create(
            "postgresql+asyncpg",
            username="postgres",
            password="x",
            host=PG["host"],
            port=5432,
            database=db,
        )
    )


def token(user: uuid.UUID) -> str:
    from web.auth import issue_token

    return issue_token(SECRET, user)


def wav_bytes(seconds: float = 1.0, rate: int = 16_000) -> bytes:
    """A tone (not silence: the decoder refuses silent recordings), 16-bit mono WAV."""
    n = int(seconds * rate)
    frames = bytearray()
    for i in range(n):
        v = int(8000 * math.sin(2 * math.pi * 220 * i / rate))
        frames += v.to_bytes(2, "little", signed=True)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return buf.getvalue()


BOUNDARY = "benchboundary7MA4YWxkTrZu0gW"


def multipart(wav: bytes, fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    parts = []
    for k, v in (fields or {}).items():
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        )
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="one.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n".encode()
        + wav
        + b"\r\n"
    )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={BOUNDARY}"


def service_env(db: str, port: int, **extra: Any) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "MANAGER_DB_POSTGRES_HOST": PG["host"],
            "MANAGER_DB_POSTGRES_USER": "postgres",
            "MANAGER_DB_POSTGRES_PASSWORD": "x",
            "MANAGER_DB_POSTGRES_NAME": db,
            "MANAGER_HTTP_HOST": "127.0.0.1",
            "MANAGER_HTTP_PORT": str(port),
            "MANAGER_AUTH_JWT_SECRET": SECRET,
            "MANAGER_DEBUG_MODE": "false",
            "MANAGER_LOG_LEVEL": "warning",
        }
    )
    env.update({f"MANAGER_{k.upper()}": str(v) for k, v in extra.items()})
    return env


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


@contextlib.contextmanager
def process(
    args: list[str],
    env: dict[str, str] | None = None,
    ready: str | None = None,
    log: str | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    out = open(log or os.devnull, "wb")
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=raise_nofile
    )
    try:
        if ready:
            wait_http(ready, proc=proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        out.close()


@contextlib.contextmanager
def service(db: str, **extra: Any) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``python run.py`` on a free port against ``db``; yields (base url, process)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = os.environ.get("BENCH_SERVICE_LOG") or tempfile.mktemp(prefix="bench-svc-", suffix=".log")
    with process(
        [PY, "run.py"], service_env(db, port, **extra), ready=url + "/healthz", log=log
    ) as proc:
        yield url, proc


@contextlib.contextmanager
def stubs(**delays: float) -> Iterator[dict[str, int]]:
    """The three ILPS stage stubs (bench/_stubs.py); yields the service env for them."""
    ports = {name: free_port() for name in ("preprocessing", "transcribing", "feedback", "control")}
    env = dict(os.environ)
    env["STUB_PORTS"] = json.dumps(ports)
    env["STUB_DELAYS"] = json.dumps(delays)
    with process(
        [PY, str(BENCH / "_stubs.py")], env, ready=f"http://127.0.0.1:{ports['control']}/healthz"
    ):
        yield ports


def stub_env(ports: dict[str, int]) -> dict[str, Any]:
    env: dict[str, Any] = {}
    for name in ("preprocessing", "transcribing", "feedback"):
        env[f"service_{name}_host"] = "127.0.0.1"
        env[f"service_{name}_port"] = ports[name]
    return env


def stub_control(ports: dict[str, int], action: str) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{ports['control']}/{action}", method="POST")
    urllib.request.urlopen(req, timeout=10).read()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    assert m, text
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(
    url: str,
    *,
    connections: int = 16,
    seconds: float = 10,
    threads: int = 1,
    lua: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run wrk; req/s, p50/p99 (ms), and non-2xx/3xx and socket errors."""
    args = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{int(seconds)}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    for k, v in (headers or {}).items():
        args += ["-H", f"{k}: {v}"]
    script = None
    if lua:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(lua)
        script.close()
        args += ["-s", script.name]
    out = subprocess.run(
        args + [url], check=True, capture_output=True, text=True, preexec_fn=raise_nofile
    ).stdout
    if script:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "rps": round(rps, 1),
        "p50_ms": round(_ms(lat["50"]), 3),
        "p99_ms": round(_ms(lat["99"]), 3),
        "requests": int(total.group(1)) if total else None,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else None,
    }


def post_lua(body_path: str, content_type: str, bearer: str) -> str:
    return f"""
local f = assert(io.open("{body_path}", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "{content_type}"
wrk.headers["Authorization"] = "Bearer {bearer}"
"""


def summarise(
    runs: list[dict[str, Any]], keys: tuple[str, ...] = ("rps", "p50_ms", "p99_ms")
) -> dict[str, Any]:
    """The median of each key over the runs, and the runs themselves."""
    out: dict[str, Any] = {k: median([r[k] for r in runs]) for k in keys}
    out["runs"] = runs
    return out


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def emit(report: dict[str, Any]) -> None:
    print(json.dumps(report))


class SseClients:
    """1..n ``_sse_client.py`` processes, each opening a share of the streams."""

    def __init__(self, processes: int = 1) -> None:
        self._procs = [
            subprocess.Popen(
                [PY, str(BENCH / "_sse_client.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=raise_nofile,
            )
            for _ in range(processes)
        ]

    def open(self, url: str, bearer: str, count: int, paths: list[str]) -> int:
        host, port = url.removeprefix("http://").split(":")
        share = count // len(self._procs)
        for p in self._procs:
            assert p.stdin
            p.stdin.write(f"open {host} {port} {bearer} {share} {' '.join(paths)}\n")
            p.stdin.flush()
        ok = 0
        for p in self._procs:
            assert p.stdout
            ok += int(p.stdout.readline().split()[1])
        return ok

    def wait(self, seconds: float) -> dict[str, Any]:
        for p in self._procs:
            assert p.stdin
            p.stdin.write(f"wait {seconds}\n")
            p.stdin.flush()
        total: dict[str, Any] = {}
        for p in self._procs:
            assert p.stdout
            part = json.loads(p.stdout.readline())
            for k, v in part.items():
                if isinstance(v, dict):  # counts by key: add them up
                    merged = total.setdefault(k, {})
                    for key, n in v.items():
                        merged[key] = merged.get(key, 0) + n
                else:
                    total[k] = total.get(k, 0 if not isinstance(v, list) else []) + v
        return total

    def close(self) -> None:
        for p in self._procs:
            assert p.stdin
            p.stdin.write("quit\n")
            p.stdin.flush()
        for p in self._procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def latency_summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50), 3),
        "p99_ms": round(percentile(values, 99), 3),
        "max_ms": round(max(values), 3) if values else None,
    }


def create_tasks(
    url: str, bearer: str, n: int, concurrency: int = 16, fields: dict[str, str] | None = None
) -> list[str]:
    """Create n tasks through the API (1 s WAV); their ids."""
    import asyncio

    import httpx

    body, content_type = multipart(wav_bytes(1.0), fields)
    headers = {"Authorization": f"Bearer {bearer}", "Content-Type": content_type}
    ids: list[str] = []

    async def worker(client: httpx.AsyncClient, count: int) -> None:
        for _ in range(count):
            r = await client.post("/tasks", content=body, headers=headers)
            r.raise_for_status()
            ids.append(r.json()["id"])

    async def main() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            per = [n // concurrency + (1 if i < n % concurrency else 0) for i in range(concurrency)]
            await asyncio.gather(*(worker(client, k) for k in per if k))

    asyncio.run(main())
    return ids
