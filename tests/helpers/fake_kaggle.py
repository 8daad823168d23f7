"""A stand-in for Kaggle's API on 127.0.0.1, answering what the kaggle client calls.

The client is pointed here by its own setting, KAGGLE_API_ENVIRONMENT=LOCALHOST
(http://localhost, so port 80). The server keeps every request and every
uploaded byte, so tests can assert what arrived; `faults` makes an endpoint
answer with an HTTP status (or hang) a given number of times.
"""

from __future__ import annotations

import json
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO

PORT = 80  # where the client's LOCALHOST environment sends requests


@dataclass
class FakeKaggle:
    blobs: dict[str, bytes] = field(default_factory=dict)  # token -> uploaded bytes
    blob_names: dict[str, str] = field(default_factory=dict)  # token -> file name
    datasets: dict[str, list[dict]] = field(default_factory=dict)  # ref -> versions, each {files: {name: bytes}}
    kernels: dict[str, list[dict]] = field(default_factory=dict)  # ref -> pushed SaveKernel requests
    calls: list[str] = field(default_factory=list)  # endpoint names in order
    auth: list[str] = field(default_factory=list)  # Authorization headers seen
    faults: dict[str, list[int | str]] = field(default_factory=dict)  # endpoint -> statuses to answer first
    pending_ready: int = 1  # status polls answering BLOBS_RECEIVED before READY
    outputs: dict[str, bytes] = field(default_factory=lambda: {"submission.parquet": b"PAR1fake"})
    hang_s: float = 5.0
    submissions: list[dict] = field(default_factory=list)  # CreateCodeSubmission requests, newest last
    kernel_status: str = "COMPLETE"
    hidden_after_create: int = 0  # status calls answering 404 right after a create or version, as Kaggle's can
    stale_versions: int = 0  # GetDataset calls still reporting the previous version number after a version
    applied_shape: str = ""  # the machine shape GetKernel reports ("" : the one pushed)
    ran_on: str = "gcr.io/kaggle-gpu-images/python@sha256:" + "5e" * 32  # the image GetKernel reports a run used
    licenses: tuple = ("CC0-1.0", "apache-2.0", "CC-BY-4.0", "other")  # a few the client documents
    dead_sessions: set = field(default_factory=set)  # upload tokens whose session failed: resume answers 404
    kernel_reply: dict = field(default_factory=dict)  # extra fields of SaveKernel's answer (invalid*Sources...)
    bytes_in: dict = field(default_factory=dict)  # file name -> bytes received for it, over all sessions
    _polls: dict[str, int] = field(default_factory=dict)
    _hidden: dict[str, int] = field(default_factory=dict)
    _stale: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def files_of(self, ref: str, version: int = -1) -> dict[str, bytes]:
        """A dataset version's files as Kaggle would show them: archives unpacked, as Kaggle does."""
        out: dict[str, bytes] = {}
        for name, data in self.datasets[ref][version]["files"].items():
            if name.endswith(".zip"):
                with zipfile.ZipFile(BytesIO(data)) as z:
                    for info in z.infolist():
                        if not info.is_dir():
                            out[f"{name[:-4]}/{info.filename}"] = z.read(info)
            else:
                out[name] = data
        return out


