"""Replicas of `appliance serve` over one store, behind nginx running the project's own
deploy/nginx/appliance-replicas.conf (its upstream list and listen port rewritten)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from appliance.client import ApplianceClient, ApplianceUnavailable
from tests.live_server import free_port

REPO = Path(__file__).resolve().parents[2]
NGINX_SITE = REPO / "deploy" / "nginx" / "appliance-replicas.conf"
CLUSTER_KEY = "cluster-test-admin-key-0123456789abcdef"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if Path(path).is_file()), None
    )


def site_config(upstreams: list[int], listen: int) -> str:
    """The shipped site file with these replicas and this port."""
    text = NGINX_SITE.read_text()
    servers = "".join(
        f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;\n" for port in upstreams
    )
    text, count = re.subn(r"(?m)^    server 127\.0\.0\.1:\d+ [^\n]*\n", "", text)
    assert count > 0, "the upstream block of the site file changed shape"
    text = text.replace(
        "upstream appliance_replicas {\n", "upstream appliance_replicas {\n" + servers
    )
    text, count = re.subn(r"listen \d+;", f"listen 127.0.0.1:{listen};", text)
    assert count == 1
    return text


@dataclass
class Replica:
    index: int
    port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Cluster:
    """Replicas sharing `database_url`, each with its own data dir (indexes, model exports)."""

    workdir: Path
    database_url: str
    # Every replica needs this key (stored hashed in the shared store); None: no keys, a
    # loopback-only cluster open to its host (benchmarks).
    admin_key: str | None = CLUSTER_KEY
    settings: dict[str, str] = field(default_factory=dict)
    replicas: list[Replica] = field(default_factory=list)
    nginx: subprocess.Popen[bytes] | None = None
    proxy_port: int = 0

    def start_replica(self, *, load_sample: bool = False) -> Replica:
        index = len(self.replicas)
        data_dir = self.workdir / f"replica-{index}"
        data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = dict(os.environ)
        env.update(
            {
                "APPLIANCE_PORT": str(port),
                "APPLIANCE_DATA_DIR": str(data_dir),
                "APPLIANCE_DATABASE_URL": self.database_url,
                "APPLIANCE_LOAD_SAMPLE": "true" if load_sample else "false",
                "APPLIANCE_CONFIG": str(self.workdir / "none.toml"),
                "APPLIANCE_WARM_TOP_QUERIES": "0",
                **{f"APPLIANCE_RATE_LIMIT_{s}": "0" for s in ("READ", "WRITE", "ANONYMOUS")},
            }
        )
        if self.admin_key is not None:
            key_file = self.workdir / "admin.key"
            key_file.write_text(self.admin_key)
            env["APPLIANCE_ADMIN_KEY_FILE"] = str(key_file)
        env.update({f"APPLIANCE_{k.upper()}": v for k, v in self.settings.items()})
        log_path = data_dir / "serve.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "appliance.cli", "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        replica = Replica(index, port, data_dir, log_path, process)
        self.replicas.append(replica)
        self._wait_ready(replica)
        return replica

    def _wait_ready(self, replica: Replica, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        with ApplianceClient(replica.url, api_key=self.admin_key) as client:
            while True:
                try:
                    readiness = client.ready()
                    if readiness.status == "ready" and not readiness.starting:
                        return
                except ApplianceUnavailable:
                    pass
                if not replica.alive() or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"replica {replica.index} did not start: "
                        f"{replica.log_path.read_text()[-3000:]}"
                    )
                time.sleep(0.2)

    def start_proxy(self, replicas: list[Replica] | None = None) -> str:
        """nginx over `replicas` (default all); reloads it when already running."""
        binary = nginx_binary()
        assert binary is not None, "nginx is not installed (Debian package nginx)"
        members = self.replicas if replicas is None else replicas
        prefix = self.workdir / "nginx"
        (prefix / "logs").mkdir(parents=True, exist_ok=True)
        if not self.proxy_port:
            self.proxy_port = free_port()
        (prefix / "site.conf").write_text(site_config([r.port for r in members], self.proxy_port))
        user = "user root;\n" if os.geteuid() == 0 else ""
        (prefix / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {prefix}/nginx.pid;\n"
            f"error_log {prefix}/logs/error.log warn;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            f"  access_log {prefix}/logs/access.log;\n"
            f"  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n"
            f"  fastcgi_temp_path {prefix}/fcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n"
            f"  scgi_temp_path {prefix}/scgi;\n"
            f"  include {prefix}/site.conf;\n"
            "}\n"
        )
        command = [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf")]
        if self.nginx is not None and self.nginx.poll() is None:
            subprocess.run([*command, "-s", "reload"], check=True)
            time.sleep(0.5)  # the old worker finishes, the new one takes the listener
        else:
            subprocess.run([*command, "-t", "-q"], check=True)
            self.nginx = subprocess.Popen([*command, "-g", "daemon off;"])
            deadline = time.monotonic() + 20
            while True:
                try:
                    with ApplianceClient(self.proxy_url, api_key=self.admin_key) as client:
                        client.ready()
                    break
                except ApplianceUnavailable:
                    if time.monotonic() > deadline or self.nginx.poll() is not None:
                        raise RuntimeError("nginx did not start") from None
                    time.sleep(0.1)
        return self.proxy_url

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    def stop(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.terminate()
            self.nginx.wait(timeout=20)
        for replica in self.replicas:
            replica.stop()
