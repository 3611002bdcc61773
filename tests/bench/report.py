#!/usr/bin/env python3
"""Summarise benchmark runs: medians per target, candidate/reference ratios
checked against targets, a printed table and a JSON file. Shared by every
benchmark section; the section script names its metrics and checks on the
command line. Reads a TSV of runs (header line, one row per measured run)."""

import argparse
import csv
import json
import re
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
    # metric|better|reference|label: a ratio printed without a target
    # (better: lower or higher, used to resolve best(...) references)
    ap.add_argument("--info", action="append", default=[])
    # metric|op|value|label: the candidate's median itself against a bound
    ap.add_argument("--limit", action="append", default=[])
    # store the result under this key of the --out object, keeping the
    # other keys, so that one section can report several tables in one file
    ap.add_argument("--merge-key")
    ap.add_argument("--skipped", action="append", default=[],
                    help="target=reason")
    # a line printed under the table of medians, kept in the JSON "notes"
    ap.add_argument("--note", action="append", default=[])
    ap.add_argument("--meta", action="append", default=[], help="key=value")
    # metric|max: the checked ratios again over the rounds where this metric
    # (steal, other load) stayed at or under max, for every such option
    ap.add_argument("--quiet", action="append", default=[])
    # fewest quiet rounds of each side for a quiet ratio to be given
    ap.add_argument("--quiet-min", type=int, default=3)
    return ap.parse_args()


