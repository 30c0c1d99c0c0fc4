"""The Extensions tab: Installed (a table, which ones are enabled, "Check for updates", "Apply and
restart UI"), Available (an extension index such as A1111's index.json) and Install from URL.

Installing, updating and switching extensions are refused, with the reason shown, when the server can
be reached from other machines, unless --enable-insecure-extension-access is given. What an extension's
last install reported (why the package guard disabled it, or the extras it left out) is shown under its
name; enabling a disabled extension again clears it."""

from __future__ import annotations

import html
import json
import time

import gradio as gr

from modules import restart
from modules.core.services import Services
from modules.extensions import (
    Extension,
    ExtensionError,
    check_access,
    check_for_updates,
    disabled_names,
    fetch_index,
    install_from_url,
    list_extensions,
    set_disabled,
    set_note,
    update,
)
from modules.extensions.guarded_install import GuardedInstaller

RESTARTING = "extensions-restarting"  # marks the reply after which the page reloads itself
RELOAD_AFTER_RESTART_JS = f"""(message) => {{
    if (!String(message).includes("{RESTARTING}")) return;
    const reload = () => fetch(window.location.href, {{cache: "no-store"}})
        .then((reply) => reply.ok ? window.location.reload() : setTimeout(reload, 1000))
        .catch(() => setTimeout(reload, 1000));
    setTimeout(reload, 3000);
}}"""
COLUMNS = ("Extension", "URL", "Branch", "Version", "Date", "Update")


def _message(text: str, problem: bool = False, css_class: str = "") -> str:
    return f'<p class="{css_class}">{"⚠️ " if problem else ""}{html.escape(text)}</p>'


