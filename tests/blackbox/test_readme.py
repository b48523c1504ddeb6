"""test_readme.py -- the documentation cannot drift from the code.

Issue 19, item 6: the README's library example did not compile as printed
(statements at file scope), and once wrapped in main() it never checked the
server socket, so with port 1234 busy it spun at 100% CPU.  Now:

- every ```c block of README.md is a complete program: it is compiled
  against the in-tree library (warnings as errors) and run unattended: a
  server on port 0 (its port read from its "port N" line) answered the
  tutorial's way, and the same server on a busy port, which must exit 1
  with the reason instead of spinning; a client against `sockit serve`;
- every `sockit CMD ...` line in a ```sh/```console block of README.md,
  docs/DESIGN.md and bench/README.md uses only options that CMD's --help
  lists, and every `make TARGET` is a Makefile target;
- the options in README's synopses and option tables exist too;
- every ```json block parses.
"""
import errno
import json
import os
import re
import selectors
import shlex
import signal
import socket
import subprocess

import pytest

from conftest import ROOT, SOCKIT, exchange

README = os.path.join(ROOT, "README.md")
DOCS = [README, os.path.join(ROOT, "docs", "DESIGN.md"), os.path.join(ROOT, "bench", "README.md")]
COMMANDS = ("serve", "connect", "bench")



def blocks(path, langs):
    """[(line number, language, text)] of the fenced blocks in path whose
    language is in langs ("" for a block without one)."""
    out, lang, start, body = [], None, 0, []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = re.match(r"^```(\w*)\s*$", line)
            if m and lang is None:
                lang, start, body = m.group(1), n, []
            elif line.rstrip() == "```" and lang is not None:
                if lang in langs:
                    out.append((start, lang, "".join(body)))
                lang = None
            elif lang is not None:
                body.append(line)
    assert lang is None, f"{path}: unterminated block from line {start}"
    return out


def c_name(line, text):
    m = re.match(r"/\* (\w+)\.c -- ", text)
    assert m, f"README.md:{line}: a C example starts with /* NAME.c -- what it is */"
    return m.group(1)


def c_params():
    params = []
    for line, _, text in blocks(README, {"c"}):
        params.append(pytest.param(line, text, id=c_name(line, text)))
    assert params, "README.md has no ```c block"
    return params


def sanitizer_flags(lib):
    """A sanitizer build's library needs the sanitizer runtimes linked."""
    out = subprocess.run(["nm", "-u", lib], capture_output=True, text=True, timeout=60).stdout
    if "__asan_" in out or "__ubsan_" in out:
        return ["-fsanitize=address,undefined"]
    return []


def build(tmp_path, name, text):
    lib = os.path.join(os.path.dirname(SOCKIT), "libsockit.a")
    assert os.path.exists(lib), f"{lib} missing: run make first"
    src = tmp_path / f"{name}.c"
    src.write_text(text)
    exe = tmp_path / name
    cmd = (["cc", "-std=gnu11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
            "-I" + os.path.join(ROOT, "include")] + sanitizer_flags(lib) +
           ["-o", str(exe), str(src), lib, "-pthread", "-lm"])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"README's {name}.c does not compile:\n{r.stderr}"
    return str(exe)


def kind(text):
    if "sockit_create_server" in text:
        return "server"
    if "sockit_create_connection" in text:
        return "client"
    raise AssertionError("a README C example this test cannot run: teach test_readme.py "
                         "how (a server prints 'port N'; a client takes HOST PORT DATA)")


def read_port(p, timeout=20.0):
    """The "port N" line a server example prints first."""
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise AssertionError(f"no 'port N' line within {timeout}s")
        line = p.stdout.readline().decode()
    finally:
        sel.close()
    m = re.fullmatch(r"port (\d+)\n", line)
    assert m, f"the server example's first line was {line!r}, not 'port N'"
    return int(m.group(1))


SANITIZER_MARKERS = (b"AddressSanitizer", b"LeakSanitizer", b"runtime error:")


def no_sanitizer_report(stderr):
    for marker in SANITIZER_MARKERS:
        assert marker not in stderr, stderr.decode("utf-8", "replace")


def stop(p):
    """Kills p if still running; returns what it wrote on stderr."""
    if p.poll() is None:
        p.kill()
    p.wait(timeout=10)
    err = p.stderr.read()
    p.stdout.close()
    p.stderr.close()
    return err


