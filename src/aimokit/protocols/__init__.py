"""Tool-call protocols: how a conversation is rendered to the engine and how its output is read (see base)."""

from .base import PROTOCOLS, ToolProtocol, get_protocol

__all__ = ["PROTOCOLS", "ToolProtocol", "get_protocol"]
