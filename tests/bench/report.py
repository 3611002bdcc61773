#!/usr/bin/env python3
"""Summarise benchmark runs: medians per target, candidate/reference ratios
checked against targets, a printed table and a JSON file. Shared by every
benchmark section; the section script names its metrics and checks on the
command line. Reads a TSV of runs (header line, one row per measured run)."""

import argparse
import csv
import json
import statistics
import sys


def number(text):
    if text is None or text in ("", "n/a", "-"):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True, help="TSV file of runs")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--section", required=True)
    ap.add_argument("--title", required=True)
    ap.add_argument("--targets", required=True,
                    help="space-separated targets, in table order")
    ap.add_argument("--candidate", default="sluice")
    # key|label|printf-format|agg (agg: median or sum)
    ap.add_argument("--metric", action="append", default=[])
    # metric|op|limit|reference|label  (op: le or ge; ratio = candidate/reference)
    ap.add_argument("--check", action="append", default=[])
    # reference whose ratios are printed for information only
    ap.add_argument("--compare", action="append", default=[])
    ap.add_argument("--skipped", action="append", default=[],
                    help="target=reason")
    ap.add_argument("--meta", action="append", default=[], help="key=value")
    return ap.parse_args()


def main():
    args = parse_args()
    metrics = []
    for spec in args.metric:
        key, label, fmt, agg = (spec.split("|") + ["median"])[:4]
        metrics.append({"key": key, "label": label, "fmt": fmt, "agg": agg})
    checks = []
    for spec in args.check:
        key, op, limit, ref, label = spec.split("|")
        checks.append({"metric": key, "op": op, "limit": float(limit),
                       "reference": ref, "label": label})
    skipped = dict(s.split("=", 1) for s in args.skipped)
    meta = {}
    for m in args.meta:
        k, v = m.split("=", 1)
        meta[k] = int(v) if v.isdigit() else v
    targets = args.targets.split()

    runs = []
    with open(args.runs, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            runs.append({k: (v if k == "target" else number(v))
                         for k, v in row.items()})

    summary = {}
    for t in targets:
        rows = [r for r in runs if r["target"] == t]
        if not rows:
            continue
        s = {"runs": len(rows)}
        for m in metrics:
            vals = [r[m["key"]] for r in rows if r.get(m["key"]) is not None]
            if not vals:
                s[m["key"]] = None
            elif m["agg"] == "sum":
                s[m["key"]] = sum(vals)
            else:
                s[m["key"]] = statistics.median(vals)
                # The spread tells whether the median can be trusted.
                s[m["key"] + "_min"] = min(vals)
                s[m["key"] + "_max"] = max(vals)
        summary[t] = s

    def fmt(m, v):
        return "-" if v is None else (m["fmt"] % v)

    def ratio(metric, ref):
        c = summary.get(args.candidate, {}).get(metric)
        r = summary.get(ref, {}).get(metric)
        if c is None or r is None or r == 0:
            return None
        return c / r

    # Table of medians.
    print()
    print(args.title)
    header = ["target"] + [m["label"] for m in metrics] + ["runs"]
    widths = [max(10, len(h) + 2) for h in header]
    print("".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i])
                  for i, h in enumerate(header)))
    for t in targets:
        if t in summary:
            cells = [t] + [fmt(m, summary[t][m["key"]]) for m in metrics] \
                + [str(summary[t]["runs"])]
            print("".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                          for i, c in enumerate(cells)))
        elif t in skipped:
            print(t.ljust(widths[0]) + "(skipped: " + skipped[t] + ")")

    # Ratios: checked ones first, then the informational references.
    verdicts = []
    labels = {m["key"]: m["label"] for m in metrics}
    refs = []
    for c in checks:
        if c["reference"] not in refs:
            refs.append(c["reference"])
    for r in args.compare:
        if r not in refs:
            refs.append(r)
    for ref in refs:
        print()
        print("%s vs %s" % (args.candidate, ref))
        ref_checks = [c for c in checks if c["reference"] == ref]
        if not ref_checks:
            # Same ratios as the checked reference, without verdicts.
            seen = set()
            for c in checks:
                if c["metric"] in seen:
                    continue
                seen.add(c["metric"])
                ref_checks.append({"metric": c["metric"], "op": None,
                                   "limit": None, "reference": ref,
                                   "label": c["label"]})
        for c in ref_checks:
            v = ratio(c["metric"], ref)
            if c["op"] is None:
                target_text = "(no target)"
                verdict = "n/a" if v is None else "info"
            else:
                sign = "<=" if c["op"] == "le" else ">="
                target_text = "(target %s %g)" % (sign, c["limit"])
                if v is None:
                    verdict = "n/a"
                elif (v <= c["limit"]) if c["op"] == "le" else (v >= c["limit"]):
                    verdict = "PASS"
                else:
                    verdict = "MISS"
            vtext = "n/a" if v is None else "%.3f" % v
            print("  %-16s %8s  %-18s %s" % (
                c["label"], vtext, target_text, verdict))
            verdicts.append({"metric": c["metric"],
                             "metric_label": labels.get(c["metric"], c["metric"]),
                             "label": c["label"],
                             "candidate": args.candidate, "reference": ref,
                             "ratio": v, "op": c["op"], "limit": c["limit"],
                             "verdict": verdict})

    result = {"section": args.section, "title": args.title, "meta": meta,
              "targets": targets, "skipped": skipped, "medians": summary,
              "ratios": verdicts, "runs": runs}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print()
    print("results written to %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
