"""report.py -- what run.py makes of its measurements: medians over the
repetitions (summarize), the markdown table (table), the targets' verdicts
(targets) and the SVG chart (svg_chart).  Pure functions of the runs and
the arguments; no I/O.
"""
import math
import statistics

import plan
from plan import BASE, IDLE, SERVERS, WL

# sockit serve's default --coalesce in once mode (cmd/serve/parse.c): the -R
# row's p99 may rise by this much.
COALESCE_US = 100


# ---------------------------------------------------------------- summary

def med(runs, key):
    v = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(v) if v else None


def summarize(runs, args, na):
    """{server: {workload: figures}} with medians over repetitions."""
    out = {}
    for name in args.servers:
        out[name] = {}
        for wl in args.workloads:
            mine = [r for r in runs if r["server"] == name and r["workload"] == wl]
            good = [r for r in mine if "failed" not in r]
            reason = na.get((name, wl))
            if reason:
                out[name][wl] = {"na": reason}
            elif not good:
                out[name][wl] = {"na": "failed: " + (mine[0]["failed"] if mine else "not run")}
            elif wl in IDLE:
                per = {}
                for c in (args.idle if wl == "idle" else args.idle_tls):
                    v = [r["per_count"][str(c)]["bytes_per_conn"] for r in good
                         if str(c) in r.get("per_count", {})]
                    per[str(c)] = statistics.median(v) if v else None
                out[name][wl] = {"bytes_per_conn": per, "peak_rss_kb": med(good, "peak_rss_kb"),
                                 "reps": len(good)}
            else:
                out[name][wl] = {
                    "cpu_us_per_req": med(good, "cpu_us_per_req"), "rps": med(good, "rps"),
                    "p50_us": med(good, "p50_us"), "p99_us": med(good, "p99_us"),
                    "errors": sum(r["errors"] or 0 for r in good),
                    "over_100ms": sum(r["over_100ms"] or 0 for r in good),
                    "peak_rss_kb": med(good, "peak_rss_kb"), "reps": len(good),
                    "bench_us_per_req": med(good, "bench_us_per_req"),
                    "bench_user_us_per_req": med(good, "bench_user_us_per_req"),
                    "sleeps_per_req": med(good, "sleeps_per_req"),
                    "handshake_p50_ms": med(good, "handshake_p50_ms"),
                    "handshake_p99_ms": med(good, "handshake_p99_ms"),
                    "resumed_share": med(good, "resumed_share"),
                    "scrapes": sum(r.get("scrapes", 0) for r in good),
                    "scrape_failures": sum(r.get("scrape_failures", 0) for r in good),
                    "bench_sys_us_per_req": med(good, "bench_sys_us_per_req"),
                    "noisy_reps": sum(1 for r in good if r["noisy"]),
                    # per repetition, for ratios between runs made side by side
                    "by_rep": {str(r["rep"]): {k: r.get(k) for k in (
                        "cpu_us_per_req", "p50_us", "p99_us", "bench_us_per_req")}
                        for r in good},
                    "failed_reps": len(mine) - len(good),
                }
    return out


def fmt_num(v):
    if v is None:
        return "n/a"
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def cell(v, base):
    if v is None:
        return "n/a"
    if base:
        return "%s (%.2fx)" % (fmt_num(v), v / base)
    return fmt_num(v)


