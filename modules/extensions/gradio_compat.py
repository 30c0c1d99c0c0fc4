"""Gradio 3 as A1111-era extensions call it, accepted under Gradio 6 (Forge keeps such a layer for Gradio 4).

`install()` patches Gradio's classes once, at start, before any script file loads:

- `_js=` on an event listener (`.click`, `.change`, `.then`, `Blocks.load`, ...) is Gradio 6's `js=`, and a
  boolean `show_progress` is "full" or "hidden";
- keywords a component, layout or listener no longer takes (`tool=`, `grid=`, `variant=` on a Group, ...)
  are dropped and logged at debug level; `source=` on Image, Audio and Video becomes `sources=[...]`;
- `.style(...)` changes nothing and returns the block; `gr.Textbox.update(...)` is `gr.update(...)`;
  `gr.Box` is `gr.Group`; `gr.components.IOComponent` is `Component`;
- a component class defined outside Gradio with no frontend of its own (an extension's `class
  ARButton(ToolButton)`) renders as its nearest Gradio base, with that base's properties: Gradio picks the
  frontend by class name and the properties by the class's __init__ signature. Gradio writes no .pyi stub
  files beside such classes;
- each component's construction is reported to the observers that `observe_components` registers
  (modules.scripts uses this for A1111's before_component/after_component).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from gradio import component_meta, events
from gradio.blocks import Block, BlockContext
from gradio.components.base import Component
from gradio.context import LocalContext
from gradio.utils import get_all_components

log = logging.getLogger(__name__)

ComponentObserver = Callable[[Component, dict[str, Any]], None]
_observers: list[tuple[ComponentObserver, ComponentObserver]] = []
_PATCHED = "_webui_gradio3_compat"
_MEDIA_SOURCES = {"Image", "Audio", "Video"}


def observe_components(before: ComponentObserver, after: ComponentObserver) -> None:
    """Call before(component, kwargs) and after(component, kwargs) around the construction of every
    component made outside an event handler; kwargs are what Gradio's base class receives, with `elem_id`."""
    if (before, after) not in _observers:
        _observers.append((before, after))


def install() -> None:
    """Patch Gradio for Gradio 3 callers; calling it again changes nothing."""
    if getattr(Block, _PATCHED, False):
        return
    classes = {Component, BlockContext, *get_all_components()}
    for cls in classes:
        _accept_gradio3_init(cls)
        for event in getattr(cls, "EVENTS", []):
            name = event if isinstance(event, str) else event.event_name
            if name in cls.__dict__:
                setattr(cls, name, _gradio3_listener(cls.__dict__[name]))
    gr.Blocks.load = _gradio3_listener(gr.Blocks.load)
    _wrap_dependency_chains()
    _observe_construction()
    Block.style = _style
    Block.update = classmethod(_update)
    Block.get_block_name = _as_frontend_class(Block.get_block_name)
    Block.get_block_class = _as_frontend_class(Block.get_block_class)
    Block.get_config = _config_as_frontend_class(Block.get_config)
    component_meta.create_or_modify_pyi = _pyi_for_gradio_only(component_meta.create_or_modify_pyi)
    gr.Box = gr.Group
    gr.components.IOComponent = Component
    setattr(Block, _PATCHED, True)


def _style(self: Block, *args: Any, **kwargs: Any) -> Block:
    """Gradio 3's `.style(...)`: its options have no Gradio 6 meaning here, so the block is unchanged."""
    return self


def _update(cls: type, **kwargs: Any) -> dict:
    """Gradio 3's `gr.Textbox.update(value=...)`."""
    return gr.update(**kwargs)


_KEYWORDS: dict[Any, frozenset[str] | None] = {}


def accepted_keywords(function: Callable) -> frozenset[str] | None:
    """The keywords `function` (a class: its __init__) takes; None when it takes any (**kwargs)."""
    if isinstance(function, type):
        function = function.__init__
    key = _signature_key(function)
    if key in _KEYWORDS:
        return _KEYWORDS[key]
    parameters = inspect.signature(function).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    keywords = None if takes_any else frozenset(parameters)
    if key is not None:
        _KEYWORDS[key] = keywords
    return keywords


def _signature_key(function: Callable) -> Any:
    """The cache key of a callable's keywords: the callable itself, but for a partial its function's code and
    the arguments it binds (None: not cached). Every event's `.then` is a new partial of a new closure of one
    Gradio function, so it is read once, and the cache keeps no event (nor the blocks it names) alive."""
    if not isinstance(function, functools.partial):
        return function
    inner, bound = function, 0
    while isinstance(inner, functools.partial):
        inner, bound = inner.func, bound + len(inner.args)
    code = getattr(inspect.unwrap(inner), "__code__", None)
    if code is None or hasattr(inner, "__signature__"):
        return None
    return code, bound + inspect.ismethod(inner)


