"""The sandbox's kernel-enforced layers: seccomp and Landlock, applied in the child before any model code.

Why: the Python audit hook (`sandbox.py`) sees only what goes through Python's own functions. Native code
makes its own system calls: a C module's process-creation entry point started a shell, and pyarrow's
readers read a planted credential file, both without an audit event. These layers are enforced by the
kernel, whatever route the code takes:

- seccomp (a BPF filter, `no_new_privs` first): no process creation (execve, execveat, fork, vfork, clone
  without CLONE_THREAD; clone3 answers ENOSYS so threads fall back to clone), no sockets, no ptrace, mount,
  unshare, setns, keyctl, bpf, io_uring and the like. A refused call gets EPERM: Python raises
  PermissionError, which the model is shown.
- Landlock: reads only beneath the allow list (scratch, the interpreter and its libraries, the system's
  shared libraries, `sandbox.read_paths`), writes only beneath scratch, no TCP bind or connect (ABI 4) and
  no signals or abstract sockets out of the sandbox (ABI 6), at whatever ABI the kernel offers.

This file is plain standard-library Python with no aimokit import: `sandbox.spawn` embeds its source in the
child's bootstrap (`python -I`, possibly another interpreter), and the tests run it under native code.
`apply_layers` returns what holds: {"seccomp": "on" | reason, "landlock": "abi N" | reason}.
"""

import ctypes
import os
import platform
import struct

# -- seccomp --------------------------------------------------------------------------------------------
_ARCH = {  # AUDIT_ARCH_*, and the numbers of the calls refused (absent on an architecture: not there)
    "x86_64": (0xC000003E, {
        "execve": 59, "execveat": 322, "fork": 57, "vfork": 58, "clone": 56, "clone3": 435,
        "socket": 41, "socketpair": 53, "ptrace": 101, "mount": 165, "umount2": 166, "unshare": 272,
        "setns": 308, "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298,
        "process_vm_readv": 310, "process_vm_writev": 311, "userfaultfd": 323, "io_uring_setup": 425,
        "io_uring_enter": 426, "io_uring_register": 427, "pivot_root": 155, "chroot": 161, "kexec_load": 246,
        "init_module": 175, "finit_module": 313, "delete_module": 176, "open_by_handle_at": 304,
        "name_to_handle_at": 303, "fsopen": 430, "fsmount": 432, "move_mount": 429, "open_tree": 428,
        "mount_setattr": 442, "personality": 135}),
    "aarch64": (0xC00000B7, {
        "execve": 221, "execveat": 281, "clone": 220, "clone3": 435, "socket": 198, "socketpair": 199,
        "ptrace": 117, "mount": 40, "umount2": 39, "unshare": 97, "setns": 268, "keyctl": 219, "add_key": 217,
        "request_key": 218, "bpf": 280, "perf_event_open": 241, "process_vm_readv": 270,
        "process_vm_writev": 271, "userfaultfd": 282, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "pivot_root": 41, "chroot": 51, "kexec_load": 104, "init_module": 105,
        "finit_module": 273, "delete_module": 106, "open_by_handle_at": 265, "name_to_handle_at": 264,
        "fsopen": 430, "fsmount": 432, "move_mount": 429, "open_tree": 428, "mount_setattr": 442,
        "personality": 92}),
}
_CLONE_THREAD = 0x00010000
_EPERM, _ENOSYS = 1, 38
_RET_ALLOW, _RET_ERRNO, _RET_KILL = 0x7FFF0000, 0x00050000, 0x80000000
_LD_W_ABS, _JEQ_K, _JSET_K, _RET_K = 0x20, 0x15, 0x45, 0x06
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2


def _insn(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF)


def seccomp_program(machine):
    """The filter as BPF bytes: the architecture checked, each refused call answered, the rest allowed."""
    arch, nr = _ARCH[machine]
    prog = [_insn(_LD_W_ABS, 0, 0, 4), _insn(_JEQ_K, 1, 0, arch), _insn(_RET_K, 0, 0, _RET_KILL),
            _insn(_LD_W_ABS, 0, 0, 0)]
    if machine == "x86_64":  # the x32 ABI's numbers (bit 30) would step around the table below
        prog += [_insn(_JSET_K, 0, 1, 0x40000000), _insn(_RET_K, 0, 0, _RET_ERRNO | _EPERM)]
    # clone: a thread (CLONE_THREAD in the flags, argument 0's low word at offset 16) may be made
    prog += [_insn(_JEQ_K, 0, 4, nr["clone"]), _insn(_LD_W_ABS, 0, 0, 16), _insn(_JSET_K, 1, 0, _CLONE_THREAD),
             _insn(_RET_K, 0, 0, _RET_ERRNO | _EPERM), _insn(_RET_K, 0, 0, _RET_ALLOW)]
    for name, number in sorted(nr.items()):
        if name == "clone":
            continue
        err = _ENOSYS if name == "clone3" else _EPERM  # glibc then makes its threads with clone
        prog += [_insn(_JEQ_K, 0, 1, number), _insn(_RET_K, 0, 0, _RET_ERRNO | err)]
    prog.append(_insn(_RET_K, 0, 0, _RET_ALLOW))
    return b"".join(prog)


