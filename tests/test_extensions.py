"""Extensions with real git repositories: a bare repository in tmp_path is the remote (see git_repos)."""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from app_process import free_port
from file_server import serving
from git_repos import Remote, run_git

from modules import restart
from modules.cmd_args import parse_args
from modules.extensions import (
    ExtensionError,
    InstallScriptError,
    access_refusal,
    check_access,
    check_for_updates,
    disabled_names,
    extension_assets,
    fetch_index,
    install_from_url,
    list_extensions,
    load_preload,
    read_disabled,
    requirement_problems,
    set_disabled,
    update,
)
from modules.options import Options
from modules.ui.extensions import RESTARTING, ExtensionActions, installed_table

MAIN_FILES = {
    "metadata.ini": "[Extension]\nName = Hello\nRequires = base, other\n",
    "javascript/hello.js": "window.HELLO_EXTENSION = 1;\n",
    "style.css": ".hello-extension { color: red; }\n",
    "install.py": "import sys\nfrom pathlib import Path\nPath('installed.txt').write_text(sys.executable)\n",
}


@pytest.fixture
def remote(tmp_path) -> Remote:
    repo = Remote(tmp_path, "hello-ext", MAIN_FILES)
    repo.commit({"dev.txt": "dev branch\n"}, "dev work", branch="dev")
    run_git(repo.work, "checkout", "--quiet", "main")
    return repo


def services_for(exts: Path, opts: Options, *flags: str) -> SimpleNamespace:
    return SimpleNamespace(args=parse_args(list(flags)), paths=SimpleNamespace(extensions=exts), opts=opts)


def test_install_from_a_file_url_reads_git_state_and_runs_install_py(remote, exts, opts):
    ext = install_from_url(remote.bare.as_uri(), exts, opts)
    assert ext.name == "hello-ext" and ext.path == exts / "hello-ext" and ext.enabled
    assert ext.remote == remote.bare.as_uri() and ext.branch == "main"
    assert ext.commit_hash == run_git(remote.bare, "rev-parse", "main") and ext.version == ext.commit_hash[:8]
    assert abs(ext.commit_date - time.time()) < 600
    assert ext.metadata.name == "hello" and ext.metadata.requires == ("base", "other")
    assert (ext.path / "installed.txt").read_text() == sys.executable  # install.py ran here, with this Python
    assert [p.name for p in exts.iterdir()] == ["hello-ext"]  # no staging folder left
    assert [(e.name, e.enabled) for e in list_extensions(exts, disabled_names(opts))] == [("hello-ext", True)]
    with pytest.raises(ExtensionError, match="installed already, as hello-ext"):
        install_from_url(str(remote.bare), exts, opts, folder="again")


def test_install_from_a_plain_path_with_branch_and_folder_name(remote, exts, opts):
    ext = install_from_url(str(remote.bare), exts, opts, branch="dev", folder="custom", run_install=False)
    assert ext.path == exts / "custom" and ext.branch == "dev" and ext.remote == str(remote.bare)
    assert (ext.path / "dev.txt").is_file() and not (ext.path / "installed.txt").exists()


def test_check_for_updates_after_a_push_then_update(remote, exts, opts):
    ext = install_from_url(remote.bare.as_uri(), exts, opts, run_install=False)
    assert check_for_updates(ext) == (0, 0) and ext.status == "latest" and not ext.can_update
    newest = remote.commit({"NEWS.md": "new\n"})
    assert check_for_updates(ext) == (1, 0) and ext.status == "1 new commit" and ext.can_update
    update(ext)
    assert ext.commit_hash == newest and (ext.path / "NEWS.md").is_file()
    assert check_for_updates(ext) == (0, 0)


def test_update_refuses_diverged_history_with_gits_message(remote, exts, opts):
    ext = install_from_url(remote.bare.as_uri(), exts, opts, run_install=False)
    (ext.path / "local.txt").write_text("mine\n")
    run_git(ext.path, "add", "local.txt")
    run_git(ext.path, "commit", "--quiet", "-m", "local")
    remote.commit({"NEWS.md": "new\n"})
    assert check_for_updates(ext) == (1, 1) and ext.status.startswith("diverged")
    before = run_git(ext.path, "rev-parse", "HEAD")
    with pytest.raises(ExtensionError, match="fast-forward"):
        update(ext)
    assert run_git(ext.path, "rev-parse", "HEAD") == before


@pytest.mark.parametrize(
    "make_url, branch, message",
    [
        (lambda root: str(root / "missing.git"), None, "does not exist"),
        (lambda root: (root / "missing.git").as_uri(), None, "does not appear to be a git repository"),
        (lambda root: str(root / "hello-ext.git"), "no-such-branch", "no-such-branch not found"),
    ],
)
def test_a_failed_clone_leaves_nothing_and_shows_gits_message(remote, exts, opts, tmp_path, make_url, branch, message):
    with pytest.raises(ExtensionError, match=f"^git clone failed: fatal: .*{message}"):
        install_from_url(make_url(tmp_path), exts, opts, branch=branch, folder="target")
    assert list(exts.iterdir()) == []


