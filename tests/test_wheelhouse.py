"""The wheelhouse resolver against a local index of tiny wheels (nothing is downloaded)."""

import json
import sys
from pathlib import Path

import pytest

from wheels import zip_wheel as tiny_wheel

from aimokit.kaggle.config import WheelsConfig
from aimokit.kaggle.wheelhouse import WheelhouseError, build_wheelhouse, pins_from_report, read_image_list

HOST = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture
def index(tmp_path):
    """appa -> bepp -> cinn (a chain), and cinn in two versions."""
    d = tmp_path / "index"
    tiny_wheel(d, "appa", "1.0", ("bepp>=1",))
    tiny_wheel(d, "bepp", "1.2", ("cinn==2.0",))
    tiny_wheel(d, "cinn", "2.0")
    tiny_wheel(d, "cinn", "1.0")
    tiny_wheel(d, "dell", "0.5")
    return d


def _cfg(index, **kw):
    return WheelsConfig(requirements=["appa==1.0"], python_version=HOST, find_links=[str(index)], no_index=True, **kw)


def test_a_dependency_chain_is_closed_and_installs_with_no_index(index, tmp_path):
    m = build_wheelhouse(_cfg(index), {}, tmp_path / "wh")
    assert m["shipped"] == ["appa==1.0", "bepp==1.2", "cinn==2.0"]
    assert sorted(p.name for p in (tmp_path / "wh").glob("*.whl")) == [
        "appa-1.0-py3-none-any.whl", "bepp-1.2-py3-none-any.whl", "cinn-2.0-py3-none-any.whl"]
    assert "installed with --no-index into an empty folder" in m["verified"]
    assert json.loads((tmp_path / "wh" / "wheelhouse.json").read_text()) == m


def test_a_rebuild_copies_wheels_from_the_cache_keyed_by_name_and_hash_with_fixed_mtimes(index, tmp_path,
                                                                                       monkeypatch, caplog):
    """The second build downloads nothing, ships the same bytes at the same mtimes; a damaged cache entry is
    noticed by its hash and fetched again."""
    from aimokit.kaggle import wheel_cache, wheelhouse

    cache = tmp_path / "cache"
    cfg = _cfg(index, cache_dir=str(cache))
    build_wheelhouse(cfg, {}, tmp_path / "a")
    entry = next(cache.glob("appa/*/appa-1.0-py3-none-any.whl"))
    assert entry.parent.name == wheel_cache.sha256_of(entry)  # keyed by name, then sha256

    def no_download(*a, **k):
        raise AssertionError("a cached wheel was downloaded again")

    monkeypatch.setattr(wheelhouse, "download", no_download)
    build_wheelhouse(cfg, {}, tmp_path / "b")
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        a, b = tmp_path / "a" / name, tmp_path / "b" / name
        assert a.read_bytes() == b.read_bytes(), name
        assert a.stat().st_mtime == b.stat().st_mtime == wheel_cache.FIXED_MTIME, name

    monkeypatch.undo()
    entry.write_bytes(b"damaged")
    build_wheelhouse(cfg, {}, tmp_path / "c")
    assert (tmp_path / "c" / entry.name).read_bytes() == (tmp_path / "a" / entry.name).read_bytes()
    assert "does not match its sha256" in caplog.text


def test_a_download_that_differs_from_what_the_resolver_reported_is_refused(index, tmp_path, monkeypatch):
    from aimokit.kaggle import wheelhouse

    def other_file(pins, dest, cfg):
        dest.mkdir(parents=True, exist_ok=True)
        return [tiny_wheel(dest, p.name, p.version, ("zzz",)) for p in pins]  # same names, other bytes

    monkeypatch.setattr(wheelhouse, "download", other_file)
    with pytest.raises(WheelhouseError, match="the index changed during the build"):
        build_wheelhouse(_cfg(index, cache_dir=str(tmp_path / "cache")), {}, tmp_path / "wh")


def test_a_package_the_image_has_is_left_out(index, tmp_path):
    m = build_wheelhouse(_cfg(index), {"cinn": "2.0", "dell": "0.5"}, tmp_path / "wh")
    assert m["shipped"] == ["appa==1.0", "bepp==1.2"]  # cinn comes from the image
    assert m["image_packages_relied_on"] == 2