def quiet_ratios(runs, checks, candidate, conds, least):
    """The checked ratios over quiet rounds only: a round is quiet when
    every cond (metric, max) holds for it. Per check, the ratio of the
    quiet medians and the median of the per-round ratios (candidate and
    reference quiet in the same round), each with its round counts, or None
    where either side has fewer than least quiet rounds. A disturbed round
    costs the saturated target more than the one that sleeps between
    events, so the medians of all rounds can flatter either side; this says
    what the quiet rounds alone say."""
    def quiet(r):
        return all(r.get(k) is not None and r[k] <= v for k, v in conds)

    def values(target, metric):
        return {r.get("round"): r[metric] for r in runs
                if r["target"] == target and quiet(r) and r.get(metric) is not None}

    out = []
    for c in checks:
        cand = values(candidate, c["metric"])
        ref = values(c["reference"], c["metric"])
        item = {"metric": c["metric"], "label": c["label"], "candidate": candidate,
                "reference": c["reference"], "op": c["op"], "limit": c["limit"],
                "candidate_rounds": len(cand), "reference_rounds": len(ref),
                "ratio": None, "paired_ratio": None, "paired_rounds": 0,
                "verdict": "n/a"}
        if len(cand) >= least and len(ref) >= least:
            rm = statistics.median(ref.values())
            if rm:
                item["ratio"] = statistics.median(cand.values()) / rm
        both = [cand[k] / ref[k] for k in cand if k in ref and ref[k]]
        item["paired_rounds"] = len(both)
        if len(both) >= least:
            item["paired_ratio"] = statistics.median(both)
        v = item["ratio"]
        if v is not None:
            ok = v <= c["limit"] if c["op"] == "le" else v >= c["limit"]
            item["verdict"] = "PASS" if ok else "MISS"
        out.append(item)
    return out


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
    infos = []
    for spec in args.info:
        key, better, ref, label = spec.split("|")
        infos.append({"metric": key, "op": None, "limit": None,
                      "better": better, "reference": ref, "label": label})
    limits = []
    for spec in args.limit:
        key, op, value, label = spec.split("|")
        limits.append({"metric": key, "op": op, "limit": float(value),
                       "label": label})
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

    def best_of(spec):
        """Targets named by a reference "best(a,b)", or None for a plain one."""
        m = re.fullmatch(r"best\((.*)\)", spec)
        return [t.strip() for t in m.group(1).split(",")] if m else None

    def resolve(spec, metric, better):
        """The target a reference stands for, for this metric: itself, or
        for best(a,b) the one with the better median (lower or higher)."""
        names = best_of(spec)
        if names is None:
            return spec
        have = [t for t in names
                if summary.get(t, {}).get(metric) is not None]
        if not have:
            return None
        pick = min if better == "lower" else max
        return pick(have, key=lambda t: summary[t][metric])

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
    for note in args.note:
        print("note: " + note)

    # Ratios: checked ones first, then the informational references.
    verdicts = []
    labels = {m["key"]: m["label"] for m in metrics}
    ratio_lines = checks + infos
    lw = max([16] + [len(c["label"]) for c in ratio_lines])
    # References in the order: checked, informational "best(...)" ones (the
    # headline of a section without checks), compared, then any other
    # informational one (a target of its own, like http's floor), last.
    info_refs = [c["reference"] for c in infos]
    refs = []
    for r in [c["reference"] for c in checks] \
            + [r for r in info_refs if best_of(r) is not None] + args.compare \
            + info_refs:
        if r not in refs:
            refs.append(r)
    for ref in refs:
        print()
        names = best_of(ref)
        if names is None:
            print("%s vs %s" % (args.candidate, ref))
        else:
            print("%s vs the better of %s" % (args.candidate, " and ".join(names)))
        ref_checks = [c for c in ratio_lines if c["reference"] == ref]
        if not ref_checks:
            # Same ratios as the checked reference, without verdicts.
            seen = set()
            for c in ratio_lines:
                if c["metric"] in seen:
                    continue
                seen.add(c["metric"])
                ref_checks.append({"metric": c["metric"], "op": None,
                                   "limit": None, "reference": ref,
                                   "label": c["label"]})
        for c in ref_checks:
            if c["op"] is not None:
                better = "lower" if c["op"] == "le" else "higher"
            else:
                better = c.get("better", "lower")
            target = resolve(ref, c["metric"], better)
            v = None if target is None else ratio(c["metric"], target)
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
            line = "  %-*s %8s  %-18s %s" % (
                lw, c["label"], vtext, target_text, verdict)
            if names is not None and target is not None:
                line += "  (%s)" % target
            print(line)
            verdicts.append({"metric": c["metric"],
                             "metric_label": labels.get(c["metric"], c["metric"]),
                             "label": c["label"],
                             "candidate": args.candidate,
                             "reference": ref if names is None else target,
                             "reference_spec": ref,
                             "ratio": v, "op": c["op"], "limit": c["limit"],
                             "verdict": verdict})

    # The checked ratios again, over quiet rounds only.
    quiet = None
    if args.quiet and checks:
        quiet_conds = []
        for spec in args.quiet:
            k, v = spec.split("|")
            quiet_conds.append((k, float(v)))
        if any(r.get("round") is None for r in runs):
            sys.exit("report.py: --quiet needs a round column in %s" % args.runs)
        # A best(a,b) reference has no single target to pair rounds with,
        # and a summed metric (errors) has no median to take.
        sums = {m["key"] for m in metrics if m["agg"] == "sum"}
        quiet = quiet_ratios(runs, [c for c in checks if best_of(c["reference"]) is None
                                    and c["metric"] not in sums],
                             args.candidate, quiet_conds, args.quiet_min)
    if quiet:
        print()
        print("%s vs %s, quiet rounds only (%s)" % (
            args.candidate, ", ".join(sorted({q["reference"] for q in quiet})),
            ", ".join("%s <= %g" % (labels.get(k, k), v) for k, v in quiet_conds)))
        for q in quiet:
            sign = "<=" if q["op"] == "le" else ">="
            vtext = "n/a" if q["ratio"] is None else "%.3f" % q["ratio"]
            ptext = "n/a" if q["paired_ratio"] is None else "%.3f" % q["paired_ratio"]
            print("  %-*s %8s  %-18s %-5s rounds %d/%d, paired %s over %d" % (
                lw, q["label"], vtext, "(target %s %g)" % (sign, q["limit"]),
                q["verdict"], q["candidate_rounds"], q["reference_rounds"],
                ptext, q["paired_rounds"]))

    # Bounds on the candidate's own medians.
    bounds = []
    if limits:
        print()
        print("%s targets" % args.candidate)
        bw = max(len(b["label"]) for b in limits)
        fmts = {m["key"]: m["fmt"] for m in metrics}
        for b in limits:
            v = summary.get(args.candidate, {}).get(b["metric"])
            sign = "<=" if b["op"] == "le" else ">="
            if v is None:
                verdict = "n/a"
            elif (v <= b["limit"]) if b["op"] == "le" else (v >= b["limit"]):
                verdict = "PASS"
            else:
                verdict = "MISS"
            vtext = "n/a" if v is None else (fmts.get(b["metric"], "%.6g") % v)
            print("  %-*s %10s  %-18s %s" % (
                bw, b["label"], vtext, "(target %s %g)" % (sign, b["limit"]),
                verdict))
            bounds.append({"metric": b["metric"], "label": b["label"],
                           "candidate": args.candidate, "value": v,
                           "op": b["op"], "limit": b["limit"],
                           "verdict": verdict})

    result = {"section": args.section, "title": args.title, "meta": meta,
              "targets": targets, "skipped": skipped, "medians": summary,
              "ratios": verdicts, "runs": runs}
    if args.note:
        result["notes"] = args.note
    if quiet is not None:
        result["quiet"] = {"conditions": args.quiet, "min_rounds": args.quiet_min,
                           "ratios": quiet}
    if limits:
        result["limits"] = bounds
    doc = result
    if args.merge_key:
        doc = {"section": args.section}
        try:
            with open(args.out) as f:
                old = json.load(f)
            if isinstance(old, dict):
                doc = old
        except (OSError, ValueError):
            pass
        doc[args.merge_key] = result
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print()
    print("results written to %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
