"""test_library.py -- the shared object's boundary: it exports exactly the
functions include/ declares with SOCKIT_API, and nothing internal."""
import glob
import os
import re
import subprocess

from conftest import ROOT, SOCKIT

DECL_RE = re.compile(r"^SOCKIT_API\b[^(]*?\b(sockit_\w+)\(", re.M)


def public_functions():
    names = set()
    for h in glob.glob(os.path.join(ROOT, "include", "*.h")):
        with open(h) as f:
            names.update(DECL_RE.findall(f.read()))
    return names


def exported_functions(so):
    out = subprocess.run(["nm", "-D", "--defined-only", so], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TtWwDdBbRr":
            names.add(parts[2].split("@")[0])
    return names


def test_so_exports_exactly_the_public_api():
    so = os.path.join(os.path.dirname(SOCKIT), "libsockit.so")
    assert os.path.exists(so), so
    public = public_functions()
    assert len(public) > 40, sorted(public)  # the parse found the headers
    exported = exported_functions(so)
    assert exported - public == set(), f"exported but not public: {sorted(exported - public)}"
    assert public - exported == set(), f"public but not exported: {sorted(public - exported)}"
