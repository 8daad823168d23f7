"""Tool-call protocols: how a conversation is rendered to the engine and how its output is read (see base).

Each module here that defines a protocol registers it (aimokit.registry.PROTOCOLS); nothing lists them.
"""

from .base import ToolProtocol, get_protocol

__all__ = ["ToolProtocol", "get_protocol"]
