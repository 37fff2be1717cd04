"""Launch SGLang servers as child processes and always shut them down.

`python -m sglang.launch_server` is started on 127.0.0.1 and a free port, with its log streamed to the
run directory. We wait for `GET /health` (SGLang answers 200 once a 1-token generation succeeds) and stop
the whole process group on `stop()`, at interpreter exit, on SIGTERM (SLURM's cancel/timeout), and, on
Linux, when this process dies (PR_SET_PDEATHSIG), so no GPU is left held by an orphaned server.

Each run's servers get a random `--api-key` (the client sends it), so nothing else on the machine can use
them. The chosen port stays bound here (SO_REUSEADDR, not listening: SGLang/uvicorn can still bind it, the
kernel hands it to nobody else) until the server is healthy; a server that still loses its port is
restarted on a fresh one. The key reaches the server in a `--config` YAML file (mode 0600, in the run's
`logs/`, removed once the server is up), never in argv, where `/proc/*/cmdline` shows it to every user of
a shared node. `--mem-fraction-static` and the attention backend come from `engines/gpu_memory.py`: a
share of the GPU converted to a share of the memory free when this server starts, measured then.
`engine.<role>.gpus` are positions in the GPUs the job was given (SLURM's CUDA_VISIBLE_DEVICES mask).
`launch_args` builds a server's argv from the config; `ttslab plan` prints the same argv. Each running
server records what it was planned per GPU (`logs/sglang-<role>-<i>.gpus.json`): the PRM starts on what
the plan left it, not on the free memory an idle policy server shows before its activations peak.

One idea, ~540 lines: a server's argv, its secrets and memory, its process and its shutdown are one
lifecycle, and the plan reuses `launch_args` so that what it prints is what starts.

SGLang is never imported here: it lives in its own environment (`launch.python`), because its install
pulls a multi-GB CUDA stack that ttslab does not depend on.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ttslab import writes
from ttslab.engines import gpu_memory
from ttslab.errors import ConfigError

INSTALL_HINT = (
    "install SGLang in its own environment (it pulls torch and a multi-GB CUDA stack), e.g.\n"
    "    python -m venv ~/sglang-env && ~/sglang-env/bin/pip install uv && "
    "~/sglang-env/bin/uv pip install --python ~/sglang-env/bin/python --prerelease=allow sglang\n"
    "then point ttslab at it with engine.launch.python=~/sglang-env/bin/python "
    "(or start the server yourself and pass engine.policy.urls=[http://127.0.0.1:30000])"
)


class SGLangLaunchError(RuntimeError):
    """SGLang could not be started: not installed, no GPU, or the server died or never became healthy."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def reserve_port(host: str = "127.0.0.1") -> tuple[int, socket.socket]:
    """A free port and the socket holding it. Bound with SO_REUSEADDR and never listening, so a server
    that also sets SO_REUSEADDR (uvicorn, SGLang's port check) binds it, while the kernel gives it to no
    other `bind(port 0)` until the socket is closed."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, 0))
    return s.getsockname()[1], s


BIND_FAILURES = ("address already in use", "errno 98", "could not bind", "is in use")


def lost_its_port(log_text: str) -> bool:
    text = log_text.lower()
    return any(s in text for s in BIND_FAILURES)


def build_launch_command(
    *,
    python: str,
    model_path: str,
    port: int,
    host: str = "127.0.0.1",
    module: str = "sglang.launch_server",
    tp_size: int = 1,
    mem_fraction_static: float | None = None,
    random_seed: int | None = None,
    deterministic: bool = True,
    attention_backend: str | None = None,
    context_length: int | None = None,
    schedule_policy: str | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The argv of one server (argument names as in SGLang's server_args.py / server_arguments.md)."""
    cmd = [python, "-m", module, "--model-path", str(model_path), "--host", host, "--port", str(int(port))]
    cmd += ["--tp-size", str(int(tp_size))]
    if mem_fraction_static is not None:
        if not 0.0 < float(mem_fraction_static) < 1.0:
            raise ValueError(f"mem_fraction_static={mem_fraction_static!r}: expected a fraction in (0, 1)")
        cmd += ["--mem-fraction-static", str(float(mem_fraction_static))]
    if random_seed is not None:
        cmd += ["--random-seed", str(int(random_seed))]
    if deterministic:
        # Per-request `sampling_seed` is honoured by the seeded sampler of deterministic mode; it needs a
        # batch-invariant attention backend (flashinfer, fa3 or triton).
        cmd += ["--enable-deterministic-inference"]
    if attention_backend:
        cmd += ["--attention-backend", str(attention_backend)]
    if context_length:
        cmd += ["--context-length", str(int(context_length))]
    if schedule_policy:
        cmd += ["--schedule-policy", str(schedule_policy)]
    cmd += [str(a) for a in extra_args]
    return cmd


