"""test_man.py -- the manual pages in man/ cannot drift from the code.

- every page is mandoc -Tlint clean at -Wwarning (mdoc(7)), and groff
  (which man(1) uses on Debian) renders it without a warning;
- sockit(1) lists every command of `sockit --help`, each with its page;
- for each command, every option its --help prints has an .It of its own in
  the OPTIONS section of sockit-CMD(1), and every option the page names
  (any .Fl) is one --help prints: written `.Fl x` for -x and `.Fl -long`
  for --long (mdoc adds the first dash);
- every SOCKIT_API / SOCKIT_TLS_API function of include/*.h is in the
  SYNOPSIS of its page (sockit.h, sockit_proxy.h: libsockit(3);
  sockit_loop.h: sockit_loop(3); sockit_tls.h: libsockit_tls(3)) with the
  header's exact prototype, and has an `.It Fn` in its DESCRIPTION; every
  sockit_* function a page names exists;
- the C programs in the section 3 pages' EXAMPLES compile and link against
  the in-tree libraries, warnings as errors;
- `make install-man install-completion` installs every page and the bash
  completion under DESTDIR, and the uninstall targets remove them.
"""
import glob
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, SOCKIT

MAN = os.path.join(ROOT, "man")
PAGES = sorted(glob.glob(os.path.join(MAN, "*.[1-9]")))
COMMANDS = ("serve", "connect", "bench")
LIB_PAGES = {"sockit.h": "libsockit.3", "sockit_proxy.h": "libsockit.3",
             "sockit_loop.h": "sockit_loop.3", "sockit_tls.h": "libsockit_tls.3"}

# Options as --help prints them: --long, and -x standing alone.
HELP_LONG = re.compile(r"(?<![\w-])--[a-z0-9][a-z0-9-]*")
HELP_SHORT = re.compile(r"(?<![\w-])-[A-Za-z0-9](?![\w-])")
# mdoc: a word or a "quoted argument"; a callable macro name ends .Fl's list.
TOKEN = re.compile(r'"[^"]*"|\S+')
MACRO = re.compile(r"^(?:[A-Z][a-z]{1,2}|%[A-Z])$")
DELIMS = {".", ",", ";", ":", "(", ")", "[", "]", "|", "?", "!"}
DECL = re.compile(r"^SOCKIT(?:_TLS)?_API\s+([^;]*?)\b(sockit_\w+)\s*\(([^)]*)\)\s*;",
                  re.M | re.S)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def page(name):
    return os.path.join(MAN, name)


def rel(path):
    return os.path.relpath(path, ROOT)


def macro_lines(text):
    """[(section, tokens)] for each macro line (comments left out)."""
    out, section = [], ""
    for line in text.splitlines():
        if not line.startswith(".") or line.startswith('.\\"'):
            continue
        toks = TOKEN.findall(line[1:])
        if toks and toks[0] == "Sh":
            section = " ".join(toks[1:])
        out.append((section, toks))
    return out


def flags_of(toks):
    """The options named by the .Fl macros of one line: Fl x y -> -x, -y."""
    out, i = [], 0
    while i < len(toks):
        if toks[i] != "Fl":
            i += 1
            continue
        i += 1
        while i < len(toks) and not MACRO.match(toks[i]):
            if toks[i] not in DELIMS:
                out.append("-" + toks[i])
            i += 1
    return out


def page_options(path):
    """(every option named anywhere, [options of each .It in OPTIONS])."""
    named, items = set(), []
    for section, toks in macro_lines(read(path)):
        fl = flags_of(toks)
        named.update(fl)
        if section == "OPTIONS" and toks[0] == "It":
            items.extend(fl)
    return named, items


