"""The production shape, in the foreground: nginx on HOST:PORT in front of gunicorn on a
Unix socket (what `make serve` runs, once the schema and definitions are up to date).

    python deploy/serve.py

Read from the environment: HOST and PORT (default 127.0.0.1:8080), WORKERS (default
from the CPU count, see deploy/gunicorn.conf.py), SERVE_DIR (the run directory, default
instance/serve), and every setting of the app (DATABASE_URL, RATELIMIT_STORAGE_URI,
SECRET_KEY ...), passed on to gunicorn as they are; PROXY_COUNT is set to 1, nginx.

Ctrl-C or SIGTERM stops both gracefully: nginx first, which ends the requests it holds,
then gunicorn. SIGHUP reloads both: nginx's configuration, gunicorn's workers one by one.
If either stops on its own, the other is stopped and the exit status is 1.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from jinja2 import Template

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from barometer.config import INSTANCE_DIR, Config  # noqa: E402

HERE = Path(__file__).resolve().parent
APT_LINE = "apt-get install nginx-light"
#: How long each server has to end its requests before it is killed (seconds); a bit
#: over gunicorn's graceful_timeout.
STOP_SECONDS = 35


def find_nginx() -> str | None:
    """nginx's program: on the PATH, or where Debian puts it (/usr/sbin, often not on a
    user's PATH)."""
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    return found


def listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def write_nginx_conf(run_dir: Path, sock: Path, host: str, port: int) -> Path:
    """nginx's configuration for this run, from the template, into the run directory."""
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (run_dir / name).mkdir(exist_ok=True)
    template = Template((HERE / "nginx.conf.j2").read_text(encoding="utf-8"), trim_blocks=True)
    user = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None
    conf = run_dir / "nginx.conf"
    conf.write_text(
        template.render(
            user=user,
            run_dir=run_dir,
            socket=sock,
            listen=listen_address(host, port),
            max_body=2 * Config.MAX_CONTENT_LENGTH,
        ),
        encoding="utf-8",
    )
    return conf


def wait_for_socket(sock: Path, gunicorn: subprocess.Popen, timeout: float = 60) -> None:
    """Wait until gunicorn listens on its socket (connections then wait for a worker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gunicorn.poll() is not None:
            raise SystemExit(f"Baromètre : gunicorn s'est arrêté au démarrage (code {gunicorn.returncode}).")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(sock))
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"Baromètre : gunicorn n'écoute pas sur {sock} après {timeout:.0f} s.")


def stop(proc: subprocess.Popen, sig: int) -> None:
    """Ask a server to stop; kill it if it has not within STOP_SECONDS."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    nginx = find_nginx()
    if nginx is None:
        print(f"Baromètre : nginx est introuvable ; installez-le : sudo {APT_LINE}", file=sys.stderr)
        return 1
    host = os.environ.get("HOST") or "127.0.0.1"
    port = int(os.environ.get("PORT") or 8080)
    run_dir = Path(os.environ.get("SERVE_DIR") or INSTANCE_DIR / "serve").resolve()
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    sock = run_dir / "gunicorn.sock"
    sock.unlink(missing_ok=True)  # left by a run that was killed
    conf = write_nginx_conf(run_dir, sock, host, port)

    stopping: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, _: stopping.append(signum))
    signal.signal(signal.SIGTERM, lambda signum, _: stopping.append(signum))

    # Each server in its own process group: Ctrl-C reaches this script only, which stops
    # them in order and gracefully.
    gunicorn = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            str(HERE / "gunicorn.conf.py"),
            "--bind",
            f"unix:{sock}",
            "--pid",
            str(run_dir / "gunicorn.pid"),
            "--control-socket",
            str(run_dir / "gunicorn.ctl"),
        ],
        cwd=ROOT,
        env={**os.environ, "PROXY_COUNT": "1"},
        start_new_session=True,
    )
    proxy = None
    try:
        wait_for_socket(sock, gunicorn)
        proxy = subprocess.Popen(
            [nginx, "-p", str(run_dir), "-c", str(conf), "-e", "stderr"], cwd=run_dir, start_new_session=True
        )
        servers = (proxy, gunicorn)
        signal.signal(signal.SIGHUP, lambda _signum, _frame: [proc.send_signal(signal.SIGHUP) for proc in servers])
        print(f"Baromètre : http://{listen_address(host, port)}/ (nginx, puis gunicorn sur {sock})", flush=True)
        while not stopping:
            if any(proc.poll() is not None for proc in servers):
                print("Baromètre : un des serveurs s'est arrêté ; arrêt de l'autre.", file=sys.stderr, flush=True)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        # nginx quits gracefully (SIGQUIT: it ends the requests it holds), then gunicorn
        # (SIGTERM: each worker ends its request).
        if proxy is not None:
            stop(proxy, signal.SIGQUIT)
        stop(gunicorn, signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(main())
