"""A process that has already imported what app.py imports as it starts, and forks a fresh app.py for each
test that asks (tests/app_process.py's `running_app`). On the CI machine an app.py start costs about 10 CPU
seconds, 7 or 8 of them importing torch, gradio, diffusers and the project; a forked one skips that. One zygote
serves the whole test session: every pytest-xdist worker connects to it (app_process.AppForks).

Only the imports are shared: nothing of the app runs here. Each fork then runs app.py (or the script that argv
names first, which ends by calling app.main) as `python app.py …` would, with the test's environment, working
folder and arguments, its output in the test's log, and its own exit status; the status is written to a file
of this zygote's folder when the process ends, since only this process (its parent) can read it.

Protocol, on the Unix socket FOLDER/zygote.sock: one JSON request a line, {"argv", "cwd", "env", "log"}; one JSON
answer a line, {"pid", "status_file"}. The socket is put in place once the imports are done. The zygote leaves
when its last client has disconnected (a pytest process ends), or when none connects within CONNECT_WAIT."""

from __future__ import annotations

import faulthandler
import importlib
import json
import os
import runpy
import selectors
import shutil
import signal
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOCKET_NAME = "zygote.sock"
CONNECT_WAIT = 120.0  # seconds the zygote waits for its first client
# What app.py imports before it serves and loads a checkpoint, bar app.py and launch.py themselves (launch.py reads
# INDEX_URL as it is imported). None of these reads the environment or the arguments as it is imported.
PRELOAD = (
    "modules.cmd_args",
    "modules.core.services",
    "modules.extensions",
    "modules.face_restoration",
    "modules.models.demo_model",
    "modules.sd_models",
    "modules.ui.page",
    "modules.api.web_server",
    "diffusers.loaders.single_file_utils",
    "diffusers.models.autoencoders.autoencoder_kl",
    "diffusers.models.unets.unet_2d_condition",
    "transformers.models.clip.modeling_clip",
    "torchvision.transforms",
)


def main(folder: Path) -> None:
    sys.path[0] = str(ROOT)  # as for `python app.py`: the repository, not tests/, comes first
    os.chdir(ROOT)
    for name in PRELOAD:
        importlib.import_module(name)
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:  # a fork copies only the calling thread: another's locks would stay held in the child
        raise RuntimeError(f"the preloaded imports started {threads - 1} threads; forking would be unsafe")
    status_dir = folder / f"statuses-{os.getpid()}"
    status_dir.mkdir()
    signal.signal(signal.SIGCHLD, lambda *_: _reap(status_dir))
    listener = _listen(folder)
    try:
        _serve(listener, status_dir)
    finally:
        _leave(folder, listener)
        shutil.rmtree(status_dir, ignore_errors=True)


def _listen(folder: Path) -> socket.socket:
    """A socket bound under a name of its own, then renamed to SOCKET_NAME: a client finds it only once it listens,
    and a zygote that is leaving can tell its own name from a newer zygote's."""
    own = folder / f"zygote-{os.getpid()}.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(own))
    listener.listen(16)
    os.rename(own, folder / SOCKET_NAME)
    return listener


def _serve(listener: socket.socket, status_dir: Path) -> None:
    """Answer the clients' requests until the last one has gone (or none came)."""
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    clients: dict[socket.socket, bytes] = {}
    served = False
    while clients or not served:
        events = selector.select(timeout=None if served else CONNECT_WAIT)
        if not events:
            return  # nobody came
        for key, _ in events:
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is listener:
                client, _ = listener.accept()
                clients[client], served = b"", True
                selector.register(client, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(65536)
                *lines, clients[sock] = (clients[sock] + data).split(b"\n")
                for line in lines:
                    answer = _fork(json.loads(line), status_dir, [listener, *clients])
                    sock.sendall(json.dumps(answer).encode() + b"\n")
            except OSError:  # the client went away mid-request
                data = b""
            if not data:
                selector.unregister(sock)
                sock.close()
                del clients[sock]


def _fork(request: dict, status_dir: Path, sockets: list[socket.socket]) -> dict:
    pid = os.fork()
    if pid == 0:
        for sock in sockets:  # the app has no use for the zygote's connections
            sock.close()
        _run_app(request)  # raises SystemExit: the child never comes back to the loop
    return {"pid": pid, "status_file": str(status_dir / str(pid))}


def _leave(folder: Path, listener: socket.socket) -> None:
    """Remove the socket's name if it is still this zygote's (a newer zygote may have taken it meanwhile)."""
    path = folder / SOCKET_NAME
    try:
        if path.stat().st_ino == os.stat(listener.getsockname()).st_ino:
            path.unlink()
    except OSError:
        pass
    listener.close()


def _reap(status_dir: Path) -> None:
    from modules.core.atomic_files import write_text_atomic  # preloaded: the repository is on sys.path by now

    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        write_text_atomic(status_dir / str(pid), str(os.waitstatus_to_exitcode(status)))  # never read half written


def _run_app(request: dict) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # a test that waits in vain for the end asks for stacks
    stdin = os.open(os.devnull, os.O_RDONLY)
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND)
    for fd, target in ((0, stdin), (1, log), (2, log)):
        os.dup2(target, fd)
    os.close(stdin)
    os.close(log)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = request["argv"]
    runpy.run_path(sys.argv[0], run_name="__main__")
    sys.exit(0)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