def help_text(*args):
    r = subprocess.run([SOCKIT, *args, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"sockit {' '.join(args)} --help: exit {r.returncode}: {r.stderr}"
    return r.stdout


def help_options(cmd):
    text = help_text(cmd)
    return set(HELP_LONG.findall(text)) | set(HELP_SHORT.findall(text))


def help_commands():
    """The commands `sockit --help` lists ("  NAME   what it does")."""
    text = help_text()
    body = text.split("commands:", 1)[1]
    return re.findall(r"^  ([a-z]+) ", body, re.M)


def test_pages_exist():
    names = {os.path.basename(p) for p in PAGES}
    want = {"sockit.1", "libsockit.3", "sockit_loop.3", "libsockit_tls.3"}
    want |= {f"sockit-{c}.1" for c in COMMANDS}
    assert want <= names, f"man/ lacks {sorted(want - names)}"


def test_mandoc_lint_clean():
    if shutil.which("mandoc") is None:
        pytest.fail("mandoc is not installed: run scripts/deps.sh test (as root)")
    r = subprocess.run(["mandoc", "-Tlint", "-Wwarning", *PAGES], capture_output=True,
                       text=True, timeout=60)
    out = (r.stdout + r.stderr).strip()
    assert out == "" and r.returncode == 0, f"mandoc -Tlint -Wwarning man/*:\n{out}"


def test_groff_renders_clean():
    """man(1) on Debian renders with groff: no warning there either (a long
    cell in an .Bl -column list, for one, cannot be broken by groff)."""
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed (man-db brings it)")
    problems = []
    for p in PAGES:
        r = subprocess.run(["groff", "-mandoc", "-Tutf8", "-ww", "-z", p], capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0 or r.stderr:
            problems.append(f"{rel(p)}: {r.stderr.strip()}")
    assert not problems, "groff -mandoc -ww:\n" + "\n".join(problems)


def test_sockit1_lists_every_command():
    text = read(page("sockit.1"))
    cmds = help_commands()
    assert set(COMMANDS) <= set(cmds), f"sockit --help lists {cmds}"
    problems = []
    for cmd in cmds:
        if not os.path.exists(page(f"sockit-{cmd}.1")):
            problems.append(f"man/sockit-{cmd}.1 does not exist")
        if not re.search(rf"^\.It Cm {cmd}$", text, re.M):
            problems.append(f"man/sockit.1 has no '.It Cm {cmd}'")
        if not re.search(rf"^\.Xr sockit-{cmd} 1\b", text, re.M):
            problems.append(f"man/sockit.1 has no '.Xr sockit-{cmd} 1'")
    for p in glob.glob(page("sockit-*.1")):
        cmd = os.path.basename(p)[len("sockit-"):-len(".1")]
        if cmd not in cmds:
            problems.append(f"{rel(p)} documents '{cmd}', which `sockit --help` does not list")
    assert not problems, "\n".join(problems)


def test_sockit1_names_only_real_options():
    known = {"-h", "--help", "-V", "--version"}
    for cmd in COMMANDS:
        known |= help_options(cmd)
    named, _ = page_options(page("sockit.1"))
    extra = sorted(named - known)
    assert not extra, f"man/sockit.1 names options no command's --help lists: {extra}"


@pytest.mark.parametrize("cmd", COMMANDS)
def test_command_page_matches_help(cmd):
    path = page(f"sockit-{cmd}.1")
    want = help_options(cmd)
    named, items = page_options(path)
    problems = []
    missing = sorted(want - set(items))
    if missing:
        problems.append(f"{rel(path)} has no '.It' in OPTIONS for these options of "
                        f"`sockit {cmd} --help`: {', '.join(missing)}")
    extra = sorted(named - want)
    if extra:
        problems.append(f"{rel(path)} names options `sockit {cmd} --help` does not list: "
                        f"{', '.join(extra)}")
    twice = sorted({o for o in items if items.count(o) > 1})
    if twice:
        problems.append(f"{rel(path)} has more than one '.It' in OPTIONS for: {', '.join(twice)}")
    assert not problems, "\n".join(problems)


def norm(s):
    """A C type or parameter with canonical spacing: 'const char *host'."""
    s = " ".join(s.split())
    s = re.sub(r"\s*\*\s*", " *", s)
    return s.replace("* *", "**").strip()


def header_functions():
    """{name: (header, return type, [params])} for every exported function."""
    out = {}
    for h in sorted(glob.glob(os.path.join(ROOT, "include", "*.h"))):
        for m in DECL.finditer(read(h)):
            params = [norm(p) for p in m.group(3).split(",")]
            out[m.group(2)] = (os.path.basename(h), norm(m.group(1)),
                               [] if params == ["void"] else params)
    assert out, "no SOCKIT_API function found in include/*.h"
    return out


def unquote(tok):
    return tok[1:-1] if tok.startswith('"') and tok.endswith('"') else tok


def synopsis_functions(path):
    """{name: (return type, [params])} from SYNOPSIS's .Ft/.Fo/.Fa/.Fc."""
    out, ft, name, params = {}, None, None, []
    for section, toks in macro_lines(read(path)):
        if section != "SYNOPSIS" or not toks:
            continue
        args = [unquote(t) for t in toks[1:]]
        if toks[0] == "Ft":
            ft = norm(" ".join(args))
        elif toks[0] == "Fo":
            name, params = args[0], []
        elif toks[0] == "Fa" and name is not None:
            params.extend(norm(a) for a in args)
        elif toks[0] == "Fc" and name is not None:
            out[name] = (ft, [] if params == ["void"] else params)
            name = None
        elif toks[0] == "Fn":
            out[args[0]] = (ft, [norm(a) for a in args[1:]])
    return out


def described_functions(path):
    """The functions with an '.It Fn NAME' outside SYNOPSIS."""
    return {toks[2] for section, toks in macro_lines(read(path))
            if section != "SYNOPSIS" and toks[:2] == ["It", "Fn"] and len(toks) > 2}


def named_functions(path):
    """Every sockit_* function named by .Fn or .Fo anywhere in the page."""
    out = set()
    for _, toks in macro_lines(read(path)):
        for i, t in enumerate(toks[:-1]):
            if t in ("Fn", "Fo") and toks[i + 1].startswith("sockit_"):
                out.add(toks[i + 1])
    return out


@pytest.mark.parametrize("name", sorted(set(LIB_PAGES.values())))
def test_library_page_matches_headers(name):
    path = page(name)
    funcs = header_functions()
    want = {f: v for f, v in funcs.items() if LIB_PAGES.get(v[0]) == name}
    syn = synopsis_functions(path)
    problems = []
    missing = sorted(set(want) - set(syn))
    if missing:
        problems.append(f"{rel(path)}: SYNOPSIS lacks (declared in include/): "
                        f"{', '.join(missing)}")
    extra = sorted(set(syn) - set(want))
    if extra:
        problems.append(f"{rel(path)}: SYNOPSIS has functions its headers do not declare: "
                        f"{', '.join(extra)}")
    for f in sorted(set(want) & set(syn)):
        h, ret, params = want[f]
        if syn[f] != (ret, params):
            problems.append(f"{rel(path)}: {f}: the page says {syn[f][0]} {f}("
                            f"{', '.join(syn[f][1])}), include/{h} says {ret} {f}("
                            f"{', '.join(params)})")
    undescribed = sorted(set(want) - described_functions(path))
    if undescribed:
        problems.append(f"{rel(path)}: no '.It Fn NAME' in DESCRIPTION for: "
                        f"{', '.join(undescribed)}")
    assert not problems, "\n".join(problems)


def test_pages_name_only_real_functions():
    funcs = set(header_functions())
    problems = []
    for path in PAGES:
        for f in sorted(named_functions(path)):
            pat = re.compile("^" + re.escape(f).replace(r"\*", r"\w*") + "$")
            if not any(pat.match(g) for g in funcs):
                problems.append(f"{rel(path)} names {f}, which no header in include/ declares")
    assert not problems, "\n".join(problems)


def examples(path):
    """The C programs (a .Bd -literal block starting '/* NAME.c -- ') in EXAMPLES."""
    out, body, section, inside = [], [], "", False
    for line in read(path).splitlines():
        if line.startswith(".Sh "):
            section = line[4:]
        if line.startswith(".Bd -literal"):
            inside, body = True, []
        elif line == ".Ed" and inside:
            inside = False
            text = "\n".join(body) + "\n"
            m = re.match(r"/\* (\w+)\.c -- ", text)
            if section == "EXAMPLES" and m:
                out.append((m.group(1), text))
        elif inside:
            body.append(line.replace("\\e", "\\").replace("\\&", ""))
    return out


def example_params():
    params = []
    for name in sorted(set(LIB_PAGES.values())):
        for prog, text in examples(page(name)):
            params.append(pytest.param(name, text, id=f"{name}:{prog}"))
    return params


@pytest.mark.parametrize("name,text", example_params())
def test_library_page_examples_build(tmp_path, name, text):
    build = os.path.dirname(SOCKIT)
    libs = [os.path.join(build, "libsockit.a")]
    extra = []
    if "sockit_tls.h" in text:
        libs.insert(0, os.path.join(build, "libsockit_tls.a"))
        r = subprocess.run(["pkg-config", "--libs", "libssl", "libcrypto"],
                           capture_output=True, text=True, timeout=30)
        extra = r.stdout.split()
    nm = subprocess.run(["nm", "-u", libs[-1]], capture_output=True, text=True, timeout=60)
    if "__asan_" in nm.stdout or "__ubsan_" in nm.stdout:
        extra.append("-fsanitize=address,undefined")
    src = tmp_path / "example.c"
    src.write_text(text)
    cc = os.environ.get("CC", "cc")
    r = subprocess.run([cc, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-pthread",
                        "-I" + os.path.join(ROOT, "include"), "-o", str(tmp_path / "example"),
                        str(src), *libs, *extra, "-lm"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"man/{name}'s example does not build:\n{r.stderr}"


def test_install_and_uninstall(tmp_path):
    dest = str(tmp_path / "root")
    make = ["make", "--no-print-directory", "-s", "-C", ROOT, f"DESTDIR={dest}",
            "PREFIX=/usr/local"]
    # not the jobserver of the make that runs us
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = subprocess.run(make + ["install-man", "install-completion"], capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    share = os.path.join(dest, "usr", "local", "share")
    for p in PAGES:
        sect = p.rsplit(".", 1)[1]
        got = os.path.join(share, "man", f"man{sect}", os.path.basename(p))
        assert os.path.isfile(got), f"make install-man did not install {got}"
        assert read(got) == read(p)
    comp = os.path.join(share, "bash-completion", "completions", "sockit")
    assert os.path.isfile(comp), f"make install-completion did not install {comp}"
    r = subprocess.run(make + ["uninstall-man", "uninstall-completion"], capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    left = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs]
    assert not left, f"make uninstall left {left}"
