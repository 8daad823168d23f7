"""A kernel process for fault-injection tests: the real serving path with a scripted, slow engine.

argv: a JSON object with `config` (dotted overrides on the tests' fast config), `problems` (a csv path),
`step_s` and optionally `fsize` (RLIMIT_FSIZE in bytes: writes past it fail as on a full disk).
"""

import json
import resource
import signal
import sys

from fakes import ScriptedEngine, tir_respond  # run as a script: its own folder is on the path

from aimokit.config import KernelConfig
from aimokit.kernel import Kernel
from aimokit.serving import install_signal_handlers, serve, setup_logging

args = json.loads(sys.argv[1])
if "fsize" in args:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write fails with EFBIG, as ENOSPC would
setup_logging()
install_signal_handlers()
cfg = KernelConfig().override(args["config"])
if "fsize" in args:
    resource.setrlimit(resource.RLIMIT_FSIZE, (args["fsize"], resource.RLIM_INFINITY))
serve(cfg, Kernel(cfg, engine_factory=lambda c: ScriptedEngine(tir_respond, step_s=args["step_s"])))
