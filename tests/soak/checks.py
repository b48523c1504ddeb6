"""checks.py -- the soak's verdicts, table and plot: pure functions of the samples.

soak.py collects; this module judges.  Nothing here touches a process or a
socket, so test_checks.py can feed it synthetic samples and see each check
fail when it should (a leak of 6%, a descriptor not returned, a counter
that does not add up, a bench error).

A sample is a dict: {"t": seconds since start, "phase": "base" | "warm" |
"load" | "cool" | "end", "rss_kb", "fds", "cpu_s" (utime+stime),
"metrics": parse_prometheus(...) of the server's /metrics, "bench_req",
"bench_err" (the server's well-behaved clients' verified requests and
errors so far)}.  Each check returns a list of Failure (empty: passed).
"""
import collections
import math
import re

Failure = collections.namedtuple("Failure", "check detail")

RSS_GROWTH_MAX = 0.05  # the bound: less than 5% after warm-up

# ---- Prometheus text -----------------------------------------------------------------

_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)$")
_LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text):
    """The text format (0.0.4) -> {(name, ((label, value), ...)): float};
    labels sorted, comments skipped.  A line it cannot read raises
    ValueError (the endpoint is validated by promtool elsewhere; here a bad
    line is a failure to notice, not to skip)."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line.strip())
        if not m:
            raise ValueError("unreadable metrics line: %r" % line)
        labels = tuple(sorted(_LABEL_RE.findall(m.group(3) or "")))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def metric(m, name, **labels):
    """One sample's value (0 if absent: the endpoint omits nothing it has,
    and a missing family makes the identities fail loudly enough)."""
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def family(m, name):
    """{label-tuple: value} of every sample of a family."""
    return {k[1]: v for k, v in m.items() if k[0] == name}


def reasons(m, name):
    """{reason: value} of a family labelled by reason."""
    return {dict(lab).get("reason", ""): v for lab, v in family(m, name).items()}


# The counters line's keys -> the metrics' names (exposition.c's rules).
def line_key_to_metric(key):
    """(name, labels) of the metric a counters-line key is served as, or
    None for `active` (a gauge: sockit_connections_open)."""
    for pre, name in (("closed_", "sockit_connections_closed_total"),
                      ("refused_", "sockit_connections_refused_total"),
                      ("dgrams_dropped_", "sockit_datagrams_dropped_total")):
        if key.startswith(pre):
            return name, (("reason", key[len(pre):]),)
    fixed = {"accepted": "sockit_connections_accepted_total",
             "active": "sockit_connections_open",
             "bytes_in": "sockit_received_bytes_total",
             "bytes_out": "sockit_sent_bytes_total",
             "dgrams_in": "sockit_datagrams_received_total",
             "dgrams_out": "sockit_datagrams_sent_total"}
    return (fixed[key], ()) if key in fixed else ("sockit_%s_total" % key, ())


# ---- The checks ------------------------------------------------------------------------

def check_identities(m, where="", quiescent=True):
    """What must add up in one scrape.  quiescent=True (nothing in flight,
    as at the end) demands equality; during load the workers' counters are
    read one after the other, so only what holds per worker is checked."""
    f = []
    acc = metric(m, "sockit_connections_accepted_total")
    closed = reasons(m, "sockit_connections_closed_total")
    open_ = metric(m, "sockit_connections_open")
    per_worker = family(m, "sockit_connections_active")
    hist_count = metric(m, "sockit_connection_duration_seconds_count")
    buckets = sorted(((float(dict(lab)["le"]), v)
                      for lab, v in family(m, "sockit_connection_duration_seconds_bucket").items()),
                     key=lambda x: x[0])
    tag = " " + where if where else ""
    if not closed or "sockit_connections_accepted_total" not in {k[0] for k in m}:
        return [Failure("counters" + tag, "the metrics lack accepted/closed counters")]
    if any(b2[1] < b1[1] for b1, b2 in zip(buckets, buckets[1:])):
        f.append(Failure("counters" + tag, "duration histogram buckets decrease: %s" % buckets))
    if buckets and buckets[-1][0] != math.inf:
        f.append(Failure("counters" + tag, "duration histogram has no +Inf bucket"))
    if buckets and buckets[-1][1] != hist_count:
        f.append(Failure("counters" + tag, "duration +Inf bucket %d != _count %d"
                         % (buckets[-1][1], hist_count)))
    if not quiescent:
        return f
    if acc != sum(closed.values()) + open_:
        f.append(Failure("counters" + tag, "accepted %d != closed %d + open %d (closed: %s)"
                         % (acc, sum(closed.values()), open_,
                            ", ".join("%s=%d" % kv for kv in sorted(closed.items()) if kv[1]))))
    if per_worker and sum(per_worker.values()) != open_:
        f.append(Failure("counters" + tag, "open %d != sum of per-worker active %d"
                         % (open_, sum(per_worker.values()))))
    if hist_count != sum(closed.values()):
        f.append(Failure("counters" + tag, "duration histogram _count %d != closed %d"
                         % (hist_count, sum(closed.values()))))
    d_in = metric(m, "sockit_datagrams_received_total")
    d_out = metric(m, "sockit_datagrams_sent_total")
    dropped = reasons(m, "sockit_datagrams_dropped_total")
    denied = metric(m, "sockit_connections_refused_total", reason="denied")
    # every datagram is answered or dropped for a reason (denied ones are
    # counted with the refused connections: there is no ACL in the soak)
    if d_in != d_out + sum(dropped.values()) + denied:
        f.append(Failure("counters" + tag, "datagrams in %d != sent %d + dropped %d (%s)"
                         % (d_in, d_out, sum(dropped.values()),
                            ", ".join("%s=%d" % kv for kv in sorted(dropped.items())))))
    return f


# Counters that may go down: a datagram counted as sent when queued is
# taken back if the send fails (udp.c), and so are its bytes.
MAY_DECREASE = {"sockit_datagrams_sent_total", "sockit_sent_bytes_total"}


def check_monotonic(samples, name):
    """Every counter (a *_total family, the histogram's buckets and count)
    never decreases from one sample to the next."""
    f = []
    prev = None
    for s in samples:
        m = s.get("metrics")
        if m is None:
            continue
        if prev is not None:
            for k, v in prev[1].items():
                n = k[0]
                counter = n.endswith("_total") or n.endswith("_bucket") or n.endswith("_count")
                if counter and n not in MAY_DECREASE and k in m and m[k] < v:
                    f.append(Failure("monotonic " + name, "%s%s went from %d at %.0fs to %d at %.0fs"
                                     % (n, dict(k[1]) or "", v, prev[0], m[k], s["t"])))
        prev = (s["t"], m)
    return f


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return (xs[n // 2] + xs[(n - 1) // 2]) / 2 if n else None


def rss_growth(samples, ref_from, load_end):
    """(reference, end, growth): the median RSS of the warm-up's samples
    from ref_from on (after the priming bursts) against the median over the
    last quarter of the loaded time after the warm-up.  Medians, so that a
    never-reader's buffers present in one sample and gone in the next are
    noise, while a leak (a trend) is not."""
    warm = [s for s in samples if s["phase"] == "warm"]
    load = [s for s in samples if s["phase"] == "load"]
    if not warm or not load:
        return None, None, None
    ref = _median([s["rss_kb"] for s in warm if s["t"] >= ref_from] or [warm[-1]["rss_kb"]])
    l0 = load[0]["t"]
    tail = [s["rss_kb"] for s in load if s["t"] >= load_end - (load_end - l0) / 4]
    end = _median(tail or [load[-1]["rss_kb"]])
    return ref, end, end / ref - 1


def check_rss(samples, ref_from, load_end, name, limit=RSS_GROWTH_MAX):
    ref, end, g = rss_growth(samples, ref_from, load_end)
    if g is None:
        return [Failure("rss " + name, "too few samples (a warm-up and a loaded one needed)")]
    if g >= limit:
        return [Failure("rss " + name, "RSS grew %.1f%% after warm-up (%d -> %d KiB; limit %.0f%%)"
                        % (100 * g, ref, end, 100 * limit))]
    return []


def check_fds(baseline, final, name):
    if final != baseline:
        return [Failure("fds " + name, "%d descriptors open after the load, %d at the start"
                        % (final, baseline))]
    return []


def check_open_fds_gauge(m, proc_fds, name):
    """process_open_fds (read while the scrape's own socket is open) is the
    /proc count plus that one socket."""
    g = metric(m, "process_open_fds")
    if g != proc_fds + 1:
        return [Failure("fds " + name, "process_open_fds %d, but /proc/PID/fd has %d (+1 scrape)"
                        % (g, proc_fds))]
    return []


def check_bench(result, label):
    """A well-behaved client: `sockit bench --json`'s object (or None if it
    printed none) and its exit code."""
    r, rc = result.get("json"), result.get("exit")
    if r is None:
        return [Failure("bench " + label, "no JSON result (exit %s): %s"
                        % (rc, result.get("stderr", "").strip()[-300:]))]
    f = []
    errs = {k: v for k, v in (r.get("errors") or {}).items() if v}
    if r.get("errors_total", 1) != 0 or errs:
        f.append(Failure("bench " + label, "%d errors (%s)%s" % (
            r.get("errors_total", -1), ", ".join("%s=%d" % kv for kv in sorted(errs.items())),
            "; " + r["error"] if r.get("error") else "")))
    if not r.get("requests"):
        f.append(Failure("bench " + label, "no request completed"))
    if rc != 0 and not f:
        f.append(Failure("bench " + label, "exit %s: %s" % (rc, r.get("error"))))
    return f


def check_exit_counters(m, line, name):
    """The counters line printed at exit equals the last (quiescent) scrape,
    key by key: the two exports agree.  cpu_yields may still grow while
    the workers wake to drain."""
    f = []
    for key, v in sorted(line.items()):
        mname, labels = line_key_to_metric(key)
        got = m.get((mname, labels))
        if got is None:
            f.append(Failure("exit " + name, "counter %s=%d is not in /metrics (%s)"
                             % (key, v, mname)))
        elif got != v and not (key == "cpu_yields" and v >= got):
            f.append(Failure("exit " + name, "counter %s=%d at exit, but %d in the last scrape"
                             % (key, v, got)))
    return f


def check_at_least(value, floor, check, what):
    """A server counter against what the clients saw happen (each hostile
    client that saw its outcome must be counted)."""
    if value < floor:
        return [Failure(check, "%s: %d, but the clients saw %d" % (what, value, floor))]
    return []


def check_hostile(stats, label):
    """A hostile client kind: it ran, and every outcome was one it allows
    (stats: {"attempts", "outcomes": {outcome: n}, "unexpected": {outcome:
    first detail}})."""
    f = []
    if stats["attempts"] == 0:
        f.append(Failure("hostile " + label, "never ran"))
    for outcome, detail in sorted(stats["unexpected"].items()):
        f.append(Failure("hostile " + label, "%d x %s (first: %s)"
                         % (stats["outcomes"].get(outcome, 0), outcome, detail)))
    return f


# ---- The table -------------------------------------------------------------------------

def rows(samples, max_rows=24):
    """The samples shown: all if few, else every k-th (always the first and
    last of each phase); each with rates over the time since the previous
    row shown: CPU %, accepted connections/s, verified requests/s."""
    if not samples:
        return []
    keep = set()
    by_phase = collections.OrderedDict()
    for i, s in enumerate(samples):
        by_phase.setdefault(s["phase"], []).append(i)
    budget = max(max_rows - 2 * len(by_phase), 1)
    k = max(1, math.ceil(len(samples) / budget))
    for idx in by_phase.values():
        keep.update(idx[::k])
        keep.add(idx[-1])
    out, prev = [], None
    for i in sorted(keep):
        s = samples[i]
        r = dict(s)
        if prev is not None and s["t"] > prev["t"]:
            dt = s["t"] - prev["t"]
            r["cpu_pct"] = 100 * (s["cpu_s"] - prev["cpu_s"]) / dt
            r["acc_per_s"] = (metric(s["metrics"], "sockit_connections_accepted_total")
                              - metric(prev["metrics"], "sockit_connections_accepted_total")) / dt
            r["req_per_s"] = (s["bench_req"] - prev["bench_req"]) / dt
        else:
            r["cpu_pct"] = r["acc_per_s"] = r["req_per_s"] = None
        out.append(r)
        prev = s
    return out


def _f(v, fmt):
    return "-" if v is None else fmt % v


def table(name, samples, max_rows=24):
    """One server's samples as a text table."""
    head = ("%7s %-5s %8s %5s %6s %6s %8s %8s %7s %7s %5s"
            % ("t (s)", "phase", "RSS KiB", "fds", "CPU %", "open", "acc/s", "req/s",
               "refused", "dgr.drop", "err"))
    lines = ["%s" % name, head]
    for r in rows(samples, max_rows):
        m = r["metrics"]
        lines.append("%7.1f %-5s %8d %5d %6s %6d %8s %8s %7d %7d %5d" % (
            r["t"], r["phase"], r["rss_kb"], r["fds"], _f(r["cpu_pct"], "%.1f"),
            metric(m, "sockit_connections_open"), _f(r["acc_per_s"], "%.0f"),
            _f(r["req_per_s"], "%.0f"),
            sum(reasons(m, "sockit_connections_refused_total").values()),
            sum(reasons(m, "sockit_datagrams_dropped_total").values()), r["bench_err"]))
    return "\n".join(lines)


def phase_summary(name, samples):
    """One line per phase: RSS and fds ranges, mean CPU and request rate."""
    lines = []
    phases = collections.OrderedDict()
    for s in samples:
        phases.setdefault(s["phase"], []).append(s)
    for ph, ss in phases.items():
        dt = ss[-1]["t"] - ss[0]["t"]
        cpu = req = None
        if dt > 0:
            cpu = 100 * (ss[-1]["cpu_s"] - ss[0]["cpu_s"]) / dt
            req = (ss[-1]["bench_req"] - ss[0]["bench_req"]) / dt
        lines.append("  %-11s %-5s %5.0fs  RSS %6d..%-6d KiB  fds %4d..%-4d  CPU %5s%%  req/s %6s"
                     % (name, ph, dt, min(s["rss_kb"] for s in ss), max(s["rss_kb"] for s in ss),
                        min(s["fds"] for s in ss), max(s["fds"] for s in ss),
                        _f(cpu, "%.1f"), _f(req, "%.0f")))
    return lines


# ---- The plot ---------------------------------------------------------------------------

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def _nice_step(v):
    """The smallest of 1, 2, 2.5, 5 x 10^k at least v."""
    if v <= 0:
        return 1
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * e * (1 + 1e-9):
            return m * e
    return 10 * e


def _esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_plot(series, phases, title):
    """Three stacked panels (RSS MiB, open fds, verified requests/s) over
    time, one line per server.  series: {server: [samples]}; phases:
    [(name, t0, t1)], the warm-up shaded.  Hand-written SVG, no dependencies."""
    W, PH, L, R, T, GAP = 900, 170, 70, 170, 40, 40
    panels = [("RSS (MiB)", lambda s, p: s["rss_kb"] / 1024),
              ("open descriptors", lambda s, p: s["fds"]),
              ("verified requests/s",
               lambda s, p: None if p is None or s["t"] <= p["t"]
               else (s["bench_req"] - p["bench_req"]) / (s["t"] - p["t"]))]
    H = T + len(panels) * (PH + GAP) + 10
    tmax = max((s["t"] for ss in series.values() for s in ss), default=1) or 1
    pw = W - L - R
    e = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
         'font-family="sans-serif" font-size="11">' % (W, H),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="20" font-size="14">%s</text>' % (L, _esc(title))]

    def x(t):
        return L + pw * t / tmax

    for i, (label, fn) in enumerate(panels):
        top = T + i * (PH + GAP)
        pts = {}
        for name, ss in series.items():
            prev, p = None, []
            for s in ss:
                v = fn(s, prev)
                prev = s
                if v is not None:
                    p.append((s["t"], v))
            pts[name] = p
        top_v = max((v for p in pts.values() for _, v in p), default=1) or 1
        ystep = _nice_step(top_v / 4)
        nticks = max(1, math.ceil(top_v / ystep - 1e-9))
        vmax = ystep * nticks
        for ph, t0, t1 in phases:
            t0, t1 = min(t0, tmax), min(t1, tmax)
            if ph == "warm" and t1 > t0:
                e.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#eeeeee"/>'
                         % (x(t0), top, x(t1) - x(t0), PH))
                if i == 0:
                    e.append('<text x="%.1f" y="%d" fill="#777">warm-up</text>'
                             % (x(t0) + 3, top + 12))
        for k in range(nticks + 1):
            v = ystep * k
            y = top + PH - PH * k / nticks
            e.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ccc"/>'
                     % (L, L + pw, y, y))
            e.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>'
                     % (L - 4, y + 4, round(v, 6)))
        e.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="black"/>'
                 % (L, top, pw, PH))
        e.append('<text x="%d" y="%d" font-weight="bold">%s</text>' % (L, top - 6, _esc(label)))
        for j, (name, p) in enumerate(pts.items()):
            if not p:
                continue
            c = COLORS[j % len(COLORS)]
            d = " ".join("%.1f,%.1f" % (x(t), top + PH - PH * min(v, vmax) / vmax) for t, v in p)
            e.append('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>' % (c, d))
        step = _nice_step(tmax / 8)
        t = 0
        while t <= tmax + 1e-9:
            e.append('<text x="%.1f" y="%d" text-anchor="middle">%g</text>'
                     % (x(t), top + PH + 14, t))
            t += step
    e.append('<text x="%d" y="%d" text-anchor="middle">seconds</text>'
             % (L + pw / 2, H - 4))
    for j, name in enumerate(series):
        y = T + 10 + 16 * j
        e.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>'
                 % (W - R + 15, W - R + 35, y, y, COLORS[j % len(COLORS)]))
        e.append('<text x="%d" y="%d">%s</text>' % (W - R + 40, y + 4, _esc(name)))
    e.append("</svg>")
    return "\n".join(e) + "\n"
