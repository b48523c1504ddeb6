"""test_main.py -- the `sockit` dispatcher: version, help, unknown commands."""
import os
import re

from conftest import ROOT, SOCKIT


def test_version_matches_pc_and_header(run_sockit):
    r = run_sockit(["--version"])
    assert r.returncode == 0, r.stderr
    m = re.fullmatch(rb"sockit (\d+\.\d+\.\d+)\n", r.stdout)
    assert m, r.stdout
    version = m.group(1).decode()
    with open(os.path.join(ROOT, "include", "sockit.h")) as f:
        assert f'#define SOCKIT_VERSION "{version}"' in f.read()
    pc = os.path.join(os.path.dirname(SOCKIT), "sockit.pc")
    with open(pc) as f:
        assert f"Version: {version}\n" in f.read()


def test_help_lists_every_command(run_sockit):
    r = run_sockit(["--help"])
    assert r.returncode == 0
    for cmd in (b"serve", b"connect", b"bench"):
        assert cmd in r.stdout, r.stdout


def test_no_command_is_usage_error(run_sockit):
    r = run_sockit([])
    assert r.returncode == 2
    assert b"usage: sockit" in r.stderr


def test_unknown_command_is_named(run_sockit):
    r = run_sockit(["frobnicate"])
    assert r.returncode == 2
    assert b"unknown command 'frobnicate'" in r.stderr


def test_help_and_version_lost_output_exit_1():
    """issue 19, item 9: lost output is a failure, also at the top level."""
    import subprocess
    for args in (["--help"], ["--version"]):
        with open("/dev/full", "wb") as full:
            r = subprocess.run([SOCKIT] + args, stdout=full, stderr=subprocess.PIPE, timeout=30)
        assert r.returncode == 1, (args, r.stderr)
        assert b"sockit: cannot write to standard output: no space left on device" in r.stderr
        r = subprocess.run([SOCKIT] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=30, preexec_fn=lambda: os.close(1))
        assert r.returncode == 1, (args, r.stderr)