def check_importable(python: str, module: str) -> None:
    """Raise a clear error when `module`'s package cannot be imported by `python`."""
    package = module.split(".")[0]
    exe = shutil.which(python) or python
    if not Path(exe).exists():
        raise SGLangLaunchError(f"engine.launch.python={python!r}: no such interpreter; {INSTALL_HINT}")
    probe = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({package!r}) else 3)"
    rc = subprocess.run([exe, "-c", probe], capture_output=True, timeout=120, check=False).returncode
    if rc == 3:
        raise SGLangLaunchError(f"the Python package {package!r} is not importable by {exe}; {INSTALL_HINT}")
    if rc != 0:
        raise SGLangLaunchError(f"{exe} failed to start (exit {rc}) while probing for {package!r}")


def check_gpu_visible(cuda_visible_devices: str | None) -> None:
    """Raise a clear error when no NVIDIA GPU is visible to the server about to start."""
    if cuda_visible_devices is not None and cuda_visible_devices.strip() in ("", "-1"):
        raise SGLangLaunchError(
            f"CUDA_VISIBLE_DEVICES={cuda_visible_devices!r} hides every GPU; SGLang needs one. "
            f"Set engine.<role>.gpus (e.g. ['0']) or unset CUDA_VISIBLE_DEVICES"
        )
    smi = shutil.which("nvidia-smi")
    if smi is None:
        raise SGLangLaunchError(
            "no GPU visible: nvidia-smi is not on PATH. SGLang needs an NVIDIA GPU (CUDA); on a CPU-only "
            "machine use engine=llamacpp. (Set engine.launch.require_gpu=false for other accelerators.)"
        )
    res = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60, check=False)
    if res.returncode != 0 or "GPU" not in res.stdout:
        raise SGLangLaunchError(f"no GPU visible: `nvidia-smi -L` says: {(res.stdout + res.stderr).strip()[:300]}")


