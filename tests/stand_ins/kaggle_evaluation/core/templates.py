"""Stand-in for kaggle_evaluation/core/templates.py (see relay.py for what is kept)."""

from __future__ import annotations

import abc
import json
import os
import threading
from types import FunctionType

import polars as pl

from . import relay

IS_RERUN = lambda: os.getenv("KAGGLE_IS_COMPETITION_RERUN") is not None  # noqa: E731


class GatewayRuntimeError(Exception):
    def __init__(self, error_type: str, error_details: str | None = None):
        super().__init__(f"{error_type}: {error_details}")
        self.error_type = error_type
        self.error_details = error_details


class Gateway(abc.ABC):
    """Sends one batch at a time to `predict`, checks each reply, writes submission.parquet in the cwd."""

    def __init__(self, data_paths=None, file_share_dir=None):
        self.data_paths = data_paths
        self.client = relay.Client()
        self.target_column_name = None
        self.row_id_column_name = None

    def set_response_timeout_seconds(self, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        self.client.endpoint_deadline_seconds = timeout_seconds

    @abc.abstractmethod
    def unpack_data_paths(self) -> None: ...

    @abc.abstractmethod
    def generate_data_batches(self): ...

    def competition_specific_validation(self, prediction_batch, row_ids, data_batch) -> None:
        pass

    def predict(self, *args, **kwargs):
        try:
            return self.client.send("predict", *args, **kwargs)
        except NotImplementedError as e:
            raise GatewayRuntimeError("SERVER_MISSING_ENDPOINT", str(e)) from None
        except relay.GRPCDeadlineError as e:
            raise GatewayRuntimeError("GRPC_DEADLINE_EXCEEDED", str(e)) from None
        except RuntimeError as e:
            raise GatewayRuntimeError("SERVER_RAISED_EXCEPTION", str(e)) from None

    def competition_agnostic_validation(self, prediction_batch, row_ids) -> None:
        if prediction_batch is None:
            raise GatewayRuntimeError("INVALID_SUBMISSION", "No prediction received")
        if isinstance(prediction_batch, (int, float, str, bool)):
            received = 1
        elif isinstance(prediction_batch, (pl.DataFrame, pl.Series)) or hasattr(prediction_batch, "__len__"):
            received = len(prediction_batch)
        else:
            raise GatewayRuntimeError("INVALID_SUBMISSION", f"Invalid prediction data type, received: {type(prediction_batch)}")
        expected = 1 if isinstance(row_ids, (str, int)) else len(row_ids)
        if expected == 0:
            raise GatewayRuntimeError("GATEWAY_RAISED_EXCEPTION", "Missing row IDs for batch")
        if received != expected:
            raise GatewayRuntimeError("INVALID_SUBMISSION", f"Invalid predictions: expected {expected} rows but received {received}")

    def get_all_predictions(self):
        predictions, ids = [], []
        for data_batch, row_ids in self.generate_data_batches():
            p = self.predict(*data_batch)
            self.competition_agnostic_validation(p, row_ids)
            self.competition_specific_validation(p, row_ids, data_batch)
            predictions.append(p)
            ids.append(row_ids)
        return predictions, ids

    def write_submission(self, predictions, row_ids) -> None:
        try:
            sub = pl.concat(predictions, how="vertical_relaxed")
        except (pl.exceptions.SchemaError, pl.exceptions.ComputeError) as e:
            raise GatewayRuntimeError("INVALID_SUBMISSION", f"Inconsistent predictions: {e}") from None
        ids = pl.concat(row_ids)
        order = ids.columns + [c for c in sub.columns if c not in ids.columns]
        sub.with_columns(ids).select(order).write_parquet("submission.parquet")

    def run(self) -> None:
        error = None
        try:
            self.unpack_data_paths()
            self.write_submission(*self.get_all_predictions())
        except GatewayRuntimeError as e:
            error = e
        except Exception as e:
            error = GatewayRuntimeError("GATEWAY_RAISED_EXCEPTION", repr(e))
        if IS_RERUN():
            result = {"Succeeded": error is None}
            if error is not None:
                result.update(ErrorName=error.error_type, ErrorDetails=str(error.error_details)[:8000])
            with open("result.json", "w") as f:
                json.dump(result, f)
        elif error is not None:
            raise error


class InferenceServer(abc.ABC):
    def __init__(self, *endpoint_listeners: FunctionType):
        self.server = relay.define_server(*endpoint_listeners)

    def serve(self) -> None:
        """Under the rerun the gateway runs in its own container; this call then blocks until it ends."""
        self.server.start()
        if IS_RERUN():
            gateway = self._get_gateway_for_test(None)
            threading.Thread(target=self._run_rerun_gateway, args=(gateway,), daemon=True).start()
            self.server.wait_for_termination()

    def _run_rerun_gateway(self, gateway: Gateway) -> None:
        try:
            gateway.run()
        finally:
            self.server.stop(0)  # the container is torn down when the gateway is done

    @abc.abstractmethod
    def _get_gateway_for_test(self, data_paths, file_share_dir=None, *args, **kwargs): ...

    def run_local_gateway(self, data_paths=None, file_share_dir=None, *args, **kwargs) -> None:
        self.server.start()
        try:
            self.gateway = self._get_gateway_for_test(data_paths, file_share_dir, *args, **kwargs)
            self.gateway.run()
        finally:
            self.server.stop(0)