@pytest.mark.parametrize("folder", ["../evil", "a/b", "..", ".hidden", "a\\b", "x..y"])
def test_bad_folder_names_are_refused(remote, exts, opts, tmp_path, folder):
    with pytest.raises(ExtensionError, match="can't be an extension folder name"):
        install_from_url(str(remote.bare), exts, opts, folder=folder)
    assert list(exts.iterdir()) == [] and not (tmp_path / "data" / "evil").exists()


def test_a_folder_that_exists_is_refused(remote, exts, opts):
    (exts / "hello-ext").mkdir()
    (exts / "hello-ext" / "keep.txt").write_text("mine")
    with pytest.raises(ExtensionError, match="exists already"):
        install_from_url(remote.bare.as_uri(), exts, opts)
    assert [p.name for p in (exts / "hello-ext").iterdir()] == ["keep.txt"]


def test_a_failing_install_py_is_reported_and_the_extension_stays_disabled(tmp_path, exts, opts):
    bad = Remote(tmp_path, "bad-ext", {"install.py": "import sys\nprint('checking')\nsys.exit('missing: foo')\n"})
    with pytest.raises(InstallScriptError) as failure:
        install_from_url(str(bad.bare), exts, opts)
    message = str(failure.value)
    assert "install.py of bad-ext failed (exit status 1)" in message and "missing: foo" in message
    assert "disabled" in message and not failure.value.extension.enabled
    assert (exts / "bad-ext" / "install.py").is_file()  # kept on disk
    stored = Options(opts._path)
    stored.load()
    assert disabled_names(stored) == {"bad-ext"} and not list_extensions(exts, disabled_names(stored))[0].enabled


def test_the_disabled_list_persists_in_config_json(exts, opts):
    for name in ("c", "a", "b", ".installing-x"):
        (exts / name).mkdir()
    set_disabled(opts, ["b"])
    config = opts._path
    assert json.loads(config.read_text())["disabled_extensions"] == ["b"]
    stored = Options(config)
    stored.load()
    assert [(e.name, e.enabled) for e in list_extensions(exts, disabled_names(stored))] == [
        ("a", True),
        ("b", False),
        ("c", True),
    ]
    assert [e.name for e in list_extensions(exts, disabled_names(stored)) if e.enabled] == ["a", "c"]
    assert read_disabled(config) == {"b"}
    config.write_text("{broken")
    assert read_disabled(config) == set()
    with pytest.raises(ValueError, match="must be a list"):
        opts.set("disabled_extensions", "b")


def test_preload_py_adds_flags_before_parsing(tmp_path, exts):
    from app import preload_extensions

    preloads = {
        "flagged": "def preload(parser):\n    parser.add_argument('--wildcards-dir', default=None)\n",
        "off": "def preload(parser):\n    parser.add_argument('--off-flag', action='store_true')\n",
        "broken": "raise RuntimeError('boom')\n",
    }
    for name, text in preloads.items():
        (exts / name).mkdir()
        (exts / name / "preload.py").write_text(text)
    (tmp_path / "data" / "config.json").write_text(json.dumps({"disabled_extensions": ["off"]}))
    args = parse_args(["--data-dir", str(tmp_path / "data"), "--wildcards-dir", "cards"], preload=preload_extensions)
    assert args.wildcards_dir == "cards"
    with pytest.raises(SystemExit):
        parse_args(["--data-dir", str(tmp_path / "data"), "--off-flag"], preload=preload_extensions)
    parser = argparse.ArgumentParser()
    assert load_preload(parser, list_extensions(exts, {"off"})) == ["preload.py of broken failed: boom"]


def test_page_assets_add_the_enabled_extensions_scripts_and_styles(exts):
    from app import enabled
    from modules.ui.page import page_assets

    for name in ("one", "two"):
        (exts / name / "javascript").mkdir(parents=True)
        (exts / name / "javascript" / "b.js").write_text(f"window.{name}_b = '</script>';")
        (exts / name / "javascript" / "a.js").write_text(f"window.{name}_a = 1;")
        (exts / name / "style.css").write_text(f".{name}-style {{}}")
    active = enabled(list_extensions(exts, {"two"}))
    assert extension_assets(active).scripts == [exts / "one/javascript/a.js", exts / "one/javascript/b.js"]
    assets = page_assets(active)
    head = assets["head"]
    script_a, script_b = (f'<script src="file={exts}/one/javascript/{name}.js?' for name in ("a", "b"))
    assert head.index("Ctrl") < head.index(script_a) < head.index(script_b)  # ours inline and first
    assert "/two/" not in head
    assert ".one-style" in assets["css"] and ".two-style" not in assets["css"] and "infotext" in assets["css"]


def test_requirements_from_metadata_ini(exts):
    for name, requires in (("base", ""), ("needs-base", "Base"), ("needs-off", "off"), ("needs-gone", "gone")):
        (exts / name).mkdir()
        (exts / name / "metadata.ini").write_text(f"[Extension]\nRequires = {requires}\n")
    (exts / "off").mkdir()
    assert requirement_problems(list_extensions(exts, {"off"})) == [
        'Extension "needs-gone" requires "gone", which is not installed.',
        'Extension "needs-off" requires "off", which is disabled.',
    ]