def _pdeathsig_hook():
    """A preexec_fn that makes the child get SIGTERM when this process dies (Linux), or None.
    libc is loaded here, in the parent: the forked child must not import or take locks."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class SGLangServer:
    """One launched server. Use as a context manager, or call `start()` and `stop()`."""

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        port: int,
        log_path: str | os.PathLike,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        startup_timeout_s: float = 1800.0,
        name: str = "sglang",
        api_key: str | None = None,
        port_socket: socket.socket | None = None,
        secret_file: str | os.PathLike | None = None,
        footprint_file: str | os.PathLike | None = None,
    ):
        self.cmd = list(cmd)
        self.port = int(port)
        self.host = host
        self.url = f"http://{host}:{self.port}"
        self.log_path = Path(log_path)
        self.env = dict(env) if env is not None else None
        self.startup_timeout_s = float(startup_timeout_s)
        self.name = name
        self.api_key = api_key
        self._port_socket = port_socket  # released once the server is healthy (or stopped)
        self.secret_file = Path(secret_file) if secret_file else None  # its --config key file: read at start
        self.footprint_file = Path(footprint_file) if footprint_file else None  # its planned GiB, while it runs
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    def start(self) -> SGLangServer:
        """Spawn the process and wait until it is healthy (stopping it if it never gets there)."""
        self.spawn()
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def spawn(self) -> SGLangServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # 0600: SGLang logs its server_args, the API key among them; stop() redacts the key from the file
        fd = writes.open_nofollow(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        self._log_file = os.fdopen(fd, "ab", buffering=0)
        shown = ["<api key>" if i and self.cmd[i - 1] == "--api-key" else a for i, a in enumerate(self.cmd)]
        self._log_file.write(("$ " + " ".join(shown) + "\n").encode())
        in_main = threading.current_thread() is threading.main_thread()
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,  # its own process group: stop() takes down its workers too
            # PDEATHSIG fires when the spawning *thread* ends, so only from the main thread.
            preexec_fn=_pdeathsig_hook() if in_main else None,
        )
        _register(self)
        return self

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise SGLangLaunchError(
                    f"{self.name} exited with code {self.proc.returncode} before becoming healthy; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    if r.status == 200 and self._answers_with_our_key():
                        self.release_port()
                        self.remove_secret()
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise SGLangLaunchError(
                    f"{self.name} at {self.url} not healthy after {self.startup_timeout_s:.0f} s; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(1.0)

    def _answers_with_our_key(self) -> bool:
        """/health needs no key; an endpoint that does tells our server from a stranger on the same port."""
        if not self.api_key:
            return True
        req = urllib.request.Request(self.url + "/server_info", headers={"Authorization": f"Bearer {self.api_key}"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status == 200
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                raise SGLangLaunchError(f"{self.url} answers, but not to this run's API key: another server holds "
                                        f"port {self.port}") from None
            return e.code == 404  # servers without /server_info (the launcher tests' stand-ins)
        except (urllib.error.URLError, OSError):
            return False

    def redact_log(self) -> None:
        """SGLang 0.5.23 prints `server_args={..., 'api_key': '<key>', ...}` at start: the stopped server's
        log keeps `<api key>` in its place."""
        if not self.api_key or not self.log_path.exists():
            return
        data = writes.read_regular(self.log_path)
        if self.api_key.encode() in data:
            writes.write_atomic(self.log_path, data.replace(self.api_key.encode(), b"<api key>"))

    def remove_secret(self) -> None:
        """The server parsed its --config at start: the key file has done its work."""
        if self.secret_file is not None:
            self.secret_file.unlink(missing_ok=True)

    def release_port(self) -> None:
        if self._port_socket is not None:
            self._port_socket.close()
            self._port_socket = None

    def log_tail(self, n: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self, grace_s: float = 30.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                proc.terminate()
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
            self.redact_log()
        self.release_port()
        self.remove_secret()
        if self.footprint_file is not None:
            self.footprint_file.unlink(missing_ok=True)
        _live.discard(self)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> SGLangServer:
        return self if self.running else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ----- always shut down ------------------------------------------------------------------------

_live: set[SGLangServer] = set()
_hooks_installed = False


def _stop_all() -> None:
    for server in list(_live):
        server.stop(grace_s=10.0)


def _on_sigterm(signum, frame):  # SLURM cancel / time limit: turn into a normal exit so cleanup runs
    _stop_all()
    raise SystemExit(128 + signum)


def _register(server: SGLangServer) -> None:
    global _hooks_installed
    _live.add(server)
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_stop_all)
    # Only take SIGTERM if nobody else handles it, and only where Python allows (main thread).
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        signal.SIG_DFL,
        None,
    ):
        signal.signal(signal.SIGTERM, _on_sigterm)


# ----- from configuration ----------------------------------------------------------------------


def _gpu_groups(role_cfg: Mapping[str, Any]) -> list[str | None]:
    """`gpus`: null = inherit CUDA_VISIBLE_DEVICES, one server; "0,1" = one server on those GPUs;
    ["0", "1", ...] = one server per entry (problems are sharded across them)."""
    gpus = role_cfg.get("gpus")
    if gpus is None:
        return [None]
    if isinstance(gpus, (str, int)):
        return [str(gpus)]
    if isinstance(gpus, Sequence) and gpus:
        return [str(g) for g in gpus]
    raise ValueError(f"engine.<role>.gpus={gpus!r}: expected null, '0,1', or a list like ['0', '1']")


def new_api_key() -> str:
    """A per-run server key. Hex, never url-safe base64: a key starting with "-" is read by the server's
    argparse as an option ("--api-key: expected one argument"), which url-safe base64 does for 1 key in 64."""
    return secrets.token_hex(24)


def write_key_file(path: Path, api_key: str) -> Path:
    """The server's `--config` YAML (SGLang's ConfigArgumentMerger reads `api-key` from it at start),
    created 0600 and never through a symlink."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"api-key: {json.dumps(api_key)}\n")  # quoted: a hex key of digits is still a string
    return path


