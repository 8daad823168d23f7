"""Each extension point's names, registered by the modules that implement them: written once, nowhere else.

Why: a name list kept beside the config (or in a base module) is written twice, and importing it is what
made config <-> protocols <-> votes one import cycle. Here an extension registers itself where it is
defined:

    @PROTOCOLS.register("hermes")
    class Hermes(ToolProtocol): ...

and a config checks a name with `PROTOCOLS.get(name, "solver.protocol")`. The registry imports the
extension point's package the first time it is asked (every module in it, by `pkgutil`, or the named
modules), so this module imports nothing of the kit's and sits under everything: no import runs back up.
A new protocol, backend, vote policy, training method or competition is one new module that registers;
the contract tests run over `names()` and so pick it up.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, TypeVar

from .errors import AimokitError

T = TypeVar("T")


class RegistryError(AimokitError, ValueError):
    """A name no extension registered; the message lists the registered ones."""


class Registry:
    """Names -> implementations of one extension point, filled by the modules under `package`."""

    def __init__(self, kind: str, package: str):
        self.kind, self.package = kind, package
        self._entries: dict[str, Any] = {}
        self._loaded = False

    def register(self, name: str = "") -> Callable[[T], T]:
        """A decorator: the class or function under `name` (default: its own `name` attribute)."""
        def add(obj: T) -> T:
            key = name or getattr(obj, "name", "")
            if not key:
                raise RegistryError(f"a {self.kind} needs a name: register({obj!r}) was given none")
            if key in self._entries and self._entries[key] is not obj:
                raise RegistryError(f"{self.kind} {key!r} is registered twice: {self._entries[key]!r} and {obj!r}")
            self._entries[key] = obj
            return obj
        return add

    def load(self) -> None:
        """Import the extension point's module, or every module of its package, once: each registers what it
        implements (their own imports stay light; a backend imports its engine library only when started)."""
        if self._loaded:
            return
        self._loaded = True
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(getattr(pkg, "__path__", [])):
            importlib.import_module(f"{self.package}.{info.name}")

    def names(self) -> list[str]:
        self.load()
        return sorted(self._entries)

    def get(self, name: str, setting: str = "") -> Any:
        """The implementation registered as `name`; RegistryError naming the setting and every choice."""
        self.load()
        if name not in self._entries:
            where = f"{setting} = {name!r}" if setting else f"{self.kind} {name!r}"
            raise RegistryError(f"{where}: use one of {', '.join(sorted(self._entries))} (registered {self.kind}s)")
        return self._entries[name]


PROTOCOLS = Registry("protocol", "aimokit.protocols")
BACKENDS = Registry("engine backend", "aimokit.engine")
POLICIES = Registry("vote policy", "aimokit.votes")
INTERFACES = Registry("competition interface", "aimokit.interfaces")
METHODS = Registry("training method", "aimokit.methods")
