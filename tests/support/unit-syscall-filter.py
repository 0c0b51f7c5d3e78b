#!/usr/bin/python3
"""Runs a command under the seccomp restrictions a systemd unit file declares.

Usage: unit-syscall-filter.py UNIT_FILE COMMAND [ARGS...]

Reads SystemCallFilter=, SystemCallErrorNumber= and MemoryDenyWriteExecute= from the unit,
expands syscall groups with `systemd-analyze syscall-filter` (the same tables systemd uses),
installs the filter and execs the command. The tests use it to prove the binary works under
the unit's restrictions on a machine where systemd is not running as PID 1.
"""

import errno
import os
import subprocess
import sys

import seccomp

PROT_WRITE, PROT_EXEC = 0x2, 0x4


def group_table():
    """Every @group of systemd-analyze with its direct members."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], check=True, capture_output=True, text=True).stdout
    table, current = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            current = line.strip()
            table[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            table[current].append(line.strip())
    return table


def expand(names, table, seen=None):
    seen = set() if seen is None else seen
    calls = set()
    for name in names:
        if name.startswith("@"):
            if name in seen:
                continue
            seen.add(name)
            calls |= expand(table.get(name, []), table, seen)
        else:
            calls.add(name)
    return calls


def unit_settings(path):
    filters, errno_name, mdwe = [], "EPERM", False
    for raw in open(path, encoding="utf-8"):
        line = raw.strip()
        if line.startswith("SystemCallFilter="):
            filters.append(line.split("=", 1)[1].split())
        elif line.startswith("SystemCallErrorNumber="):
            errno_name = line.split("=", 1)[1].strip()
        elif line.startswith("MemoryDenyWriteExecute="):
            mdwe = line.split("=", 1)[1].strip() in ("yes", "true", "1")
    return filters, getattr(errno, errno_name), mdwe


def main():
    unit, command = sys.argv[1], sys.argv[2:]
    filters, error, mdwe = unit_settings(unit)
    table = group_table()
    allowed = set()
    for words in filters:
        if words and words[0].startswith("~"):
            allowed -= expand([words[0][1:]] + words[1:], table)
        else:
            allowed |= expand(words, table)
    # execve of the command itself happens after the filter is in place.
    allowed.add("execve")
    # The kernel's arch check: SystemCallArchitectures=native.
    rules = seccomp.SyscallFilter(defaction=seccomp.ERRNO(error))
    guarded = {"mmap", "mprotect", "pkey_mprotect", "shmat"} if mdwe else set()
    for name in sorted(allowed - guarded):
        try:
            rules.add_rule(seccomp.ALLOW, name)
        except (RuntimeError, ValueError):
            pass  # not a syscall on this architecture
    if mdwe:
        # systemd's MemoryDenyWriteExecute=: no mapping both writable and executable, no
        # making memory executable afterwards, no executable shared memory.
        rules.add_rule(seccomp.ALLOW, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, 0))
        rules.add_rule(seccomp.ALLOW, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_WRITE, 0))
        for name in ("mprotect", "pkey_mprotect"):
            if name in allowed:
                rules.add_rule(seccomp.ALLOW, name, seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, 0))
        if "shmat" in allowed:
            rules.add_rule(seccomp.ALLOW, "shmat", seccomp.Arg(2, seccomp.MASKED_EQ, 0o100000, 0))
    rules.load()
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