def _accepted(function: Callable, kwargs: dict[str, Any], where: str) -> dict[str, Any]:
    """`kwargs` without the keywords `function` doesn't take (unless it takes **kwargs)."""
    parameters = accepted_keywords(function)
    if parameters is None:
        return kwargs
    dropped = [name for name in kwargs if name not in parameters]
    if dropped:
        log.debug("Ignoring Gradio 3 keyword(s) %s of %s", ", ".join(dropped), where)
    return {name: value for name, value in kwargs.items() if name in parameters}


def _accept_gradio3_init(cls: type) -> None:
    init = cls.__dict__.get("__init__")
    if init is None or getattr(init, _PATCHED, False):
        return

    @functools.wraps(init)
    def patched(self, *args: Any, **kwargs: Any) -> None:
        if cls.__name__ in _MEDIA_SOURCES and isinstance(kwargs.get("source"), str):
            kwargs.setdefault("sources", [kwargs.pop("source")])
        init(self, *args, **_accepted(patched, kwargs, cls.__name__))  # its keywords: the signature read below

    setattr(patched, _PATCHED, True)
    # Gradio reads a block's properties from its class's __init__ signature for every block of every new session
    # and every /config, and the keyword filter above reads it too: read once here, it is not worked out again
    # through the wrappers each time.
    patched.__signature__ = inspect.signature(init)  # type: ignore[attr-defined]
    cls.__init__ = patched


def _gradio3_listener(listener: Callable) -> Callable:
    """An event listener that takes `_js=` and a boolean `show_progress`, and ignores keywords it lacks."""
    if getattr(listener, _PATCHED, False):
        return listener

    @functools.wraps(listener)
    def patched(*args: Any, **kwargs: Any) -> Any:
        if "_js" in kwargs:
            js = kwargs.pop("_js")
            kwargs.setdefault("js", js)
        if isinstance(kwargs.get("show_progress"), bool):
            kwargs["show_progress"] = "full" if kwargs["show_progress"] else "hidden"
        return listener(*args, **_accepted(listener, kwargs, getattr(listener, "__name__", "an event")))

    setattr(patched, _PATCHED, True)
    return patched


def _wrap_dependency_chains() -> None:
    """`.then`, `.success` and `.failure` of what a listener returns take Gradio 3 keywords too."""
    init = events.Dependency.__init__

    @functools.wraps(init)
    def patched(self, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        for name in ("then", "success", "failure"):
            setattr(self, name, _gradio3_listener(getattr(self, name)))

    events.Dependency.__init__ = patched


def _observe_construction() -> None:
    init = Component.__init__

    @functools.wraps(init)
    def patched(self, *args: Any, **kwargs: Any) -> None:
        if LocalContext.in_event_listener.get(False):  # an update returned by a handler, not a new component
            init(self, *args, **kwargs)
            return
        seen = {"elem_id": None, **kwargs}
        for before, _ in list(_observers):
            before(self, seen)
        init(self, *args, **kwargs)
        seen["elem_id"] = self.elem_id
        for _, after in list(_observers):
            after(self, seen)

    setattr(patched, _PATCHED, True)
    Component.__init__ = patched


@functools.cache
def _has_frontend(cls: type) -> bool:
    """Whether Gradio has a frontend named after `cls`: Gradio's own classes and custom components
    (packages with templates/component/ beside their module)."""
    if cls.__module__.split(".")[0] == "gradio":
        return True
    try:
        return (Path(inspect.getfile(cls)).parent / "templates" / "component").is_dir()
    except (OSError, TypeError):
        return False


@functools.cache
def _frontend_class(cls: type) -> type:
    """`cls`, or the nearest base Gradio has a frontend for."""
    return next(c for c in cls.__mro__ if _has_frontend(c))


def _as_frontend_class(original: Callable[[Block], str]) -> Callable[[Block], str]:
    """A name method (get_block_name, get_block_class) answering for the block's frontend class."""

    @functools.wraps(original)
    def name(self: Block) -> str:
        frontend = _frontend_class(type(self))
        if frontend is type(self):
            return original(self)
        return (frontend.__base__ if hasattr(frontend, "is_template") else frontend).__name__.lower()

    return name


def _config_as_frontend_class(original: Callable[..., dict]) -> Callable[..., dict]:
    """get_config with the properties of the block's frontend class (Gradio reads those named by the
    class's __init__ signature; a subclass's own signature names its own arguments)."""

    @functools.wraps(original)
    def get_config(self: Block, cls: type | None = None) -> dict:
        return original(self, cls or _frontend_class(type(self)))

    return get_config


def _pyi_for_gradio_only(original: Callable) -> Callable:
    """Gradio writes a .pyi stub beside every new component class's file; not into extensions or this app."""

    @functools.wraps(original)
    def create_or_modify_pyi(component_class: type, *args: Any) -> None:
        if component_class.__module__.split(".")[0] == "gradio":
            original(component_class, *args)

    return create_or_modify_pyi