ROLE_ORDER = ("policy", "prm")  # the runner starts the policy first; the PRM is planned on what it left


def _devices(mask: str | None) -> list[str]:
    return [d.strip() for d in mask.split(",") if d.strip()] if mask else ["*"]  # "*": every GPU


def write_footprint(path: Path, devices: list[str], gib_per_gpu: float) -> Path:
    """Record what a launched server was planned per GPU (pool + runtime reserve + attention buffers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"devices": devices, "gib_per_gpu": round(gib_per_gpu, 3)}))
    return path


def promised_gib(logs: Path, role: str, devices: list[str]) -> float:
    """GiB per GPU planned for the running servers of the roles started before `role` on these devices."""
    earlier = ROLE_ORDER[: ROLE_ORDER.index(role)] if role in ROLE_ORDER else ()
    total = 0.0
    for other in earlier:
        for path in logs.glob(f"sglang-{other}-*.gpus.json"):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            theirs = data.get("devices") or ["*"]
            if "*" in theirs or "*" in devices or set(theirs) & set(devices):
                total += float(data.get("gib_per_gpu") or 0)
    return total


def launch_args(engine_cfg: Mapping[str, Any], model_cfg: Mapping[str, Any], role: str, *, port: int,
                fraction: float | None, overhead: gpu_memory.ServerOverhead | None, python: str = "python",
                key_file: str | os.PathLike | None = None) -> list[str]:
    """The argv of one server of `role` from the config: what the launcher starts and `ttslab plan` prints.
    `overhead` (gpu_memory.server_overhead) carries the attention backend chosen for the GPU and the
    --max-running-requests that keeps triton's eager decode buffer bounded."""
    launch = dict(engine_cfg.get("launch") or {})
    sg = dict(model_cfg.get("sglang") or {})
    extra = list(sg.get("extra_args") or []) + list(launch.get("extra_args") or [])
    extra += list((engine_cfg.get(role) or {}).get("extra_args") or [])
    deterministic = bool(launch.get("deterministic", True))
    if overhead is not None:
        backend = overhead.attention.backend
        if overhead.attention.max_running and "--max-running-requests" not in extra:
            extra += ["--max-running-requests", str(overhead.attention.max_running)]
    else:
        backend = gpu_memory.choose_attention_backend(launch.get("attention_backend"), None, deterministic)
    if launch.get("chunked_prefill_size"):  # the runtime reserve was planned for it
        extra += ["--chunked-prefill-size", str(int(launch["chunked_prefill_size"]))]
    if key_file is not None:
        extra += ["--config", str(key_file)]
    return build_launch_command(
        python=python,
        module=str(launch.get("module") or "sglang.launch_server"),
        model_path=str(sg.get("model_path") or model_cfg.get("hf_id")),
        host=str(launch.get("host") or "127.0.0.1"),
        port=port,
        tp_size=int(sg.get("tp_size") or 1),
        mem_fraction_static=fraction,
        random_seed=launch.get("random_seed"),
        deterministic=deterministic,
        attention_backend=backend,
        context_length=launch.get("context_length"),
        schedule_policy=launch.get("schedule_policy"),
        extra_args=extra,
    )


