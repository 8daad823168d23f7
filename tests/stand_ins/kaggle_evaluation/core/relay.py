"""Stand-in for kaggle_evaluation/core/relay.py: the contract the real relay enforces.

Written for the tests from a reading of the package that ships with the AIMO-2/3
competition data (not on PyPI). What it keeps of the real one:
- `define_server` accepts only plain functions (`types.FunctionType`), refuses
  lambdas, and routes each request by the function's `__name__`;
- listeners run on a server pool of ONE worker thread, never the main thread;
- arguments and return values cross a serialisation boundary that admits only
  the real allow-list (primitives, list/tuple/dict, pandas/polars frames and
  series, numpy), so a returned object is a copy and an odd type is a TypeError;
- after the first response, a call that outlives the response deadline fails.
The transport is in-process instead of gRPC on localhost ports.
"""

from __future__ import annotations

import io
import threading
import time
from concurrent import futures
from types import FunctionType
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

STARTUP_LIMIT_SECONDS = 60 * 15
DEFAULT_DEADLINE_SECONDS = 60 * 60
_POLARS_DENYLIST = {pl.Object, pl.Unknown}

_SERVERS: list["Server"] = []  # what is listening "on the port"
_SERVERS_CHANGED = threading.Condition()


class GRPCDeadlineError(Exception):
    pass


def _serialize(data: Any) -> tuple[str, Any]:
    if isinstance(data, np.generic):
        return ("np_scalar", data.item())
    if isinstance(data, (str, bool, int, float)) or data is None:
        return ("prim", data)
    if isinstance(data, (list, tuple)):
        return ("list" if isinstance(data, list) else "tuple", [_serialize(d) for d in data])
    if isinstance(data, dict):
        for k in data:
            if not isinstance(k, str):
                raise TypeError(f"KaggleEvaluation only supports dicts with keys of type str, found {type(k)}.")
        return ("dict", {k: _serialize(v) for k, v in data.items()})
    if isinstance(data, pl.DataFrame):
        banned = _POLARS_DENYLIST.intersection(d.base_type() for d in data.dtypes)
        if banned:
            raise TypeError(f"Unsupported Polars data type(s): {banned}")
        buf = io.BytesIO()
        data.write_ipc_stream(buf)
        return ("pl_df", buf.getvalue())
    if isinstance(data, pl.Series):
        buf = io.BytesIO()
        pl.DataFrame(data).write_parquet(buf)
        return ("pl_series", buf.getvalue())
    if isinstance(data, pd.DataFrame):
        buf = io.BytesIO()
        data.to_parquet(buf, index=False)
        return ("pd_df", buf.getvalue())
    if isinstance(data, pd.Series):
        buf = io.BytesIO()
        pd.DataFrame(data).to_parquet(buf, index=False)
        return ("pd_series", buf.getvalue())
    if isinstance(data, np.ndarray):
        buf = io.BytesIO()
        np.save(buf, data, allow_pickle=False)
        return ("np", buf.getvalue())
    raise TypeError(f"Type {type(data)} not supported for KaggleEvaluation.")


def _deserialize(payload: tuple[str, Any]) -> Any:
    kind, v = payload
    if kind in ("prim", "np_scalar"):
        return v
    if kind == "list":
        return [_deserialize(x) for x in v]
    if kind == "tuple":
        return tuple(_deserialize(x) for x in v)
    if kind == "dict":
        return {k: _deserialize(x) for k, x in v.items()}
    if kind == "pl_df":
        return pl.read_ipc_stream(io.BytesIO(v))
    if kind == "pl_series":
        return pl.read_parquet(io.BytesIO(v)).to_series(0)
    if kind == "pd_df":
        return pd.read_parquet(io.BytesIO(v))
    if kind == "pd_series":
        df = pd.read_parquet(io.BytesIO(v))
        return df[df.columns[0]]
    if kind == "np":
        return np.load(io.BytesIO(v), allow_pickle=False)
    raise TypeError(f"Found unknown Payload case {kind}")


class Server:
    def __init__(self, listeners: tuple[FunctionType, ...]):
        self.listeners_map = {f.__name__: f for f in listeners}
        self.pool: futures.ThreadPoolExecutor | None = None
        self.stopped = threading.Event()

    def start(self) -> None:
        self.pool = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="grpc-server")
        self.stopped.clear()
        with _SERVERS_CHANGED:
            _SERVERS.append(self)
            _SERVERS_CHANGED.notify_all()

    def stop(self, grace: float | None = None) -> None:
        with _SERVERS_CHANGED:
            if self in _SERVERS:
                _SERVERS.remove(self)
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.stopped.set()

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self.stopped.wait(timeout)

    def handle(self, name: str, args: list, kwargs: dict) -> futures.Future:
        if name not in self.listeners_map:
            raise NotImplementedError(f"No listener for {name} was registered.")
        fn = self.listeners_map[name]

        def call():
            a = [_deserialize(x) for x in args]
            kw = {k: _deserialize(x) for k, x in kwargs.items()}
            return _serialize(fn(*a, **kw))

        assert self.pool is not None
        return self.pool.submit(call)


def define_server(*endpoint_listeners: FunctionType) -> Server:
    if not endpoint_listeners:
        raise ValueError("Must pass at least one endpoint listener, e.g. `predict`")
    for func in endpoint_listeners:
        if not isinstance(func, FunctionType):
            raise ValueError(f"Endpoint listeners passed to `serve` must be functions, got {type(func)}")
        if func.__name__ == "<lambda>":
            raise ValueError("Functions passed as endpoint listeners must be named")
    return Server(endpoint_listeners)


class Client:
    def __init__(self, channel_address: str = "localhost") -> None:
        self.endpoint_deadline_seconds = DEFAULT_DEADLINE_SECONDS
        self.startup_limit_seconds = STARTUP_LIMIT_SECONDS
        self._made_first_connection = False

    def _server(self) -> Server:
        deadline = time.monotonic() + self.startup_limit_seconds
        with _SERVERS_CHANGED:
            while not _SERVERS:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"Failed to connect to server after waiting {self.startup_limit_seconds} seconds")
                _SERVERS_CHANGED.wait(left)
            return _SERVERS[-1]

    def send(self, name: str, *args, **kwargs) -> Any:
        request = ([_serialize(a) for a in args], {k: _serialize(v) for k, v in kwargs.items()})
        fut = self._server().handle(name, *request)
        timeout = self.endpoint_deadline_seconds if self._made_first_connection else None
        try:
            payload = fut.result(timeout=timeout)
        except futures.TimeoutError:
            raise GRPCDeadlineError() from None
        except Exception as e:  # what gRPC reports for an exception in the listener
            raise RuntimeError(f'Exception calling application: {e}') from None
        self._made_first_connection = True
        return _deserialize(payload)

    def close(self) -> None:
        pass
