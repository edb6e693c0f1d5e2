#!/usr/bin/env python3
"""Prints a search answer (REST JSON on stdin) as a ranked list of titles; exits 1 if it holds
no hits. Used by demo.sh."""
import json
import sys

answer = json.load(sys.stdin)
hits = answer.get("hits", [])
# "vector" (which query vector won the hit) says something only for multi-vector queries.
shown = [k for k in ("vector", "cluster") if any(h.get(k, 0) for h in hits)]
for rank, h in enumerate(hits, 1):
    p = h.get("payload") or {}
    extra = "".join(f"  {k} {h[k]}" for k in shown if k in h)
    if "channels" in h:
        extra += "  via " + "+".join(h["channels"])
    print(f"  {rank:2}. {p.get('title', h['id'])}  [{p.get('genres', '')}]  score {h['score']:.3f}{extra}")
if "per_cluster" in answer and "quotas" in answer:
    print("  quotas per cluster:", answer["quotas"])
sys.exit(0 if hits else 1)
