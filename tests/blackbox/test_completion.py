"""test_completion.py -- contrib/bash-completion/sockit, run for real in bash.

The completion function is called as readline would call it (COMP_WORDS,
COMP_CWORD, then _sockit) with the binary under test first in PATH as
`sockit`, and its COMPREPLY compared with what the binary says: the commands
of `sockit --help`, the options of `sockit CMD --help`, and for each option
that takes a word from a list, the words the binary's own usage error
expects.
"""
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, SOCKIT
from test_man import help_commands, help_options

SCRIPT = os.path.join(ROOT, "contrib", "bash-completion", "sockit")
BASH = shutil.which("bash") or "/bin/bash"
COMMANDS = ("serve", "connect", "bench")

# (command, option) -> a value the option refuses, for its usage error.
CHOICES = [(cmd, opt) for cmd in ("serve", "bench") for opt in ("-m", "--mode")]
CHOICES += [("serve", o) for o in ("--backend", "--log-level", "--log-format")]
CHOICES += [(c, "--proxy-header") for c in ("connect", "bench")]


@pytest.fixture(scope="module")
def bindir(tmp_path_factory):
    """A directory holding the binary under test as `sockit`, for PATH."""
    d = tmp_path_factory.mktemp("bin")
    os.symlink(os.path.abspath(SOCKIT), d / "sockit")
    return str(d)


def complete(bindir, *words, path=None):
    """COMPREPLY for the command line words (the last one is being completed)."""
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _sockit; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    env = dict(os.environ, PATH=path if path is not None else bindir + os.pathsep +
               os.environ.get("PATH", ""))
    r = subprocess.run([BASH, "--norc", "--noprofile", "-c", script, "bash", SCRIPT, *words],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0 and r.stderr == "", f"_sockit {words}: {r.returncode} {r.stderr}"
    return [w for w in r.stdout.split("\n") if w]


def test_script_parses_and_registers():
    r = subprocess.run([BASH, "--norc", "--noprofile", "-c",
                        'source "$1" && complete -p sockit', "bash", SCRIPT],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "complete -F _sockit sockit"


def test_commands(bindir):
    got = complete(bindir, "sockit", "")
    assert set(help_commands()) <= set(got), f"{got} lacks a command of sockit --help"
    assert complete(bindir, "sockit", "se") == ["serve"]
    assert complete(bindir, "sockit", "co") == ["connect"]
    assert set(complete(bindir, "sockit", "-")) == {"-h", "--help", "-V", "--version"}


def test_commands_without_the_binary(bindir):
    """The commands are known even when no sockit is in PATH."""
    assert complete(bindir, "sockit", "b", path="/nonexistent") == ["bench"]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_options_are_the_help_options(bindir, cmd):
    want = help_options(cmd)
    got = set(complete(bindir, "sockit", cmd, "-"))
    assert got == want, (f"sockit {cmd} -<TAB>: missing {sorted(want - got)}, "
                         f"extra {sorted(got - want)}")
    longs = set(complete(bindir, "sockit", cmd, "--"))
    assert longs == {o for o in want if o.startswith("--")}


def test_options_after_other_arguments(bindir):
    got = complete(bindir, "sockit", "serve", "-p", "0", "--mo")
    assert got == ["--mode"]
    got = complete(bindir, "sockit", "bench", "-c", "4", "127.0.0.1", "1234", "--thr")
    assert got == ["--threads"]


def expected_words(cmd, opt):
    """The words the usage error for a bad value of opt lists as expected."""
    r = subprocess.run([SOCKIT, cmd, opt, "no-such-value", "127.0.0.1", "1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, f"sockit {cmd} {opt} no-such-value: exit {r.returncode}"
    m = re.search(r"expected (.*)$", r.stderr, re.M)
    assert m, f"sockit {cmd} {opt} no-such-value says {r.stderr!r}, with no 'expected'"
    return set(re.split(r",\s*|\s+or\s+", m.group(1).strip()))


@pytest.mark.parametrize("cmd,opt", CHOICES, ids=[f"{c}{o}" for c, o in CHOICES])
def test_values_are_what_the_binary_accepts(bindir, cmd, opt):
    if opt not in help_options(cmd):
        pytest.skip(f"sockit {cmd} has no {opt} in this build")
    want = expected_words(cmd, opt)
    got = complete(bindir, "sockit", cmd, opt, "")
    assert set(got) == want, f"sockit {cmd} {opt} <TAB>: {got}, the binary expects {want}"


def test_modes_and_backends(bindir):
    assert complete(bindir, "sockit", "serve", "-m", "") == ["once", "line", "echo"]
    assert complete(bindir, "sockit", "bench", "--mode", "u") == ["udp"]
    assert complete(bindir, "sockit", "serve", "--backend", "") == ["auto", "io_uring", "epoll"]
    assert complete(bindir, "sockit", "serve", "--backend", "e") == ["epoll"]
    assert complete(bindir, "sockit", "connect", "--proxy-header", "") == ["v1", "v2"]


def test_value_after_equals_sign(bindir):
    """readline splits --mode=li into "--mode" "=" "li"."""
    assert complete(bindir, "sockit", "serve", "--mode", "=", "li") == ["line"]
    assert complete(bindir, "sockit", "serve", "--log-level", "=", "") == \
        ["error", "warn", "info", "debug"]


@pytest.mark.parametrize("opt", ["--tls-cert", "--tls-key", "--tls-ca", "--tls-client-ca",
                                 "-U", "--unix"])
def test_files(bindir, tmp_path, opt):
    (tmp_path / "cert.pem").write_text("x")
    (tmp_path / "key.pem").write_text("x")
    got = complete(bindir, "sockit", "serve", opt, str(tmp_path / "c"))
    assert got == [str(tmp_path / "cert.pem")]


def test_free_values_get_nothing(bindir):
    """After an option that takes a number, a duration or an address, no options."""
    assert complete(bindir, "sockit", "serve", "-p", "") == []
    assert complete(bindir, "sockit", "serve", "--workers", "") == []
    assert complete(bindir, "sockit", "connect", "-w", "") == []
    assert complete(bindir, "sockit", "bench", "-c", "") == []


def test_hosts_for_connect(bindir):
    got = complete(bindir, "sockit", "connect", "localh")
    if not got:
        pytest.skip("bash knows no host name starting with 'localh' here (/etc/hosts)")
    assert all(h.startswith("localh") for h in got)
    assert complete(bindir, "sockit", "serve", "localh") == []