def run_server(exe, text):
    p = subprocess.Popen([exe, "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = read_port(p)
        # The tutorial's client, as Python's socket module has it.
        with socket.create_connection(("localhost", port), timeout=10) as s:
            s.sendall(b"hello")
            data = b""
            while True:
                b = s.recv(2048)
                if not b:
                    break
                data += b
        assert data == b"Received: hello"
        host = "127.0.0.1" if "127.0.0.1" in text else "localhost"
        family = socket.AF_INET
        if host == "localhost":
            family = socket.getaddrinfo("localhost", port, 0, socket.SOCK_STREAM)[0][0]
            host = "127.0.0.1" if family == socket.AF_INET else "::1"
        assert exchange((host, port), b"x" * 1024, family=family) == b"Received: " + b"x" * 1024
        # A client that half-closes without sending gets the bare prefix.
        assert exchange((host, port), b"", family=family, shut_wr=True) == b"Received: "
        if "sockit_loop_signal" in text:
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=20) == 0
        else:
            assert p.poll() is None, "the server example exited after three clients"
    finally:
        err = stop(p)
    no_sanitizer_report(err)


def hold_port():
    """Listening sockets on 127.0.0.1:P and, if the host has IPv6, [::1]:P,
    so that "localhost" cannot bind P in either family."""
    for _ in range(20):
        v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        v4.bind(("127.0.0.1", 0))
        v4.listen(1)
        port = v4.getsockname()[1]
        try:
            v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        except OSError:
            return port, [v4]
        try:
            v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            v6.bind(("::1", port))
            v6.listen(1)
            return port, [v4, v6]
        except OSError as e:
            v6.close()
            if e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                return port, [v4]  # no ::1 here
            v4.close()
    raise AssertionError("no port free on both 127.0.0.1 and ::1")


@pytest.mark.parametrize("line,text", c_params())
def test_c_example_compiles_and_runs(tmp_path, serve, line, text):
    exe = build(tmp_path, c_name(line, text), text)
    if kind(text) == "server":
        run_server(exe, text)
    else:
        srv = serve()
        r = subprocess.run([exe, "127.0.0.1", str(srv.port), "hello"], capture_output=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(b"Received: hello")
        no_sanitizer_report(r.stderr)


@pytest.mark.parametrize("line,text", c_params())
def test_c_example_fails_cleanly(tmp_path, line, text):
    """A busy port (server) or a refused one (client) is reported, exit 1,
    at once: no retry loop, no spin (the defect of issue 19, item 6)."""
    exe = build(tmp_path, c_name(line, text), text)
    if kind(text) == "client":
        with socket.socket() as s:  # bound, not listening: a dead port we own
            s.bind(("127.0.0.1", 0))
            r = subprocess.run([exe, "127.0.0.1", str(s.getsockname()[1]), "hello"],
                               capture_output=True, timeout=30)
        assert r.returncode == 1 and b"connection refused" in r.stderr, r
        return
    port, held = hold_port()
    try:
        # a server that spins instead of exiting trips the deadline
        r = subprocess.run([exe, str(port)], capture_output=True, timeout=30)
    finally:
        for s in held:
            s.close()
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert b"address already in use" in r.stderr, r.stderr
    no_sanitizer_report(r.stderr)


# ---- options and targets named in the docs -------------------------------

_help = {}


def help_text(cmd):
    if cmd not in _help:
        r = subprocess.run([SOCKIT, cmd, "--help"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        _help[cmd] = r.stdout
    return _help[cmd]


def in_help(cmd, opt):
    return re.search(r"(?<![\w-])" + re.escape(opt) + r"(?![\w-])", help_text(cmd)) is not None


def options(tokens):
    """The options among a sockit command's arguments (up to a lone --)."""
    out = []
    for t in tokens:
        if t == "--":
            break
        if re.fullmatch(r"--[a-z][a-z0-9-]*(=.*)?", t):
            out.append(t.split("=", 1)[0])
        elif re.fullmatch(r"-[A-Za-z0-9]", t):
            out.append(t)
    return out


def command_lines(path):
    """(line, argv) of each shell command in path's sh/console blocks, split
    at pipes and lists."""
    for start, lang, text in blocks(path, {"sh", "console"}):
        text = re.sub(r"\\\n[ \t]*", " ", text)  # a backslash-newline continues the line
        for i, line in enumerate(text.splitlines(), start + 1):
            if lang == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            words = shlex.split(line, comments=True)
            cur = []
            for w in words + ["|"]:
                if w in ("|", "||", "&&", ";", "&"):
                    if cur:
                        yield i, cur
                    cur = []
                else:
                    cur.append(w)


def sockit_invocations(path):
    for line, argv in command_lines(path):
        for j, w in enumerate(argv):
            # the program, not an argument (bench/run.py --sockit build/sockit)
            command = j == 0 or not argv[j - 1].startswith("-")
            if command and (w == "sockit" or w.endswith("/sockit")) and j + 1 < len(argv):
                assert argv[j + 1] in COMMANDS, f"{path}:{line}: unknown command {argv[j + 1]}"
                yield line, argv[j + 1], argv[j + 2:]
                break


@pytest.mark.parametrize("path", DOCS, ids=[os.path.relpath(p, ROOT) for p in DOCS])
def test_example_commands_use_real_options(path):
    bad, seen = [], 0
    for line, cmd, args in sockit_invocations(path):
        seen += 1
        for opt in options(args):
            if not in_help(cmd, opt):
                bad.append(f"{os.path.relpath(path, ROOT)}:{line}: sockit {cmd} {opt}")
    assert not bad, "options not in the command's --help:\n" + "\n".join(bad)
    if path == README:
        assert seen >= 10, "the README's examples were not found"


def makefile_targets():
    with open(os.path.join(ROOT, "Makefile")) as f:
        return set(re.findall(r"^([\w.-]+):", f.read(), re.M))


@pytest.mark.parametrize("path", DOCS, ids=[os.path.relpath(p, ROOT) for p in DOCS])
def test_make_targets_and_paths_exist(path):
    targets, bad = makefile_targets(), []
    for line, argv in command_lines(path):
        if argv[0] == "make":
            for w in argv[1:]:
                if w.startswith("T="):
                    f = w[2:].split("::")[0]
                    if not os.path.exists(os.path.join(ROOT, f)):
                        bad.append(f"{line}: no {f}")
                elif "=" not in w and not w.startswith("-") and w not in targets:
                    bad.append(f"{line}: no make target {w}")
        m = re.fullmatch(r"build/tests/(test_\w+)", argv[0])
        if m and not os.path.exists(os.path.join(ROOT, "tests", "unit", m.group(1) + ".c")):
            bad.append(f"{line}: no unit test {m.group(1)}")
    assert not bad, f"{os.path.relpath(path, ROOT)}:\n" + "\n".join(bad)


def documented_options():
    """(line, cmd, option) from README's synopses (fenced lines starting
    `sockit CMD [`, and their indented continuations) and the option tables
    inside each `## sockit CMD` section."""
    with open(README, encoding="utf-8") as f:
        lines = f.read().split("\n")
    section, fence, synopsis = None, False, None
    for n, line in enumerate(lines, 1):
        if line.startswith("```"):
            fence, synopsis = not fence, None
            continue
        m = re.match(r"^## sockit (\w+)", line)
        if m or line.startswith("## "):
            section = m.group(1) if m else None
        if fence:
            m = re.match(r"^sockit (\w+) \[", line)
            if m:
                synopsis = m.group(1)
            elif not line.startswith(" "):
                synopsis = None
            if synopsis:
                for opt in re.findall(r"[\[|]\s*(--?[\w-]+)", line):
                    yield n, synopsis, opt
        elif section and line.startswith("| `-"):
            first = line.split("|")[1]
            for opt in re.findall(r"`(--?[\w-]+)", first) + re.findall(r", (--[\w-]+)", first):
                yield n, section, opt


def test_documented_options_exist():
    missing = sorted({(cmd, opt, n) for n, cmd, opt in documented_options()
                      if not in_help(cmd, opt)})
    found = list(documented_options())
    assert len(found) > 30, found  # the parse found the tables
    assert not missing, "README names options its command lacks:\n" + "\n".join(
        f"README.md:{n}: sockit {cmd} {opt}" for cmd, opt, n in missing)


def test_json_examples_parse():
    found = blocks(README, {"json"})
    assert found
    for line, _, text in found:
        try:
            json.loads(text)
        except ValueError as e:
            pytest.fail(f"README.md:{line}: ```json block does not parse: {e}")
