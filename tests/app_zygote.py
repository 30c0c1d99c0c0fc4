"""A process that has already imported what app.py imports as it starts, and forks a fresh app.py for each
test that asks (tests/app_process.py's `running_app`). On the CI machine an app.py start costs about 10 CPU
seconds, 7 or 8 of them importing torch, gradio, diffusers and the project; a forked one skips that.

Only the imports are shared: nothing of the app runs here. Each fork then runs app.py (or the script that argv
names first, which ends by calling app.main) as `python app.py …` would, with the test's environment, working
folder and arguments, its output in the test's log, and its own exit status; the status is written to
STATUS_DIR/<pid> when the process ends, since only this process (its parent) can read it.

Protocol: one JSON request a line on stdin, {"argv", "cwd", "env", "log"}; one JSON answer a line on stdout,
{"pid"}. Closing stdin ends this process."""

from __future__ import annotations

import faulthandler
import gc
import importlib
import json
import os
import runpy
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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


def main(status_dir: Path) -> None:
    sys.path[0] = str(ROOT)  # as for `python app.py`: the repository, not tests/, comes first
    os.chdir(ROOT)
    for name in PRELOAD:
        importlib.import_module(name)
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:  # a fork copies only the calling thread: another's locks would stay held in the child
        raise RuntimeError(f"the preloaded imports started {threads - 1} threads; forking would be unsafe")
    # The imported modules' objects live as long as the process: out of the garbage collector's sight, a fork's
    # collections neither scan them nor write to their pages, which the fork would then have to copy (an app start
    # and three small jobs: about 0.6 CPU s less, half the page faults).
    gc.freeze()
    signal.signal(signal.SIGCHLD, lambda *_: _reap(status_dir))
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _run_app(request)  # raises SystemExit: the child never comes back to this loop
        print(json.dumps({"pid": pid}), flush=True)


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