def installed_table(extensions: list[Extension]) -> str:
    """The Installed tab's table (every value escaped)."""
    rows = []
    for ext in extensions:
        date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ext.commit_date)) if ext.commit_date else ""
        name = html.escape(ext.name if ext.enabled else f"{ext.name} (disabled)")
        if ext.note:
            name += f'<div class="extension-note">⚠️ {html.escape(ext.note)}</div>'
        cells = (ext.remote or "", ext.branch or "", ext.version, date, ext.status)
        rows.append(f"<tr><td>{name}</td>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>")
    body = "".join(rows) or f'<tr><td colspan="{len(COLUMNS)}">No extensions are installed.</td></tr>'
    head = "".join(f"<th>{column}</th>" for column in COLUMNS)
    return f'<table id="extensions"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class ExtensionActions:
    """What the tab's buttons do, apart from Gradio. Each returns HTML to show; none raises."""

    def __init__(self, services: Services, installer: GuardedInstaller | None = None) -> None:
        self.services = services
        self.installer = installer  # runs install.py files; None: one for this Python
        self.statuses: dict[str, str] = {}  # folder name -> what the last check for updates found

    def extensions(self, found: list[Extension] | None = None) -> list[Extension]:
        """The installed extensions (`found` where the caller has just looked, else a new look) with their git
        details and last update status."""
        if found is None:
            found = list_extensions(self.services.paths.extensions, disabled_names(self.services.opts))
        for ext in found:
            ext.read_git_info()
            ext.status = self.statuses.get(ext.name, "")
        return found

    def table(self) -> str:
        return installed_table(self.extensions())

    def install(self, url: str, branch: str = "", folder: str = "") -> str:
        """Install from a git URL or folder; the outcome, or git's or install.py's message."""
        try:
            check_access(self.services.args)
            ext = install_from_url(
                url,
                self.services.paths.extensions,
                self.services.opts,
                branch or None,
                folder or None,
                installer=self.installer,
            )
        except ExtensionError as exc:
            return _message(str(exc), problem=True)
        note = _message(ext.note, problem=True) if ext.note else ""
        return note + _message(
            f'Installed {ext.name} into {ext.path}. Press "Apply and restart UI" on the Installed tab to load it.'
        )

    def apply(self, enabled: list[str], to_update: list[str]) -> str:
        """Update the extensions in `to_update`, store which ones are disabled, and restart the page."""
        try:
            check_access(self.services.args)
        except ExtensionError as exc:
            return _message(str(exc), problem=True)
        installed = self.extensions()
        problems = []
        for ext in installed:
            if ext.name in to_update:
                try:
                    update(ext)
                    self.statuses.pop(ext.name, None)
                except ExtensionError as exc:
                    problems.append(_message(f"{ext.name} was not updated: {exc}", problem=True))
        set_disabled(self.services.opts, {ext.name for ext in installed} - set(enabled or []))
        for ext in installed:
            if not ext.enabled and ext.name in (enabled or []):  # enabled again: its next install tells anew
                set_note(self.services.paths.extensions, ext.name, "")
        if restart.request_restart():
            return "".join(problems) + _message("Restarting the page…", css_class=RESTARTING)
        return "".join(problems) + _message("Saved. Restart the app to load the changes.")

    def check(self) -> tuple[str, list[str]]:
        """`git fetch` each clone; (a message, the names that have new commits)."""
        try:
            check_access(self.services.args)
        except ExtensionError as exc:
            return _message(str(exc), problem=True), []
        problems, updatable = [], []
        for ext in self.extensions():
            if not ext.is_git:
                continue
            try:
                check_for_updates(ext)
            except ExtensionError as exc:
                problems.append(_message(f"{ext.name}: {exc}", problem=True))
            self.statuses[ext.name] = ext.status
            if ext.can_update:
                updatable.append(ext.name)
        summary = f"New commits for: {', '.join(updatable)}." if updatable else "No updates found."
        return "".join(problems) + _message(summary), updatable

    def available(self, index_url: str) -> tuple[str, str]:
        """(the index as a table, with an Install button on each extension not installed yet; a message). Only
        http(s), and not while extension access is off (--listen or --share): the server must not fetch what
        page users name."""
        try:
            check_access(self.services.args)
            entries = fetch_index(index_url.strip())
        except ExtensionError as exc:
            return "", _message(str(exc), problem=True)
        installed = {(ext.remote or "").rstrip("/").removesuffix(".git") for ext in self.extensions()}
        rows = []
        for entry in entries:
            name = html.escape(entry.name)
            if entry.url.startswith(("https://", "http://")):
                name = f'<a href="{html.escape(entry.url)}" target="_blank">{name}</a>'
            action = (
                "installed"
                if entry.url.rstrip("/").removesuffix(".git") in installed
                else (
                    '<button class="lg secondary gradio-button install-from-index" '
                    f'onclick="installExtensionFromIndex(this, {html.escape(json.dumps(entry.url))})">Install</button>'
                )
            )
            cells = (name, html.escape(entry.description), html.escape(", ".join(entry.tags)), action)
            rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
        table = (
            '<table id="available_extensions"><thead><tr><th>Extension</th><th>Description</th><th>Tags</th>'
            f"<th>Action</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
        return table, _message(f"{len(entries)} extensions in the index.")


def build_tab(services: Services, found: list[Extension] | None = None) -> None:
    """Lay out the tab (call inside a gr.Tab context); `found`: the extensions the start looked up, if at hand."""
    actions = ExtensionActions(services)
    installed = actions.extensions(found)

    def enabled_choices() -> dict:
        found = list_extensions(services.paths.extensions, disabled_names(services.opts))
        return gr.update(choices=[ext.name for ext in found], value=[ext.name for ext in found if ext.enabled])

    with gr.Tabs(elem_id="tabs_extensions"):
        with gr.Tab("Installed", id="installed") as installed_tab:
            with gr.Row(elem_id="extensions_installed_top"):
                apply = gr.Button("Apply and restart UI", variant="primary", elem_id="extensions_apply")
                check = gr.Button("Check for updates", elem_id="extensions_check")
            enabled = gr.CheckboxGroup(
                label="Enabled extensions",
                choices=[ext.name for ext in installed],
                value=[ext.name for ext in installed if ext.enabled],
                elem_id="extensions_enabled_list",
            )
            to_update = gr.CheckboxGroup(
                label="Update when applying", choices=[], value=[], elem_id="extensions_update_list"
            )
            info = gr.HTML(elem_id="extensions_installed_info")
            table = gr.HTML(installed_table(installed), elem_id="extensions_installed_html")
        with gr.Tab("Available", id="available"):
            with gr.Row():
                load = gr.Button("Load from:", variant="primary", elem_id="extensions_load_index", scale=0)
                index_url = gr.Textbox(
                    value=services.opts.extensions_index_url,
                    label="Extension index URL",
                    elem_id="extensions_index_url",
                )
            with gr.Row():
                chosen = gr.Textbox(
                    label="URL of the extension to install (an Install button in the table fills it)",
                    elem_id="extension_to_install",
                )
                install_chosen = gr.Button("Install", elem_id="install_extension_button", scale=0)
            available_info = gr.HTML(elem_id="extensions_available_info")
            available_table = gr.HTML(elem_id="extensions_available_html")
        with gr.Tab("Install from URL", id="install_from_url"):
            url = gr.Textbox(
                label="URL for extension's git repository",
                elem_id="extensions_install_url",
                placeholder="https://…, git@host:…, file://… or a folder",
            )
            branch = gr.Textbox(
                label="Specific branch name",
                placeholder="Leave empty for the default branch",
                elem_id="extensions_install_branch",
            )
            folder = gr.Textbox(
                label="Local directory name", placeholder="Leave empty for auto", elem_id="extensions_install_dirname"
            )
            install = gr.Button("Install", variant="primary", elem_id="extensions_install_button")
            result = gr.HTML(elem_id="extension_install_result")

    def after_install(message: str) -> tuple:
        return message, actions.table(), enabled_choices()

    def run_check() -> tuple:
        message, updatable = actions.check()
        return message, actions.table(), gr.update(choices=updatable, value=updatable)

    install.click(
        lambda *values: after_install(actions.install(*values)),
        inputs=[url, branch, folder],
        outputs=[result, table, enabled],
        api_name="extensions_install",
    )
    install_chosen.click(
        lambda address: after_install(actions.install(address or "")),
        inputs=chosen,
        outputs=[available_info, table, enabled],
        api_name="extensions_install_from_index",
    )
    apply.click(actions.apply, inputs=[enabled, to_update], outputs=info, api_name="extensions_apply").then(
        None, inputs=info, js=RELOAD_AFTER_RESTART_JS
    )
    check.click(run_check, outputs=[info, table, to_update], api_name="extensions_check")
    load.click(
        actions.available, inputs=index_url, outputs=[available_table, available_info], api_name="extensions_index"
    )
    installed_tab.select(
        lambda: (actions.table(), enabled_choices()), outputs=[table, enabled], api_visibility="private"
    )