def table(summary, args):
    lines = ["| workload | server | CPU µs/req | req/s | p50 µs | p99 µs | errors | >100 ms "
             "| sleeps/req | LG µs/req | peak RSS MiB | idle B/conn |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    na_by, noisy, failed, tls, scraped = {}, [], [], [], []
    for wl in args.workloads:
        base = summary.get(BASE, {}).get(wl, {})
        for name in args.servers:
            f = summary[name][wl]
            label = SERVERS[name]["label"]
            if "na" in f:
                lines.append("| %s | %s | n/a | n/a | n/a | n/a | | | | | | |" % (wl, label))
                na_by.setdefault((label, f["na"]), []).append(wl)
                continue
            rss = f.get("peak_rss_kb")
            rss_c = cell(rss / 1024 if rss else None,
                         base.get("peak_rss_kb") / 1024 if base.get("peak_rss_kb") else None)
            if wl in IDLE:
                counts = args.idle if wl == "idle" else args.idle_tls
                per = " / ".join("%s: %s" % (c, cell(f["bytes_per_conn"].get(str(c)),
                                                     (base.get("bytes_per_conn") or {})
                                                     .get(str(c))))
                                 for c in counts)
                lines.append("| %s | %s | | | | | | | | | %s | %s |" % (wl, label, rss_c, per))
                continue
            flag = " ⚠" if f["noisy_reps"] else ""
            lines.append("| %s | %s | %s%s | %s | %s | %s | %d | %d | %s | %s | %s | |" % (
                wl, label, cell(f["cpu_us_per_req"], base.get("cpu_us_per_req")), flag,
                cell(f["rps"], base.get("rps")), cell(f["p50_us"], base.get("p50_us")),
                cell(f["p99_us"], base.get("p99_us")), f["errors"], f["over_100ms"],
                fmt_num(f.get("sleeps_per_req")), fmt_num(f.get("bench_us_per_req")), rss_c))
            if WL[wl]["tls"]:
                tls.append("| %s | %s | %s | %s | %s |" % (
                    wl, label, fmt_num(f.get("handshake_p50_ms")),
                    fmt_num(f.get("handshake_p99_ms")),
                    "n/a" if f.get("resumed_share") is None
                    else "%.0f%%" % (100 * f["resumed_share"])))
            if name == "sockit-metrics":
                scraped.append("%s: %d scrapes answered, %d failed" % (
                    wl, f.get("scrapes", 0), f.get("scrape_failures", 0)))
            if f["noisy_reps"]:
                noisy.append("%s %s (%d/%d)" % (label, wl, f["noisy_reps"], f["reps"]))
            if f["failed_reps"]:
                failed.append("%s %s (%d/%d)" % (label, wl, f["failed_reps"],
                                                 f["reps"] + f["failed_reps"]))
    if tls:
        lines += ["", "| TLS workload | server | handshake p50 ms | p99 ms | resumed |",
                  "|---|---|---|---|---|"] + tls
    notes = ["n/a: %s, %s: %s" % (label, ", ".join(wls), why)
             for (label, why), wls in na_by.items()]
    if scraped:
        notes.append("sockit --metrics, GET /metrics every second during the run: " +
                     "; ".join(scraped))
    if len(noisy) > 8:
        notes.append("⚠ other processes took over 5%% of the CPUs during some repetitions "
                     "of %d of the figures: ratios hold better than rates then" % len(noisy))
    elif noisy:
        notes.append("⚠ other processes took over 5%% of the CPUs during: %s" %
                     ", ".join(noisy))
    if failed:
        notes.append("failed repetitions (left out of the medians): " + ", ".join(failed))
    return "\n".join(lines), notes


# ---------------------------------------------------------------- targets

def targets(summary, args):
    """[(target, PASS|FAIL|SKIP, detail)] for the targets of issues 6, 15,
    16, 17 and 20."""
    S = summary.get("sockit", {})
    B = summary.get(BASE, {})
    NC = summary.get("sockit-nc", {})
    out = []

    def fig(d, wl, key):
        f = d.get(wl) or {}
        return None if "na" in f else f.get(key)

    def paired(wl, key, num, den, dwl):
        """The ratio within each repetition (the two runs were made minutes
        apart at most), so a reader sees how far the machine drifted."""
        a = (num.get(wl) or {}).get("by_rep") or {}
        b = (den.get(dwl) or {}).get("by_rep") or {}
        v = ["%.2f" % (a[k][key] / b[k][key]) for k in sorted(a, key=int)
             if k in b and a[k].get(key) and b[k].get(key)]
        return " (by rep %s)" % "/".join(v) if len(v) > 1 else ""

    def ratio_target(title, wls, limit, key="cpu_us_per_req", num=S, den=B, den_wl=None):
        """num's figure over den's, for each workload (den's workload:
        den_wl(wl), by default the same one)."""
        got, bad = [], False
        keys = key if isinstance(key, tuple) else (key,)
        for wl in wls:
            dwl = den_wl(wl) if den_wl else wl
            for k in keys:
                a, b = fig(num, wl, k), fig(den, dwl, k)
                if a is None or b is None or not b:
                    continue
                r = a / b
                what = wl if len(keys) == 1 else "%s %s" % (wl, k.replace("_us", ""))
                got.append("%s %.2fx%s" % (what, r, paired(wl, k, num, den, dwl)))
                bad |= r > limit
        if not got:
            out.append((title, "SKIP", "not measured"))
        else:
            out.append((title, "FAIL" if bad else "PASS", ", ".join(got)))

    wls = args.workloads

    def some(*names):
        return [w for w in wls if w in names]

    def starting(prefix):
        return [w for w in wls if w.startswith(prefix) and w in WL]
    ratio_target("once: CPU/conn <= 0.65x epoll at c=16..1000",
                 some("once-16", "once-64", "once-256", "once-1000"), 0.65)
    ratio_target("once/lg2: CPU/conn <= 0.65x epoll at c=16..1000 under lg2",
                 [w for w in wls if w.endswith("/lg2")], 0.65)
    ratio_target("line: CPU/req <= 1.0x epoll", starting("line-"), 1.0)
    ratio_target("udp: CPU/dgram <= 0.6x epoll", starting("udp-"), 0.6)
    ratio_target("unix-once: CPU/conn <= 0.75x epoll", starting("unix-once-"), 0.75)
    ratio_target("unix-line: CPU/req <= 1.0x epoll", starting("unix-line-"), 1.0)
    ratio_target("tls-once: CPU/conn <= 1.0x the OpenSSL epoll server",
                 [w for w in starting("tls-once-") if WL[w]["tls"] == "full"], 1.0)
    ratio_target("tls-once-resumed: CPU/conn <= 1.0x the OpenSSL epoll server",
                 starting("tls-once-resumed-"), 1.0)
    ratio_target("tls-line: CPU/req <= 1.05x the OpenSSL epoll server",
                 starting("tls-line-"), 1.05)
    ratio_target("proxy: CPU/conn with --proxy-protocol <= 1.05x without (once-16)",
                 starting("proxy-once-") if "once-16" in wls else [], 1.05, den=S,
                 den_wl=lambda w: w[len("proxy-"):])
    ratio_target("metrics: CPU/req scraped every second <= 1.05x unscraped",
                 some("once-64", "line-64"), 1.05, num=summary.get("sockit-metrics", {}),
                 den=S)
    for wl, limit_of in (("idle", lambda _: 256.0), ("idle-tls", None)):
        counts = args.idle if wl == "idle" else args.idle_tls
        big = str(max(counts))
        v = ((S.get(wl) or {}).get("bytes_per_conn") or {}).get(big) if wl in wls else None
        if wl == "idle":
            title = "idle: RSS growth <= 256 B/conn at %s conns" % big
            limit = 256.0
        else:
            node = ((summary.get("node", {}).get(wl) or {}).get("bytes_per_conn") or {}) \
                .get(big)
            title = "idle-tls: RSS growth <= half of node's at %s TLS conns" % big
            limit = node / 2 if node else None
        if v is None or limit is None:
            out.append((title, "SKIP", "not measured"))
        else:
            out.append((title, "PASS" if v <= limit else "FAIL",
                        "%.0f B/conn (limit %.0f)" % (v, limit)))
    load = [w for w in wls if w in WL]
    got = [(w, S[w]) for w in load if w in S and "na" not in S[w]]
    if got:
        bad = ["%s: %d errors, %d over 100 ms" % (w, f["errors"], f["over_100ms"])
               for w, f in got if f["errors"] or f["over_100ms"]]
        out.append(("stalls: no errors, nothing over 100 ms", "FAIL" if bad else "PASS",
                    "; ".join(bad) or "%d workloads clean" % len(got)))
    else:
        out.append(("stalls: no errors, nothing over 100 ms", "SKIP", "not measured"))
    ratio_target("latency: p99 at c=1 <= 1.2x epoll", [w for w in load if w.endswith("-1")],
                 1.2, key="p99_us")
    ratio_target("coalescing latency: p50 and p99 at c=1 <= 1.05x sockit --coalesce 0",
                 some("once-1"), 1.05, key=("p50_us", "p99_us"), den=NC)
    rate = [w for w in load if WL[w]["rate"]]
    diffs = []
    for wl in rate:
        a, b = fig(S, wl, "p99_us"), fig(NC, wl, "p99_us")
        if a is not None and b is not None:
            diffs.append((wl, a - b))
    title = "coalescing at -R %d/s: p99 rises <= %d us (the delay) over --coalesce 0" % \
        (args.rate, COALESCE_US)
    if diffs:
        out.append((title, "FAIL" if any(d > COALESCE_US for _, d in diffs) else "PASS",
                    ", ".join("%s %+.0f us" % (w, d) for w, d in diffs)))
    else:
        out.append((title, "SKIP", "not measured"))
    ratio_target("client cost: LG CPU/req against sockit <= 1.05x against --coalesce 0",
                 [w for w in load if WL[w]["mode"] == "once" and not WL[w]["rate"]
                  and w != "once-1"], 1.05, key="bench_us_per_req", den=NC)
    ratio_target("workers: CPU/req with 2 workers <= 1.1x 1 worker", load, 1.1,
                 num=summary.get("sockit2", {}), den=S)
    # Beat every peer: lower CPU per request than each (the epoll yardstick
    # has its own targets above), and less memory per idle connection.
    beaten, lost = 0, []
    for wl in wls:
        for peer in args.servers:
            if peer in plan.SOCKIT or peer == BASE:
                continue
            if wl in IDLE:
                big = str(max(args.idle if wl == "idle" else args.idle_tls))
                a = ((S.get(wl) or {}).get("bytes_per_conn") or {}).get(big)
                b = ((summary[peer].get(wl) or {}).get("bytes_per_conn") or {}).get(big)
            else:
                a, b = fig(S, wl, "cpu_us_per_req"), fig(summary[peer], wl, "cpu_us_per_req")
            if a is None or b is None:
                continue
            if a < b:
                beaten += 1
            else:
                lost.append("%s %s" % (peer, wl))
    if beaten or lost:
        out.append(("beats every peer (CPU/req, idle B/conn)", "FAIL" if lost else "PASS",
                    ("lost to: " + ", ".join(lost)) if lost else "%d comparisons" % beaten))
    else:
        out.append(("beats every peer (CPU/req, idle B/conn)", "SKIP", "no peer measured"))
    return out


# ---------------------------------------------------------------- chart

def svg_chart(summary, args):
    """A grouped bar chart of CPU µs/request (log scale), hand-written SVG."""
    wls = [w for w in args.workloads if w in WL]
    names = args.servers
    colors = ["#8c564b", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#7f7f7f", "#d62728",
              "#e377c2", "#17becf", "#bcbd22", "#393b79"]
    vals = [summary[n][w].get("cpu_us_per_req") for w in wls for n in names
            if "na" not in summary[n][w]]
    vals = [v for v in vals if v]
    if not wls or not vals:
        return None
    lo = 10 ** math.floor(math.log10(min(vals)))
    hi = 10 ** math.ceil(math.log10(max(vals)))
    if hi <= lo:
        hi = lo * 10
    bar, gap, left, top, h = 9, 14, 70, 40, 300
    group = bar * len(names) + gap
    width = left + group * len(wls) + 180
    height = top + h + 60

    def y(v):
        return top + h - h * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    e = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
         'font-family="sans-serif" font-size="11">' % (width, height),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="20" font-size="14">Server CPU time per request (µs, log scale; '
         'lower is better)</text>' % left]
    d = lo
    while d <= hi * 1.0001:
        e.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' %
                 (left, left + group * len(wls), y(d), y(d)))
        e.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>' % (left - 4, y(d) + 4, d))
        d *= 10
    for i, wl in enumerate(wls):
        x0 = left + i * group + gap / 2
        for j, n in enumerate(names):
            f = summary[n][wl]
            v = None if "na" in f else f.get("cpu_us_per_req")
            x = x0 + j * bar
            if v:
                e.append('<rect x="%.1f" y="%.1f" width="%d" height="%.1f" fill="%s">'
                         '<title>%s %s: %.2f µs</title></rect>' %
                         (x, y(v), bar - 1, top + h - y(v), colors[j % len(colors)],
                          SERVERS[n]["label"], wl, v))
            else:
                e.append('<text x="%.1f" y="%d" font-size="8" fill="#999" transform="rotate(-90 '
                         '%.1f %d)">n/a</text>' % (x + 7, top + h - 2, x + 7, top + h - 2))
        e.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' %
                 (x0 + bar * len(names) / 2, top + h + 16, wl))
    lx = left + group * len(wls) + 15
    for j, n in enumerate(names):
        e.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/>' %
                 (lx, top + j * 16, colors[j % len(colors)]))
        e.append('<text x="%d" y="%d">%s</text>' % (lx + 14, top + j * 16 + 9,
                                                      SERVERS[n]["label"]))
    e.append("</svg>")
    return "\n".join(e) + "\n"
