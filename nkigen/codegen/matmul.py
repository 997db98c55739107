"""placeholder"""
from __future__ import annotations


def is_contraction(b, st) -> bool:
    return False


def try_lower(b, st, nxt, sched):
    return None
