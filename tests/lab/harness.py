"""The docker lab's test stage, without a registry or any network beyond this machine:

1. ``ensure_tools``   Debian's ``docker.io``, ``docker-compose`` (1.29) and ``debootstrap``, if missing.
2. ``ensure_engine``  ``dockerd`` if none answers (and only then stopped again by ``cleanup``).
3. ``base_image``     a bookworm root by debootstrap, ``docker import``-ed; the tarball is cached.
4. ``wheelhouse``     ``pip wheel`` of the project's runtime deps + kubernetes + kubectl + mitmproxy on
                      the host (Python 3.11, the base image's), cached by the requirements' hash.
5. ``build_image``    ``docker build --network none`` of docker/Dockerfile from the base and the
                      wheelhouse: the proof that the image needs no network.
6. ``up``             ``docker-compose up -d`` with a profile, then every node Ready.
7. ``scenario``       ``docker-compose run --rm client lab scenario NAME --mode PROFILE``.
8. ``down`` / ``cleanup``  ``down -v`` between profiles; at the end ``down -v --rmi all``, images
                      pruned by the label ``lab=minilab``, the base tag removed, dockerd stopped.

Cache: ``$MINILAB_CACHE``, else ``/var/cache/minilab`` (root) or ``~/.cache/minilab``. A lock file
there serialises harness runs (one lab at a time: the compose file's subnets are fixed).

    python -m tests.lab.harness all          # everything above, both profiles, both scenarios
    python -m tests.lab.harness prepare | up insecure | scenario kubelet-mitm insecure | down | cleanup
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]
PROJECT = "minilab-test"
TAG = "test"
IMAGE = f"minilab/lab:{TAG}"
LABEL = "lab=minilab"
SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
DEBOOTSTRAP_INCLUDE = ("python3,python3-venv,python3-pip,ca-certificates,iptables,iproute2,openssl,curl,"
                       "procps,openssh-server,netcat-openbsd")
BASE_PYTHON = (3, 11)  # bookworm's python3; wheels such as aiohttp's are cp311-specific
TOOLS = {"dockerd": "docker.io", "docker-compose": "docker-compose", "debootstrap": "debootstrap"}
SERVICES = ("apiserver", "controller-manager", "router", "attacker", "node1", "node2", "node3", "client")
JOBS = ("pki", "bootstrap-token")  # one-shots: must exit 0
NODES = {"node1", "node2", "node3"}  # node3 joins by TLS bootstrapping (a second or so after the others)


class HarnessError(RuntimeError):
    pass


def cache_dir() -> Path:
    if os.environ.get("MINILAB_CACHE"):
        return Path(os.environ["MINILAB_CACHE"])
    return Path("/var/cache/minilab") if os.geteuid() == 0 else Path.home() / ".cache" / "minilab"


def tool_env() -> dict[str, str]:
    """Debian's docker client first on PATH: compose 1.29 builds through the first ``docker`` it finds,
    and a newer client without buildx fails with BuildKit on."""
    env = dict(os.environ)
    env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin:" + env.get("PATH", "")
    env.update(DOCKER_BUILDKIT="1", COMPOSE_DOCKER_CLI_BUILD="1")
    return env


def requirement_sets() -> dict[str, list[str]]:
    """What the image's two venvs need, resolved separately (mitmproxy pins an older cryptography than
    the project uses): the project's runtime deps (pyproject.toml) + docker/requirements-client.txt,
    and docker/requirements-attacker.txt."""
    deps = list(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])

    def lines(name: str) -> list[str]:
        text = (REPO / "docker" / name).read_text()
        return [ln.split("#")[0].strip() for ln in text.splitlines() if ln.split("#")[0].strip()]

    # setuptools: pip builds the project itself inside the image, from this wheelhouse.
    return {"client": [*deps, *lines("requirements-client.txt"), "setuptools>=68"],
            "attacker": lines("requirements-attacker.txt")}


class Harness:
    def __init__(self, cache: Path | None = None, out: IO[str] | None = None) -> None:
        self.cache = cache or cache_dir()
        self.out = out or sys.stderr
        self.env = tool_env()
        self.timings: dict[str, float] = {}
        self.base = ""
        self.lab_env: dict[str, str] = {}
        self._lock: IO[str] | None = None

    # -- plumbing -------------------------------------------------------------------------------------
    def log(self, text: str) -> None:
        print(f"[lab-harness] {text}", file=self.out, flush=True)

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.monotonic() - start, 1)
            self.log(f"{name}: {self.timings[name]:.1f}s")

    def sh(self, argv: Sequence[str], *, check: bool = True, capture: bool = False, timeout: float | None = 900,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a tool; its output is returned (``capture``) or passed on to ``self.out``."""
        proc = subprocess.run(list(argv), env={**self.env, **(env or {})}, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, capture_output=True)
        if not capture and (proc.stdout or proc.stderr):
            self.out.write(proc.stdout + proc.stderr)
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()[-2000:]
            raise HarnessError(f"`{' '.join(argv)}` exited {proc.returncode}: {detail}")
        return proc

    def ok(self, argv: Sequence[str]) -> bool:
        return self.sh(argv, check=False, capture=True, timeout=60).returncode == 0

    def lock(self) -> None:
        """One harness at a time on this machine (blocks until the other one is done).

        ``MINILAB_LOCK_HELD=1``: the caller already holds it for a longer sequence of steps, e.g.
        ``flock /var/cache/minilab/lock env MINILAB_LOCK_HELD=1 sh -c 'harness up ...; harness scenario ...'``."""
        self.cache.mkdir(parents=True, exist_ok=True)
        if os.environ.get("MINILAB_LOCK_HELD") == "1":
            return
        self._lock = (self.cache / "lock").open("w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # -- 1.-2. tools and engine -----------------------------------------------------------------------
    def ensure_tools(self) -> None:
        missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool, path=self.env["PATH"]) is None})
        if not missing:
            return
        self.log(f"installing {' '.join(missing)} (apt)")
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", *missing]
        if self.sh(apt, check=False, env={"DEBIAN_FRONTEND": "noninteractive"}).returncode != 0:
            self.sh(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update"])
            self.sh(apt, env={"DEBIAN_FRONTEND": "noninteractive"})

    @property
    def _dockerd_pid_file(self) -> Path:
        return self.cache / "dockerd.pid"

    def ensure_engine(self) -> None:
        if self.ok(["docker", "info"]):
            return
        log = (self.cache / "dockerd.log").open("a")
        proc = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=self.env, start_new_session=True)
        self._dockerd_pid_file.write_text(str(proc.pid))
        self.log(f"started dockerd (pid {proc.pid}, log {self.cache / 'dockerd.log'})")
        deadline = time.monotonic() + 60
        while not self.ok(["docker", "info"]):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise HarnessError(f"dockerd did not come up; see {self.cache / 'dockerd.log'}")
            time.sleep(0.2)

    def stop_engine(self) -> None:
        """Only a dockerd this harness started (its pid file), never someone else's."""
        try:
            pid = int(self._dockerd_pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return
        self._dockerd_pid_file.unlink()
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except FileNotFoundError:
            return
        if not cmdline.endswith(b"dockerd"):
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.2)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
        self.log(f"stopped dockerd (pid {pid})")

    # -- 3.-5. images -----------------------------------------------------------------------------------
    @staticmethod
    def base_tag() -> str:
        key = hashlib.sha256(f"{SUITE} {MIRROR} {DEBOOTSTRAP_INCLUDE}".encode()).hexdigest()[:12]
        return f"minilab-base:{SUITE}-{key}"

    def base_image(self) -> str:
        tag = self.base = self.base_tag()
        if self.ok(["docker", "image", "inspect", tag]):
            return tag
        tarball = self.cache / "base" / f"{tag.split(':')[1]}.tar"
        if not tarball.exists():
            self._debootstrap(tarball)
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # a bare import sets none
        self.sh(["docker", "import", "--change", f"ENV PATH={path}", "--change", "ENV LANG=C.UTF-8",
                 "--change", 'CMD ["/bin/bash"]', "--change", f"LABEL {LABEL}", str(tarball), tag], capture=True)
        return tag

    def _debootstrap(self, tarball: Path) -> None:
        root = tarball.with_suffix(".root")
        shutil.rmtree(root, ignore_errors=True)
        tarball.parent.mkdir(parents=True, exist_ok=True)
        self.log(f"debootstrap {SUITE} (first run only; cached as {tarball})")
        self.sh(["debootstrap", "--variant=minbase", f"--include={DEBOOTSTRAP_INCLUDE}", SUITE, str(root), MIRROR],
                capture=True)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (root / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        for key in (root / "etc/ssh").glob("ssh_host_*"):
            key.unlink()  # every node makes its own (docker/entrypoint.sh)
        tmp = tarball.with_suffix(".tmp")
        self.sh(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tmp), "."])
        tmp.rename(tarball)
        shutil.rmtree(root)

    def wheelhouse(self) -> Path:
        if sys.version_info[:2] != BASE_PYTHON:
            raise HarnessError(f"the wheelhouse is built by this interpreter and must match the base image's "
                               f"Python {'.'.join(map(str, BASE_PYTHON))}; run with a 3.11 venv")
        sets = requirement_sets()
        key = hashlib.sha256(json.dumps(sets, sort_keys=True).encode()).hexdigest()[:12]
        target = self.cache / "wheelhouse" / key
        if (target / ".complete").exists():
            return target
        tmp = target.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for reqs in sets.values():
            self.sh([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "-w", str(tmp),
                     *reqs], capture=True)
        (tmp / ".complete").write_text(json.dumps(sets, indent=1) + "\n")
        for old in target.parent.iterdir():  # wheelhouses of older requirements
            if old != tmp:
                shutil.rmtree(old, ignore_errors=True)
        tmp.rename(target)
        return target

    def build_image(self, base: str, wheels: Path) -> None:
        context = REPO / "docker" / "wheelhouse"
        staged = []
        try:
            for whl in wheels.glob("*.whl"):
                dest = context / whl.name
                with contextlib.suppress(FileNotFoundError):
                    dest.unlink()
                try:
                    os.link(whl, dest)
                except OSError:
                    shutil.copy2(whl, dest)
                staged.append(dest)
            self.sh(["docker", "build", "--network", "none", "-f", str(REPO / "docker" / "Dockerfile"),
                     "--build-arg", f"BASE_IMAGE={base}", "--build-arg", "PIP_NO_INDEX=1",
                     "--build-arg", "PIP_FIND_LINKS=/wheelhouse", "-t", IMAGE, str(REPO)], capture=True)
        finally:
            for dest in staged:
                dest.unlink(missing_ok=True)

    def prepare(self) -> None:
        with self.timed("install docker.io/docker-compose/debootstrap"):
            self.ensure_tools()
        with self.timed("start dockerd"):
            self.ensure_engine()
        with self.timed("base image (debootstrap + import)"):
            base = self.base_image()
        with self.timed("wheelhouse"):
            wheels = self.wheelhouse()
        with self.timed("build image (--network none)"):
            self.build_image(base, wheels)

    # -- 6.-8. the lab ------------------------------------------------------------------------------------
    def compose(self, *args: str, capture: bool = False, check: bool = True,
                timeout: float | None = 600) -> subprocess.CompletedProcess[str]:
        argv = ["docker-compose", "-p", PROJECT, "-f", str(REPO / "docker-compose.yml"), *args]
        return self.sh(argv, capture=capture, check=check, timeout=timeout, env=self.lab_env)

    def up(self, profile: str, attack: str = "intercept", overrides: str = "", timeout: float = 120,
           extra: dict[str, str] | None = None) -> None:
        """``extra``: more lab variables, e.g. ``{"LAB_TUNNEL": "ssh", "LAB_ATTACK_PORTS": "22,10250"}``."""
        # The same variables for every later compose call, or `run` would recreate the services.
        self.lab_env = {"LAB_TAG": TAG, "LAB_BASE_IMAGE": self.base or "python:3.12-slim", "LAB_PROFILE": profile,
                        "LAB_SET": overrides, "LAB_ATTACK": attack, "LAB_TUNNEL": "direct", **(extra or {})}
        what = " ".join([profile, *(f"{k}={v}" for k, v in (extra or {}).items())])
        with self.timed(f"up ({what}) to all nodes Ready"):
            self.compose("up", "-d", "--no-build", capture=True, timeout=timeout)
            self.wait_ready(timeout)

    def _containers(self) -> dict[str, dict[str, Any]]:
        ids = self.compose("ps", "-a", "-q", capture=True).stdout.split()
        if not ids:
            return {}
        raw = json.loads(self.sh(["docker", "inspect", *ids], capture=True).stdout)
        return {c["Config"]["Labels"].get("com.docker.compose.service", c["Name"]): c for c in raw}

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            problem = self._not_ready()
            if problem is None:
                return
            if problem.startswith("FAILED") or time.monotonic() > deadline:
                raise HarnessError(f"the lab did not come up: {problem}\n{self.logs()}")
            time.sleep(0.5)

    def _not_ready(self) -> str | None:
        containers = self._containers()
        for job in JOBS:
            state = containers.get(job, {}).get("State", {})
            if state.get("Status") == "exited" and state.get("ExitCode") != 0:
                return f"FAILED: the {job} job exited {state.get('ExitCode')}"
        for name in SERVICES:
            state = containers.get(name, {}).get("State", {})
            if state.get("Status") == "exited":
                return f"FAILED: {name} exited {state.get('ExitCode')}"
            if state.get("Status") != "running":
                return f"{name} is {state.get('Status', 'missing')}"
            health = (state.get("Health") or {}).get("Status")
            if health not in (None, "healthy"):
                return f"{name} is {health}"
        nodes = self.compose("exec", "-T", "client", "kubectl", "get", "nodes", "-o", "json", capture=True, check=False)
        if nodes.returncode != 0:
            return f"kubectl get nodes: {nodes.stderr.strip()[-300:]}"
        ready = {n["metadata"]["name"] for n in json.loads(nodes.stdout)["items"]
                 if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))}
        return None if ready >= NODES else f"nodes Ready: {sorted(ready)}"

    def scenario(self, name: str, mode: str) -> subprocess.CompletedProcess[str]:
        with self.timed(f"scenario {name} ({mode})"):
            return self.compose("run", "--rm", "client", "lab", "scenario", name, "--mode", mode,
                                capture=True, check=False, timeout=300)

    def scenario_passed(self, name: str, mode: str) -> tuple[str, str]:
        """Run a scenario that must pass (exit 0): its output and the attacker's log, which must show no
        crash of mitmproxy's addon."""
        result = self.scenario(name, mode)
        out = result.stdout + result.stderr
        assert result.returncode == 0, out
        attacker = self.service_log("attacker")
        assert "Traceback" not in attacker and "Addon error" not in attacker, attacker
        return out, attacker

    def service_log(self, service: str) -> str:
        return self.compose("logs", "--no-color", service, capture=True, check=False).stdout

    def logs(self, tail: int = 40) -> str:
        return self.compose("logs", "--no-color", f"--tail={tail}", capture=True, check=False).stdout

    def down(self) -> None:
        with self.timed("down -v"):
            self.compose("down", "-v", "--remove-orphans", capture=True, check=False)

    def cleanup(self) -> None:
        """Every container, network, volume and image tag the lab made; then dockerd, if we started it."""
        with self.timed("cleanup"):
            if shutil.which("docker-compose", path=self.env["PATH"]) and self.ok(["docker", "info"]):
                self.lab_env = self.lab_env or {"LAB_TAG": TAG}
                self.compose("down", "-v", "--rmi", "all", "--remove-orphans", capture=True, check=False)
                self.sh(["docker", "image", "prune", "-f", "--filter", f"label={LABEL}"], capture=True, check=False)
                if self.base:
                    self.sh(["docker", "rmi", self.base], capture=True, check=False)
                left = self.leftovers()
            else:
                left = []
            self.stop_engine()
        if left:
            raise HarnessError(f"the lab left behind: {', '.join(left)}")

    def leftovers(self) -> list[str]:
        """Containers, networks, volumes of the compose project and images of the lab still present."""
        project = f"label=com.docker.compose.project={PROJECT}"
        found = []
        for kind, argv in (("container", ["docker", "ps", "-aq", "--filter", project]),
                           ("network", ["docker", "network", "ls", "-q", "--filter", project]),
                           ("volume", ["docker", "volume", "ls", "-q", "--filter", project]),
                           ("image", ["docker", "images", "-q", "--filter", f"label={LABEL}"])):
            found += [f"{kind} {i}" for i in self.sh(argv, capture=True, check=False).stdout.split()]
        return found