def _handler(state: FakeKaggle):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = b""
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, payload: dict | bytes | None = None) -> None:
            body = payload if isinstance(payload, bytes) else json.dumps(payload or {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream" if isinstance(payload, bytes)
                             else "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _fault(self, name: str) -> bool:
            with state.lock:
                queue = state.faults.get(name) or []
                fault = queue.pop(0) if queue else None
            if fault is None:
                return False
            if fault == "hang":
                time.sleep(state.hang_s)
                self.close_connection = True
                return True
            if fault == "slow":  # the request takes effect only after the client gave up, and is answered then
                time.sleep(state.hang_s)
                getattr(self, f"_{name}")(self._request)
                return True
            if fault == "late":  # the request takes effect, but the answer comes after the client gave up
                getattr(self, f"_{name}")(self._request, reply=False)
                time.sleep(state.hang_s)
                self.close_connection = True
                return True
            self._send(int(fault), {"code": int(fault), "message": f"injected {fault}"})
            return True

        def do_PUT(self):
            """A blob upload to the createUrl handed out below, resumable as Google's uploads are.

            `Content-Range: bytes */N` with no body asks how much arrived: 200 when
            all of it, else 308 with the Range received. `bytes a-b/N` appends.
            """
            token = self.path.rsplit("/", 1)[-1]
            data = self._body()
            with state.lock:
                state.calls.append("PUT")
            rng = self.headers.get("Content-Range", "")
            if token in state.dead_sessions:  # Google's answer to a resume of a session that failed
                self._send(404, {})
                return
            if rng.startswith("bytes */"):
                have = state.blobs.get(token)
                if have is not None and len(have) == int(rng.split("/")[1]):
                    self._send(200, {})
                    return
                self.send_response(308)
                if have:
                    self.send_header("Range", f"bytes=0-{len(have) - 1}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            name = state.blob_names.get(token, "")
            with state.lock:
                queue = state.faults.get(f"PUT:{name}") or []
                status = queue.pop(0) if queue else None
            if status is not None:  # a non-resumable refusal of this file: its session is dead from now on
                state.dead_sessions.add(token)
                self._send(int(status), {})
                return
            if self._fault("PUT"):
                return
            with state.lock:
                state.bytes_in[name] = state.bytes_in.get(name, 0) + len(data)
                start = int(rng.split(" ")[1].split("-")[0]) if rng.startswith("bytes ") else 0
                state.blobs[token] = state.blobs.get(token, b"")[:start] + data
            self._send(200, {})

        def do_GET(self):  # output file download
            name = self.path.rsplit("/", 1)[-1]
            self._send(200, state.outputs[name]) if name in state.outputs else self._send(404, {})

        def do_POST(self):
            name = self.path.rsplit("/", 1)[-1]
            req = self._request = json.loads(self._body() or b"{}")
            with state.lock:
                state.calls.append(name)
                state.auth.append(self.headers.get("Authorization", ""))
            if self._fault(name):
                return
            handler = getattr(self, f"_{name}", None)
            if handler is None:
                self._send(404, {"code": 404, "message": f"fake Kaggle has no {name}"})
                return
            handler(req)

        def _known(self, ref, table) -> bool:
            """Whether `ref` exists; if not, Kaggle's 404 has been sent."""
            if ref in table:
                return True
            self._send(404, {"code": 404, "message": "Not found"})
            return False

        def _StartBlobUpload(self, req):
            with state.lock:
                token = f"tok{len(state.blob_names)}"
                state.blob_names[token] = req["name"]
            self._send(200, {"token": token, "createUrl": f"http://localhost:{PORT}/upload/{token}"})

        def _files(self, req) -> dict[str, bytes]:
            files = {}
            for f in req.get("files", []):
                tok = f["token"]
                files[state.blob_names[tok]] = state.blobs[tok]
            return files

        def _GetDatasetStatus(self, req):
            ref = f"{req['ownerSlug']}/{req['datasetSlug']}"
            with state.lock:
                hidden = state._hidden.get(ref, 0)
                state._hidden[ref] = hidden - 1
            if ref not in state.datasets or hidden > 0:
                self._send(404, {"code": 404, "message": "Not found"})
                return
            with state.lock:
                n = state._polls.get(ref, 0)
                state._polls[ref] = n + 1
            self._send(200, {"status": "BLOBS_RECEIVED" if n < state.pending_ready else "READY"})

        def _GetDataset(self, req):
            ref = f"{req['ownerSlug']}/{req['datasetSlug']}"
            if not self._known(ref, state.datasets):
                return
            with state.lock:
                stale = state._stale.get(ref, 0)
                state._stale[ref] = stale - 1
            n = len(state.datasets[ref]) - (1 if stale > 0 else 0)
            self._send(200, {"ref": ref, "currentVersionNumber": n})

        def _created(self, ref):
            state._polls[ref] = 0
            state._hidden[ref] = state.hidden_after_create
            state._stale[ref] = state.stale_versions

        def _CreateDataset(self, req, reply=True):
            ref = f"{req['ownerSlug']}/{req['slug']}"
            if ref in state.datasets:  # as Kaggle answers a second create of the same dataset
                self._send(200, {"error": "The requested title is already in use by a dataset"})
                return
            if req.get("licenseName") not in state.licenses:  # refused with a 200 and an error, as Kaggle does
                self._send(200, {"error": f"The license '{req.get('licenseName')}' is invalid"})
                return
            with state.lock:
                state.datasets[ref] = [{"title": req.get("title"), "license": req.get("licenseName"),
                                        "private": req.get("isPrivate"), "files": self._files(req)}]
                self._created(ref)
            if reply:
                self._send(200, {"ref": ref, "url": f"http://localhost/datasets/{ref}", "status": "ok"})

        def _CreateDatasetVersion(self, req):
            ref = f"{req['ownerSlug']}/{req['datasetSlug']}"
            if not self._known(ref, state.datasets):
                return
            with state.lock:
                state.datasets[ref].append({"note": req["body"].get("versionNotes"),
                                            "files": self._files(req["body"])})
                self._created(ref)
            self._send(200, {"ref": ref, "url": f"http://localhost/datasets/{ref}", "status": "ok"})

        def _SaveKernel(self, req, reply=True):
            ref = req["slug"]
            with state.lock:
                state.kernels.setdefault(ref, []).append(req)
                n = len(state.kernels[ref])
            if reply:
                self._send(200, {"ref": ref, "url": f"http://localhost/code/{ref}", "versionNumber": n,
                                 **state.kernel_reply})

        def _GetKernel(self, req):
            ref = f"{req['userName']}/{req['kernelSlug']}"
            if not self._known(ref, state.kernels):
                return
            last = state.kernels[ref][-1]
            meta = {"id": 1, "ref": ref, "title": last.get("newTitle"), "language": "python",
                    "kernelType": last.get("kernelType"), "isPrivate": last.get("isPrivate"),
                    "enableGpu": last.get("enableGpu"), "enableInternet": last.get("enableInternet"),
                    "datasetDataSources": last.get("datasetDataSources", []),
                    "competitionDataSources": last.get("competitionDataSources", []),
                    "machineShape": state.applied_shape or last.get("machineShape"),
                    "dockerImage": last.get("dockerImage") or state.ran_on,
                    "currentVersionNumber": len(state.kernels[ref])}
            blob = {"source": last.get("text", ""), "language": "python", "kernelType": last.get("kernelType"),
                    "slug": ref.split("/")[1]}
            self._send(200, {"metadata": meta, "blob": blob})

        def _GetKernelSessionStatus(self, req):
            ref = f"{req['userName']}/{req['kernelSlug']}"
            if not self._known(ref, state.kernels):
                return
            self._send(200, {"status": state.kernel_status})

        def _CreateCodeSubmission(self, req):
            ref = f"{req.get('kernelOwner')}/{req.get('kernelSlug')}"
            versions = state.kernels.get(ref, [])
            if not versions or not 1 <= int(req.get("kernelVersion") or 0) <= len(versions):
                self._send(400, {"code": 400, "message": f"kernel {ref} has no version {req.get('kernelVersion')}"})
                return
            with state.lock:
                state.submissions.append(req)
                n = len(state.submissions)
            self._send(200, {"message": "Submission successful", "ref": n})

        def _ListSubmissions(self, req):
            subs = [{"ref": i + 1, "date": "2026-11-25T10:00:00Z", "description": s.get("submissionDescription"),
                     "fileName": s.get("fileName"), "status": "COMPLETE", "publicScore": "41.0"}
                    for i, s in enumerate(state.submissions)]
            self._send(200, {"submissions": subs[::-1]})

        def _ListKernelSessionOutput(self, req):
            files = [{"url": f"http://localhost:{PORT}/files/{n}", "fileName": n} for n in state.outputs]
            self._send(200, {"files": files, "log": "[kernel log]"})

    return Handler


def start(state: FakeKaggle) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", PORT), _handler(state))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
