"""Every error the kit raises on purpose derives from AimokitError, which the CLI catches in one place."""

import inspect
import pkgutil
import subprocess
import sys

import aimokit
from aimokit.errors import AimokitError

from layout import ROOT


def _kit_exceptions():
    found = []
    for mod in pkgutil.walk_packages(aimokit.__path__, "aimokit."):
        if mod.name in ("aimokit.serving",):  # imports the competition's modules lazily; nothing of its own
            continue
        module = __import__(mod.name, fromlist=["_"])
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == mod.name:
                found.append(obj)
    return found


def test_every_kit_exception_derives_from_one_base():
    found = _kit_exceptions()
    assert len(found) >= 14  # ConfigError, EngineError, PushError, ... (a module that is not imported is missed)
    assert [e.__name__ for e in found if not issubclass(e, AimokitError)] == []


def test_the_cli_prints_any_kit_error_in_one_line(tmp_path):
    bad = tmp_path / "train.toml"
    bad.write_text("no_such_key = 1\n")
    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "train", "--config", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "no_such_key" in proc.stderr
