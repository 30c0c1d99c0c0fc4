"""Real git repositories for extension tests: a bare repository serves as the remote, and a working
clone beside it commits and pushes. Git runs with a test identity and without the user's config."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def run_git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **GIT_ENV})
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


class Remote:
    """`root/<name>.git` (bare, default branch main) and `root/<name>-work`, which pushes to it."""

    def __init__(self, root: Path, name: str, files: dict[str, str]) -> None:
        self.bare = root / f"{name}.git"
        self.work = root / f"{name}-work"
        run_git(root, "init", "--quiet", "--bare", "-b", "main", str(self.bare))
        run_git(root, "init", "--quiet", "-b", "main", str(self.work))
        run_git(self.work, "remote", "add", "origin", str(self.bare))
        self.commit(files, "first")

    def commit(self, files: dict[str, str], message: str = "change", branch: str = "main") -> str:
        """Write `files` on `branch` (made from the current one when new), commit and push; returns the hash."""
        if run_git(self.work, "symbolic-ref", "--short", "HEAD") != branch:
            run_git(self.work, "checkout", "--quiet", "-B", branch)
        for name, text in files.items():
            (self.work / name).parent.mkdir(parents=True, exist_ok=True)
            (self.work / name).write_text(text)
        run_git(self.work, "add", "-A")
        run_git(self.work, "commit", "--quiet", "-m", message)
        run_git(self.work, "push", "--quiet", "-u", "origin", branch)
        return run_git(self.work, "rev-parse", "HEAD")