def run_all(h: Harness, profiles: Sequence[str] = ("insecure", "hardened"),
            scenarios: Sequence[str] = ("kubelet-mitm", "kubelet-api", "apiserver-proxy", "sa-token", "bootstrap",
                                        "secure-port")) -> int:
    failed = 0
    try:
        h.prepare()
        for profile in profiles:
            h.up(profile)
            for name in scenarios:
                result = h.scenario(name, profile)
                print(result.stdout + result.stderr, flush=True)
                failed += result.returncode != 0
            h.down()
    finally:
        h.cleanup()
        print(json.dumps(h.timings, indent=1), flush=True)
    return 1 if failed else 0


def _extra_from_env() -> dict[str, str]:
    """Hand-run ``up``/``scenario``: LAB_TUNNEL and LAB_ATTACK_PORTS pass through from the caller's environment."""
    return {k: os.environ[k] for k in ("LAB_TUNNEL", "LAB_ATTACK_PORTS") if os.environ.get(k)}


def main(argv: Sequence[str]) -> int:
    h = Harness()
    h.lock()
    cmd, *rest = argv or ["all"]
    try:
        if cmd == "all":
            return run_all(h)
        if cmd in ("prepare", "up"):
            h.prepare()
            if cmd == "up":
                h.up(rest[0] if rest else "insecure", extra=_extra_from_env())
        elif cmd == "scenario" and len(rest) == 2:
            h.base = h.base_tag()
            h.lab_env = {"LAB_TAG": TAG, "LAB_BASE_IMAGE": h.base, "LAB_PROFILE": rest[1], "LAB_SET": "",
                         "LAB_ATTACK": "intercept", **_extra_from_env()}
            result = h.scenario(rest[0], rest[1])
            print(result.stdout + result.stderr)
            return result.returncode
        elif cmd == "down":
            h.down()
        elif cmd == "cleanup":
            h.base = h.base_tag()
            h.cleanup()
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except HarnessError as e:
        print(f"lab-harness: {e}", file=sys.stderr)
        return 1
    print(json.dumps(h.timings), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