def _apply_seccomp(libc, machine):
    if machine not in _ARCH:
        return f"off: no filter for {machine}"
    prog = seccomp_program(machine)
    buf = ctypes.create_string_buffer(prog, len(prog))

    class _Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = _Fprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return f"off: no_new_privs refused (errno {ctypes.get_errno()})"
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        return f"off: seccomp refused (errno {ctypes.get_errno()})"
    return "on"


# -- Landlock -------------------------------------------------------------------------------------------
_LL_CREATE, _LL_ADD, _LL_RESTRICT = 444, 445, 446  # the same numbers on x86_64 and aarch64
_FS_EXECUTE, _FS_WRITE, _FS_READ, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE | _FS_READ | (1 << 14) | (1 << 15)  # + TRUNCATE, IOCTL_DEV


def _fs_rights(abi):
    rights = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
    if abi >= 2:
        rights |= 1 << 13  # REFER
    if abi >= 3:
        rights |= 1 << 14  # TRUNCATE
    if abi >= 5:
        rights |= 1 << 15  # IOCTL_DEV
    return rights


def _apply_landlock(libc, read_roots, write_roots, unavailable):
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    abi = -1 if "landlock" in unavailable else syscall(_LL_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return "off: the kernel offers no Landlock" + (" (simulated)" if "landlock" in unavailable else "")
    fs = _fs_rights(abi)
    attr = struct.pack("QQQ", fs, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)  # TCP bind+connect; scopes
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    buf = ctypes.create_string_buffer(attr[:size], size)
    fd = syscall(_LL_CREATE, buf, ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        return f"off: landlock_create_ruleset failed (errno {ctypes.get_errno()})"
    read = _FS_READ | _FS_READ_DIR
    try:
        for paths, rights in ((read_roots, read), (write_roots, fs & ~_FS_EXECUTE)):
            for path in paths:
                try:
                    pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue  # a root that is not there: nothing to allow
                try:
                    allowed = rights if os.path.isdir(path) else rights & _FS_FILE_RIGHTS
                    rule = ctypes.create_string_buffer(struct.pack("=Qi", allowed & fs, pfd), 12)
                    if syscall(_LL_ADD, ctypes.c_int(fd), ctypes.c_int(1), rule, ctypes.c_uint32(0)) != 0:
                        return f"off: landlock_add_rule {path} failed (errno {ctypes.get_errno()})"
                finally:
                    os.close(pfd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return f"off: no_new_privs refused (errno {ctypes.get_errno()})"
        if syscall(_LL_RESTRICT, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            return f"off: landlock_restrict_self failed (errno {ctypes.get_errno()})"
    finally:
        os.close(fd)
    return f"abi {abi}"


SYSTEM_LIBS = ("/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/lib", "/etc/ld.so.cache",
               "/usr/share/zoneinfo", "/sys/devices/system/cpu", "/proc/cpuinfo", "/proc/meminfo")
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")


def apply_layers(read_roots, scratch, unavailable=()):
    """Landlock, then seccomp (seccomp would refuse nothing Landlock needs, but the order keeps the errors
    apart); returns which layers hold. `unavailable` names layers to treat as missing (tests simulate a
    kernel without them)."""
    libc = ctypes.CDLL(None, use_errno=True)
    machine = platform.machine()
    layers = {}
    reads = [r for r in list(read_roots) + list(SYSTEM_LIBS) + list(DEVICES) if r and r != os.sep]
    layers["landlock"] = _apply_landlock(libc, reads, [scratch, "/dev/null"], unavailable)
    layers["seccomp"] = ("off: the kernel offers no seccomp (simulated)" if "seccomp" in unavailable
                         else _apply_seccomp(libc, machine))
    return layers