def test_a_conflicting_pin_stops_the_build_and_names_the_fix(index, tmp_path):
    with pytest.raises(WheelhouseError) as e:
        build_wheelhouse(_cfg(index), {"cinn": "1.0"}, tmp_path / "wh")
    msg = str(e.value)
    assert "the image has cinn 1.0" in msg and "bepp 1.2 needs cinn==2.0" in msg
    assert "wheels.replace = ['cinn']" in msg
    assert not list((tmp_path / "wh").glob("*.whl")) if (tmp_path / "wh").exists() else True


def test_replacing_an_image_package_ships_it(index, tmp_path):
    m = build_wheelhouse(_cfg(index, replace=["cinn"]), {"cinn": "1.0"}, tmp_path / "wh")
    assert m["shipped"] == ["appa==1.0", "bepp==1.2", "cinn==2.0"] and m["replaced_over_image"] == ["cinn"]


def test_an_incomplete_wheelhouse_fails_verification(index, tmp_path):
    """If a shipped wheel goes missing, the --no-index check catches it."""
    from aimokit.kaggle import wheelhouse

    cfg = _cfg(index)
    tiny_wheel(tmp_path / "wh", "appa", "1.0", ("bepp>=1",))
    with pytest.raises(WheelhouseError, match="not complete"):
        wheelhouse.verify(cfg.requirements, tmp_path / "wh", {}, cfg, tmp_path / "work")


def test_image_lists_are_read_from_pip_freeze(tmp_path):
    f = tmp_path / "image.txt"
    f.write_text("# probe\nTorch==2.11.0+cu130\nnumpy == 2.3.4\n-e git+https://x#egg=y\nfoo @ file:///tmp/foo\n")
    assert read_image_list(f) == {"torch": "2.11.0+cu130", "numpy": "2.3.4"}
    with pytest.raises(WheelhouseError, match="probe-image"):
        read_image_list(tmp_path / "missing.txt")


def test_the_image_can_stand_in_for_an_exact_pin_and_it_is_recorded(index, tmp_path):
    """vLLM 0.26 pins numba==0.65.0 where images carry newer ones: ignore_pins lets the image's stand in."""
    m = build_wheelhouse(_cfg(index, ignore_pins=["cinn"]), {"cinn": "1.0"}, tmp_path / "wh")
    assert m["shipped"] == ["appa==1.0", "bepp==1.2"]
    assert m["image_stands_in_for_pins"] == {"cinn": "the image's 1.0 for ==2.0"}


def test_ignore_pins_does_not_hide_other_conflicts(tmp_path):
    d = tmp_path / "index"
    tiny_wheel(d, "appa", "1.0", ("cinn>=2",))  # a range, not a pin: the image's 1.0 cannot stand in
    tiny_wheel(d, "cinn", "2.0")
    with pytest.raises(WheelhouseError, match="the image has cinn 1.0, but appa 1.0 needs cinn>=2"):
        build_wheelhouse(_cfg(d, ignore_pins=["cinn"]), {"cinn": "1.0"}, tmp_path / "wh")


