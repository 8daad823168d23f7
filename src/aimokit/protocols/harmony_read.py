"""Reading harmony text (gpt-oss's output) into messages, as far as it goes, whatever it holds.

Why a reader of its own: the field's most-reported gpt-oss failure is a parse error on malformed or
truncated output ("unexpected tokens remaining in message header", a message cut mid-header), and
openai-harmony's parser raises on those, which cost AIMO-3's notebooks whole attempts. This reader never
raises: it splits the text at the special tokens in one pass, reads each message's header (role, channel,
recipient, content type, `<|constrain|>`) and body, and notes what it had to recover (`Message.recovered`)
so the caller can count it. On well-formed text it agrees with openai-harmony's parser (tested on recorded
gpt-oss-120b completions and on the renderer's own output).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

START, END, MESSAGE, CHANNEL, CALL, RETURN, CONSTRAIN = (
    "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|call|>", "<|return|>", "<|constrain|>")
SPECIAL = (START, END, MESSAGE, CHANNEL, CALL, RETURN, CONSTRAIN)
_TOKEN = re.compile(r"<\|(?:start|end|message|call|return)\|>")
_RECIPIENT = re.compile(r"\bto=([^\s<]+)")
MAX_HEADER = 256  # a real header is a few words: past this the "header" is text the model wrote without one
PYTHON_RECIPIENTS = ("python", "functions.python")
CHANNELS = ("analysis", "commentary", "final")
ROLES = ("assistant", "user", "system", "developer", "python", "tool")


@dataclass
class Message:
    role: str = "assistant"
    channel: str = ""
    recipient: str = ""
    content_type: str = ""
    body: str = ""
    end: str = ""  # the token that ended it: <|end|>, <|call|>, <|return|>; "" when the text stops inside it
    start: int = 0  # where the message's header begins in the text
    body_at: int = -1  # where its body begins; -1: no body yet (cut inside the header)
    recovered: list[str] = field(default_factory=list)  # what was malformed and read anyway

    @property
    def is_python_call(self) -> bool:
        return self.role == "assistant" and self.recipient in PYTHON_RECIPIENTS

    @property
    def is_tool_reply(self) -> bool:
        return self.role in PYTHON_RECIPIENTS or (self.role not in ("assistant", "user", "system", "developer")
                                                  and self.recipient == "assistant")


def parse_header(header: str) -> tuple[str, str, str, str, list[str]]:
    """(role, channel, recipient, content type, recovered) of one header, either order of `to=` and channel."""
    recovered: list[str] = []
    if CONSTRAIN in header:
        header = header.replace(CONSTRAIN, " ")
    pre, sep, post = header.partition(CHANNEL)
    if CHANNEL in post:
        recovered.append("two channels in a header")
        post = post.replace(CHANNEL, " ")
    to = _RECIPIENT.search(header)
    recipient = to.group(1) if to else ""
    pre_words = _RECIPIENT.sub(" ", pre).split()
    post_words = _RECIPIENT.sub(" ", post).split() if sep else []
    role = pre_words[0] if pre_words else ""
    channel = post_words[0] if post_words else ""
    content_type = " ".join(post_words[1:] + pre_words[1:])
    return role, channel, recipient, content_type, recovered


def read(text: str, role: str = "assistant") -> list[Message]:
    """The messages of `text`: a completion that continues after `<|start|>assistant` (its first header needs
    no `<|start|>`), or any run of harmony. One pass over the structural tokens; never raises."""
    out: list[Message] = []
    # the message being read (None: between messages); a completion's first has no <|start|> of its own
    msg: Message | None = None if text.startswith(START) else Message(role=role, start=0)
    explicit = False  # msg began with <|start|>: its header names the role
    at = 0  # where msg's header (or, once body_at is set, nothing) begins
    for tok in _TOKEN.finditer(text):
        kind, where = tok.group(), tok.start()
        if msg is None:
            stray = text[at:where]
            if stray.strip():  # text between a terminator and the next <|start|>
                out.append(Message(role=role, body=stray, start=at, body_at=at, recovered=["text outside a message"]))
            if kind != START:
                if kind != MESSAGE and out:
                    out[-1].recovered.append("a second end token")
                at = tok.end()
                continue
            msg, explicit, at = Message(start=where), True, tok.end()
            continue
        if kind == MESSAGE:
            if msg.body_at < 0:
                _header(msg, text[at:where], role, explicit)
                msg.body_at = tok.end()
            else:
                msg.recovered.append("<|message|> inside a body")
            continue
        if kind == START:  # a new message while this one is open: it never ended
            _close(msg, text, at, where, role, explicit, "no end token before the next <|start|>")
            out.append(msg)
            msg, explicit, at = Message(start=where), True, tok.end()
            continue
        _close(msg, text, at, where, role, explicit, "")  # <|end|>, <|call|>, <|return|>
        msg.end = kind
        if kind == RETURN and msg.recipient in PYTHON_RECIPIENTS:
            msg.recovered.append("<|return|> after a call")
        if kind == CALL and not msg.recipient and msg.role == "assistant":
            msg.recipient = "python"  # the model ended a call without naming the tool: python is the only one
            msg.recovered.append("a call with no recipient")
        out.append(msg)
        msg, at = None, tok.end()
    if msg is not None:
        rest = text[at:]
        if msg.body_at < 0 and len(rest) <= MAX_HEADER and "\n" not in rest and (explicit or CHANNEL in rest):
            _header(msg, text[at:], role, explicit)  # cut inside the header: nothing written yet
            if rest.strip():
                msg.recovered.append("cut inside a header")
                out.append(msg)
        else:
            _close(msg, text, at, len(text), role, explicit, "")
            out.append(msg)
    elif text[at:].strip():
        out.append(Message(role=role, body=text[at:], start=at, body_at=at, recovered=["text outside a message"]))
    return out


def _close(msg: Message, text: str, at: int, stop: int, role: str, explicit: bool, why: str) -> None:
    """End `msg` at `stop`: its body runs there; a header that never reached <|message|> is split off here."""
    if why:
        msg.recovered.append(why)
    if msg.body_at >= 0:
        msg.body = text[msg.body_at:stop]
        return
    chunk = text[at:stop]
    msg.recovered.append("no <|message|> after the header")
    line, nl, _ = chunk.partition("\n")
    if CHANNEL in chunk[:MAX_HEADER] or explicit:
        if nl and len(line) <= MAX_HEADER:
            head = line  # the first line is the header
        else:  # the header runs to the channel's name (and a recipient written after it)
            m = re.match(r"[^<]*(?:<\|channel\|>\s*\S+(?:\s+to=\S+)?)?", chunk)
            head = m.group() if m else ""
    else:
        head = ""  # text that starts mid-body (a completion cut from its start): no header to read
    _header(msg, head, role, explicit)
    msg.body_at = at + len(head) + (1 if head and chunk[len(head):len(head) + 1] == "\n" else 0)
    msg.body = text[msg.body_at:stop]


def _header(msg: Message, header: str, default_role: str, explicit: bool) -> None:
    role, channel, recipient, content_type, recovered = parse_header(header)
    if explicit:
        msg.role = role or default_role
        if not role:
            msg.recovered.append("no role in the header")
    else:  # a completion's first header has no role: a word before the channel is not one
        msg.role = default_role
        content_type = " ".join(w for w in (role, content_type) if w)
    msg.channel, msg.recipient, msg.content_type = channel, recipient, content_type
    if channel and channel not in CHANNELS:
        recovered.append("unknown channel")
    if msg.role not in ROLES and "." not in msg.role:
        recovered.append("unknown role")
    if len(header) > MAX_HEADER:
        recovered.append("header too long")
    msg.recovered += recovered


def recovered(messages: list[Message]) -> int:
    """How many messages needed recovering (for the log's count)."""
    return sum(1 for m in messages if m.recovered)