@pytest.fixture
def index_server(remote):
    """A local server with index.json (listing `remote` and another extension) and a broken.json."""
    index = {
        "extensions": [
            {
                "name": "Hello",
                "url": remote.bare.as_uri(),
                "description": "<b>hi</b>",
                "tags": ["script"],
                "added": "2024-01-01",
            },
            {"name": "Other", "url": "https://example.com/other.git"},
            {"name": "no url"},
        ]
    }
    with serving({"/index.json": json.dumps(index).encode(), "/broken.json": b"<html>"}) as url:
        yield url


def test_fetch_index_from_a_server_and_the_failures(index_server, remote, exts, opts):
    entries = fetch_index(f"{index_server}/index.json")
    assert [(e.name, e.tags, e.added) for e in entries] == [("Hello", ("script",), "2024-01-01"), ("Other", (), "")]
    with pytest.raises(ExtensionError, match="is not JSON"):
        fetch_index(f"{index_server}/broken.json")
    with pytest.raises(ExtensionError, match="could not be loaded"):
        fetch_index(f"http://127.0.0.1:{free_port()}/index.json", timeout=3)

    actions = ExtensionActions(services_for(exts, opts))
    install_from_url(remote.bare.as_uri(), exts, opts, run_install=False)
    table, message = actions.available(f"{index_server}/index.json")
    buttons = re.findall(r"installExtensionFromIndex\(this, ([^)]*)\)", table)
    assert [html.unescape(b) for b in buttons] == ['"https://example.com/other.git"']  # Hello is installed already
    assert table.count(">installed<") == 1
    assert "&lt;b&gt;hi&lt;/b&gt;" in table and "2 extensions" in message
    table, message = actions.available(f"{index_server}/missing.json")
    assert table == "" and "⚠️" in message and "404" in message


def test_access_is_refused_with_listen_or_share_unless_allowed(remote, exts, opts):
    assert access_refusal(parse_args([])) is None
    assert "--listen" in access_refusal(parse_args(["--listen"]))
    assert "--listen and --share" in access_refusal(parse_args(["--listen", "--share"]))
    assert access_refusal(parse_args(["--share", "--enable-insecure-extension-access"])) is None
    with pytest.raises(ExtensionError, match="--enable-insecure-extension-access"):
        check_access(parse_args(["--share"]))
    refused = ExtensionActions(services_for(exts, opts, "--listen"))
    assert "--listen" in refused.install(str(remote.bare)) and list(exts.iterdir()) == []
    (exts / "one").mkdir()
    assert "--listen" in refused.apply([], []) and disabled_names(opts) == set()
    assert "--listen" in refused.check()[0]
    allowed = ExtensionActions(services_for(exts, opts, "--listen", "--enable-insecure-extension-access"))
    assert "Installed hello-ext" in allowed.install(str(remote.bare))


def test_actions_check_update_apply_and_restart(remote, exts, opts):
    actions = ExtensionActions(services_for(exts, opts))
    assert "Installed hello-ext" in actions.install(remote.bare.as_uri())
    (exts / "<b>plain").mkdir()  # no git clone: skipped by the check, escaped in the table
    newest = remote.commit({"NEWS.md": "new\n"})
    message, updatable = actions.check()
    assert updatable == ["hello-ext"] and "New commits for: hello-ext" in message
    assert "1 new commit" in actions.table() and "&lt;b&gt;plain" in actions.table()
    assert restart.request_restart() is False  # nothing serves: no restart
    message = actions.apply(["hello-ext"], ["hello-ext"])
    assert "Restart the app" in message and RESTARTING not in message
    assert run_git(exts / "hello-ext", "rev-parse", "HEAD") == newest and disabled_names(opts) == {"<b>plain"}
    with restart.accepting_restarts():
        assert RESTARTING in actions.apply(["hello-ext", "<b>plain"], [])
        restart.wait_for_restart(poll=0.01)  # returns: the request is there
    assert disabled_names(opts) == set()
    assert "(disabled)" not in installed_table(list_extensions(exts, disabled_names(opts)))


def test_install_py_can_use_a1111s_launch_helpers(tmp_path, exts, opts):
    script = (
        "import launch\n"
        "assert launch.is_installed('numpy') and not launch.is_installed('surely-not-a-package-xyz')\n"
        "out = launch.run(f'\"{launch.python}\" -c \"print(6 * 7)\"', desc='multiplying')\n"
        "open('launch-ran.txt', 'w').write(out.strip())\n"
        "try:\n"
        "    launch.run('exit 3', errdesc='meant to fail')\n"
        "except RuntimeError as exc:\n"
        "    open('launch-failed.txt', 'w').write(str(exc))\n"
    )
    uses_launch = Remote(tmp_path, "launch-ext", {"install.py": script})
    extension = install_from_url(str(uses_launch.bare), exts, opts)
    assert extension.enabled
    assert (exts / "launch-ext" / "launch-ran.txt").read_text() == "42"
    assert "meant to fail" in (exts / "launch-ext" / "launch-failed.txt").read_text()