RECORDED = Path(__file__).parent / "data" / "vllm-0.26.0-lent-h100.report.json"
TARGET_ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
              "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def test_the_shipped_wheelhouse_closes_vllms_dependencies_over_the_image():
    """pip's recorded resolution for configs/ship.toml, replayed: CI downloads nothing.

    Every requirement of every shipped wheel (with the extras asked of it) is met by a shipped wheel or
    by the image list, at an accepted version; what the image has and is not replaced does not ship.
    """
    from packaging.requirements import Requirement

    from aimokit.kaggle.config import ShipConfig
    from aimokit.kaggle.wheelhouse import canonical
    from layout import ROOT

    wheels = ShipConfig.load(ROOT / "configs" / "ship.toml", {"user": "alice"}).wheels
    report = json.loads(RECORDED.read_text())
    rec = report["recorded_for"]
    assert (rec["requirements"], rec["python_version"], str(ROOT / rec["image"]), rec["replace"], rec["ignore_pins"]) == (
        wheels.requirements, wheels.python_version, wheels.image, wheels.replace, wheels.ignore_pins), \
        f"configs/ship.toml [wheels] changed since {RECORDED.name} was recorded: record it again (docs/shipping.md)"
    image = read_image_list(wheels.image)
    replaced = {canonical(n) for n in wheels.replace}
    stand_in = set(rec["stand_in"])
    pins = {p.name: p.version for p in pins_from_report(report)}
    assert pins["vllm"] == "0.26.0" and replaced <= set(pins)
    assert not (set(pins) & (set(image) - replaced)), "an image package ships though the image has it"
    requires = {canonical(i["metadata"]["name"]): i["metadata"].get("requires_dist") or [] for i in report["install"]}

    wanted, problems = set(), []
    todo = [(canonical(Requirement(r).name), "") for r in wheels.requirements]
    assert {"polars", "math-verify"} <= set(pins)  # the kit's own needs ship too: the image lacks them
    while todo:
        name, extra = todo.pop()
        if (name, extra) in wanted:
            continue
        wanted.add((name, extra))
        for spec in requires.get(name, []):
            req = Requirement(spec)
            if req.marker and not req.marker.evaluate({**TARGET_ENV, "extra": extra}):
                continue
            dep = canonical(req.name)
            if dep in pins:
                have = pins[dep]
            elif dep in image and dep not in replaced:
                have = image[dep]
                if dep in stand_in:
                    continue  # the image's version stands in for an exact pin, by the config's choice
            else:
                problems.append(f"{name} needs {spec}: neither shipped nor in the image")
                continue
            if not req.specifier.contains(have.split("+")[0], prereleases=True):
                problems.append(f"{name} needs {spec}, gets {have}")
            todo += [(dep, "")] + [(dep, e) for e in req.extras]
    assert not problems, problems
    shipped_needed = {n for n, _ in wanted} & set(pins)
    assert shipped_needed == set(pins), f"shipped but needed by nothing: {set(pins) - shipped_needed}"


def test_markers_are_evaluated_for_the_target_python_not_this_one(tmp_path):
    """pip's --python-version alone evaluates markers for the host; a dependency the target needs was lost."""
    target = "3.12" if HOST != "3.12" else "3.13"
    idx = tmp_path / "idx"
    tiny_wheel(idx, "app", "1.0", (f'onlytarget>=1; python_version == "{target}"',
                                   f'onlyhost>=1; python_version == "{HOST}"'))
    tiny_wheel(idx, "onlytarget", "1.0")
    tiny_wheel(idx, "onlyhost", "1.0")
    cfg = WheelsConfig(requirements=["app==1.0"], python_version=target, find_links=[str(idx)], no_index=True)
    m = build_wheelhouse(cfg, {}, tmp_path / "wh")
    assert m["shipped"] == ["app==1.0", "onlytarget==1.0"]


def test_the_resolve_report_is_the_same_byte_for_byte_whatever_temporary_folder_built_it(tmp_path):
    """Two builds of the same inputs used two temporary folders: the shipped report must not differ, or every
    push re-uploads the wheelhouse and starts a GPU run."""
    import json

    from aimokit.kaggle.wheelhouse import trim_report

    def report(work):
        return {"pip_version": "25.0", "install": [
            {"metadata": {"name": "vllm", "version": "0.26.0"}, "requested": True,
             "download_info": {"url": "https://files.example/vllm-0.26.0.whl"}},
            {"metadata": {"name": "Torch", "version": "2.11.0+image"},
             "download_info": {"url": (work / "image-stubs" / "torch-2.11.0+image-py3-none-any.whl").as_uri()}}]}

    a, b = tmp_path / "aimokit-wheelhouse-x1", tmp_path / "aimokit-wheelhouse-y2"
    ra, rb = trim_report(report(a), a), trim_report(report(b), b)
    assert json.dumps(ra) == json.dumps(rb) and str(tmp_path) not in json.dumps(ra)
    assert ra["install"][0]["download_info"]["url"] == "image-stub:torch-2.11.0+image-py3-none-any.whl"