def launch_for_role(
    engine_cfg: Mapping[str, Any], model_cfg: Mapping[str, Any], role: str, run_dir: str | os.PathLike
) -> list[SGLangServer]:
    """Start the servers for `role` as configured; returns them healthy (or raises, leaving none running)."""
    launch = dict(engine_cfg.get("launch") or {})
    role_cfg = dict(engine_cfg.get(role) or {})
    sg = dict(model_cfg.get("sglang") or {})
    if not sg and not model_cfg.get("hf_id"):
        raise ValueError(f"{role} model {model_cfg.get('name')!r} has no `sglang:` settings and no hf_id: "
                         f"it cannot be served by SGLang (use engine=llamacpp)")
    model_path = sg.get("model_path") or model_cfg.get("hf_id")
    if not model_path:
        raise ValueError(f"{role} model {model_cfg.get('name')!r}: set hf_id or sglang.model_path")
    python = str(launch.get("python") or sys.executable)
    host = str(launch.get("host") or "127.0.0.1")
    check_importable(python, str(launch.get("module") or "sglang.launch_server"))
    api_key = new_api_key() if launch.get("api_key", True) else None
    retries = int(launch.get("port_retries", 3))
    job_mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    servers: list[SGLangServer] = []
    for stale in (Path(run_dir) / "logs").glob(f"sglang-{role}-*.gpus.json"):  # of a run killed before its stop()
        stale.unlink(missing_ok=True)

    def make_server(i: int, gpus: str | None) -> SGLangServer:
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in (launch.get("env") or {}).items()})
        if gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu_memory.job_devices(gpus, env.get("CUDA_VISIBLE_DEVICES", job_mask))
        if launch.get("require_gpu", True):
            check_gpu_visible(env.get("CUDA_VISIBLE_DEVICES"))
        try:
            measured = gpu_memory.measure_gpus(env.get("CUDA_VISIBLE_DEVICES"))
        except ConfigError:  # a mask nvidia-smi cannot size (a MIG instance): only an explicit fraction will do
            if role_cfg.get("mem_fraction_static") is None and sg.get("mem_fraction_static") is None:
                raise
            measured = None
        logs = Path(run_dir) / "logs"
        devices = _devices(env.get("CUDA_VISIBLE_DEVICES"))
        overhead = None
        if measured is not None:
            total, free, sm = measured
            # What a server started earlier on these GPUs was planned, not only what it holds yet: its
            # activation reserve is not allocated while it idles, and must not go to this server.
            free = min(free, total - promised_gib(logs, role, devices))
            measured = (total, free, sm)
            overhead = gpu_memory.server_overhead(engine_cfg, model_cfg, role, total, sm)
        mem = gpu_memory.launch_fraction(engine_cfg, model_cfg, role, measured[:2] if measured else None,
                                         measured[2] if measured else None)
        footprint = None
        if mem is not None and measured is not None and overhead is not None:
            footprint = write_footprint(logs / f"sglang-{role}-{i}.gpus.json", devices,
                                        mem * measured[1] + overhead.total_gib)
        port, holder = reserve_port(host)
        key_file = write_key_file(logs / f"sglang-{role}-{i}.key.yaml", api_key) if api_key else None
        cmd = launch_args(engine_cfg, model_cfg, role, port=port, fraction=mem, overhead=overhead, python=python,
                          key_file=key_file)
        return SGLangServer(
            cmd,
            port=port,
            host=host,
            log_path=logs / f"sglang-{role}-{i}.log",
            env=env,
            startup_timeout_s=float(launch.get("startup_timeout_s") or 1800),
            name=f"SGLang {role} server {i} ({model_path}, GPUs {env.get('CUDA_VISIBLE_DEVICES', 'all')})",
            api_key=api_key,
            port_socket=holder,
            secret_file=key_file,
            footprint_file=footprint,
        )

    try:
        # The policy is planned to start first and the PRM on what it leaves: servers of one role start
        # together (they sit on different GPUs), roles one after the other (the runner builds them in order).
        groups = _gpu_groups(role_cfg)
        for i, gpus in enumerate(groups):
            servers.append(make_server(i, gpus).spawn())
        for i, gpus in enumerate(groups):
            for attempt in range(retries + 1):
                try:
                    servers[i].wait_healthy()
                    break
                except SGLangLaunchError:
                    if attempt == retries or not lost_its_port(servers[i].log_tail(60)):
                        raise
                    servers[i].stop()  # lost its port between our choice and its bind: a fresh one
                    servers[i] = make_server(i, gpus).spawn()
    except BaseException:
        for s in servers:
            s.stop()
        raise
    return servers
