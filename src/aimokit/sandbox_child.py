"""The sandbox child's own code: the bootstrap that sets limits, installs the read/write guard and runs a cell.

Why a module of its own: it is not the kit's code but the child's, shipped to it as text (`GUARD.format(...)`
plus `ONE_SHOT` or the session loop) and run under `python -I`, so it must stay free of aimokit imports; kept
apart, the parent's side (sandbox.py: spawn, collect, kill) reads as what it is.
"""

# Runs inside the child. Kept free of aimokit imports: `-I` isolates the child
# from the kit's environment variables and user site.
GUARD = r'''
import sys, os, resource, ast, io, contextlib, traceback
_cfg = {cfg!r}
def _lim(kind, value):
    try:
        resource.setrlimit(kind, (value, value))
    except (ValueError, OSError):
        pass
_lim(resource.RLIMIT_AS, _cfg["memory"])
_lim(resource.RLIMIT_CPU, _cfg["cpu"])
_lim(resource.RLIMIT_FSIZE, _cfg["fsize"])
_lim(resource.RLIMIT_CORE, 0)
# A private network namespace: no route anywhere. Needs privileges or user
# namespaces; when refused, the audit hook below still blocks sockets.
_netns = "off: unshare refused"
try:
    import ctypes
    _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.unshare(0x40000000) == 0 or _libc.unshare(0x10000000 | 0x40000000) == 0:  # NEWNET, NEWUSER|NEWNET
        _netns = "on"
    del _libc
except Exception:
    pass
def _roots():
    import sysconfig
    cands = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path, *_cfg["read_paths"]]
    cands += [p for k, p in sysconfig.get_paths().items()]
    out = set()
    for c in cands:
        if c and os.path.exists(c):
            r = os.path.realpath(c)
            if r != os.sep:  # never the whole file system
                out.add(r)
    return tuple(sorted(out))
_cfg["roots"] = _roots()
# The kernel-enforced layers (aimokit/kernel_layers.py, embedded here): seccomp and Landlock, before any model code.
#@LAYERS@
_layers = {{"seccomp": "off: sandbox.kernel_layers = false", "landlock": "off: sandbox.kernel_layers = false"}}
if _cfg["kernel_layers"]:
    try:
        _layers = apply_layers(_cfg["roots"], os.path.realpath(os.getcwd()), _cfg["unavailable"])
    except Exception as e:  # a layer that cannot be applied is reported, never a crash before the code runs
        _layers = {{"seccomp": f"off: {{e!r}}", "landlock": f"off: {{e!r}}"}}
_layers["netns"] = _netns
_missing = [k for k in ("seccomp", "landlock") if not (_layers[k] == "on" or _layers[k].startswith("abi"))]
_REFUSED = None
if _missing and _cfg["missing_layer"] == "refuse":
    _REFUSED = ("sandbox: code is not run here: the kernel's " + " and ".join(_missing) + " layer(s) are unavailable "
                "(" + "; ".join(_layers[k] for k in _missing) + ") and sandbox.missing_layer = 'refuse'")
# Everything the hook reads lives in this function's closure, and every builtin or library function it calls
# is captured here: model code can rebind __main__'s globals, builtins or os.path, and the hook never sees it.
def _install(_cfg, any=any, all=all, isinstance=isinstance, int=int, str=str, bytes=bytes, set=set, tuple=tuple,
             sorted=sorted, Exception=Exception, PermissionError=PermissionError):
    _scratch = os.path.realpath(os.getcwd())
    _sep = os.sep
    _READ_ROOTS = _cfg["roots"]
    _READ_FILES = {{"/dev/null", "/dev/urandom", "/dev/random", "/dev/zero"}}
    _SECRET_NAMES = {{"kaggle.json", ".env", ".netrc", ".git-credentials", ".pypirc", "credentials", "token",
                     "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", ".bash_history", ".python_history",
                     "application_default_credentials.json"}}
    _SECRET_DIRS = {{".ssh", ".kaggle", ".aws", ".gnupg", ".docker", ".huggingface", "gcloud", ".azure"}}
    def _secret(r):
        parts = r.split(_sep)
        name = parts[-1]
        return (name in _SECRET_NAMES or name.startswith(".env.") or name.endswith((".pem", ".key", ".p12"))
                or any(d in _SECRET_DIRS for d in parts[:-1]))
    _W = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    _realpath = os.path.realpath
    _fspath = os.fspath
    def _inside(p):
        if isinstance(p, int):
            return True
        try:
            p = _fspath(p)
            if isinstance(p, bytes):
                p = p.decode(errors="replace")
            if p in ("/dev/null",):
                return True
            r = _realpath(p)
        except Exception:
            return False
        return r == _scratch or r.startswith(_scratch + _sep)
    def _readable(p):
        if isinstance(p, int) or _inside(p):
            return True
        try:
            p = _fspath(p)
            if isinstance(p, bytes):
                p = p.decode(errors="replace")
            r = _realpath(p)
        except Exception:
            return False
        if r in _READ_FILES:
            return True
        if _secret(r):
            return False
        return any(r == root or r.startswith(root + _sep) for root in _READ_ROOTS)
    def _refuse_read(p):
        raise PermissionError(f"sandbox: reading {{p!r}} is not allowed; only the current directory, Python's "
                              "libraries and sandbox.read_paths can be read")
    _LIST_EVENTS = {{"os.listdir", "os.scandir"}}
    _PATH_EVENTS = {{"os.remove", "os.rmdir", "os.mkdir", "os.truncate", "os.chmod", "os.chown",
                    "os.utime", "os.chflags", "os.lchflags", "os.setxattr", "os.removexattr",
                    "shutil.rmtree", "shutil.chown"}}
    _TWO_PATH_EVENTS = {{"os.rename", "os.link", "os.symlink", "shutil.move", "shutil.copyfile",
                        "shutil.copytree"}}
    _BLOCKED = {{"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
                "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
                "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                "os.fork", "os.forkpty", "os.kill", "os.killpg", "pty.spawn", "ctypes.dlopen",
                "ctypes.dlsym", "ctypes.addressof", "ctypes.cdata", "sys.remote_exec", "os.startfile",
                "gc.get_objects", "gc.get_referrers", "gc.get_referents",  # would reach the hook's closure
                "webbrowser.open", "urllib.Request"}}
    def _hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _W)
            if writing and not _inside(path):
                raise PermissionError(f"sandbox: writing {{path!r}} is not allowed; "
                                      "write inside the current directory")
            if not writing and not _readable(path):
                _refuse_read(path)
        elif event in _LIST_EVENTS:
            if args and args[0] is not None and not _readable(args[0]):
                _refuse_read(args[0])
        elif event == "sqlite3.connect":
            if args and args[0] != ":memory:" and not _inside(args[0]):
                raise PermissionError("sandbox: databases outside the current directory are not allowed")
        elif event in _PATH_EVENTS:
            if args and not _inside(args[0]):
                raise PermissionError(f"sandbox: {{event}} on {{args[0]!r}} is not allowed outside the scratch directory")
        elif event in _TWO_PATH_EVENTS:
            if not all(_inside(a) for a in args[:2]):
                raise PermissionError(f"sandbox: {{event}} outside the scratch directory is not allowed")
        elif event in _BLOCKED:
            kind = "network access" if event.startswith(("socket", "urllib")) else event
            raise PermissionError(f"sandbox: {{kind}} is disabled")
    sys.addaudithook(_hook)
_install(_cfg)
del _install, _cfg, _roots
del resource
def _cell(_code, _g):
    """Run one cell in `_g`, showing its last expression's value; False if it raised (SystemExit passes)."""
    if _REFUSED:
        sys.stderr.write(_REFUSED + "\n")
        sys.stderr.flush()
        return False
    try:
        _tree = ast.parse(_code, "<cell>")
        _last = _tree.body.pop() if _tree.body and isinstance(_tree.body[-1], ast.Expr) else None
        exec(compile(_tree, "<cell>", "exec"), _g)
        if _last is not None:
            _v = eval(compile(ast.Expression(_last.value), "<cell>", "eval"), _g)
            if _v is not None:
                print(repr(_v))
    except SystemExit:
        raise
    except BaseException as e:
        sys.stdout.flush()
        tb = traceback.format_exception(type(e), e, e.__traceback__)
        # Keep the cell's own frames: the model cannot act on bootstrap frames.
        keep = [tb[0]] + [t for t in tb[1:-1] if '"<cell>"' in t] + [tb[-1]]
        sys.stderr.write("".join(keep))
        sys.stderr.flush()
        return False
    return True
'''

# One block, then exit: the fresh-process sandbox. main.py / prelude.py are read before the hook
# is installed (they sit in the scratch directory, which is readable anyway).
ONE_SHOT = r'''
_code = open("main.py", encoding="utf-8").read()
_prelude = open("prelude.py", encoding="utf-8").read() if os.path.exists("prelude.py") else ""
_g = {"__name__": "__main__", "__builtins__": __builtins__}
if _prelude:
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(compile(_prelude, "<previous cells>", "exec"), _g)
    except BaseException:
        pass
try:
    _ok = _cell(_code, _g)
except SystemExit as e:
    sys.stdout.flush()
    os._exit(e.code if isinstance(e.code, int) else 0)
sys.stdout.flush()
if not _ok:
    os._exit(1)
'''
