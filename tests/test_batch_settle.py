"""batch._Worker.settle waits for the product the TensorE worker is applying before it adds
its own (nkigen/sim/batch.py): pinned with the worker held inside its first product, so the
flushing thread reaches the wait while the worker is mid-product, every time."""

from __future__ import annotations

import threading
import time

import ml_dtypes
import numpy as np


def test_the_flush_waits_for_the_product_the_worker_is_applying(monkeypatch):
    from nkigen.sim import batch

    rng = np.random.default_rng(13)
    n = 4
    ss = [rng.standard_normal((128, 32)).astype(ml_dtypes.bfloat16).astype(np.float32)
          for _ in range(n)]
    ms = [rng.standard_normal((128, 48)).astype(ml_dtypes.bfloat16).astype(np.float32)
          for _ in range(n)]
    want = np.matmul(ss[0].T, ms[0])
    for i in range(1, n):
        want += np.matmul(ss[i].T, ms[i])
    main = threading.get_ident()
    started = threading.Event()
    apply = batch._apply

    def slow_apply(view, s, m, acc):
        if threading.get_ident() != main:
            started.set()
            time.sleep(0.2)             # the flush gets its own products done meanwhile
        apply(view, s, m, acc)

    monkeypatch.setattr(batch, "_apply", slow_apply)
    w = batch._Worker()
    q = batch.Queue()
    view = np.full((32, 48), np.nan, np.float32)
    first = batch.Product(view, ss[0], ms[0], False, q)
    q.ops.append(first)
    w.submit(first)
    assert started.wait(5)              # the worker is inside product 0 (a store)
    for i in range(1, n):
        p = batch.Product(view, ss[i], ms[i], True, q)
        q.ops.append(p)
        w.submit(p)
    w.settle(q.ops)
    assert first.done and first.applied
    assert view.view(np.uint32).tolist() == want.view(np.uint32).tolist()
    w.drop()


def test_a_product_that_raises_in_the_worker_is_applied_by_the_flush(monkeypatch):
    """The worker fails inside product 0 after the flush has taken the others: the flush
    applies product 0 itself (it raises there too if it must), then its own, in order."""
    from nkigen.sim import batch

    rng = np.random.default_rng(14)
    n = 4
    ss = [rng.standard_normal((128, 32)).astype(ml_dtypes.bfloat16).astype(np.float32)
          for _ in range(n)]
    ms = [rng.standard_normal((128, 48)).astype(ml_dtypes.bfloat16).astype(np.float32)
          for _ in range(n)]
    want = np.matmul(ss[0].T, ms[0])
    for i in range(1, n):
        want += np.matmul(ss[i].T, ms[i])
    main = threading.get_ident()
    started, taken = threading.Event(), threading.Event()
    apply, product = batch._apply, batch._product

    def failing_apply(view, s, m, acc):
        if threading.get_ident() != main:
            started.set()
            taken.wait(5)               # the flush has the other products: now fail
            raise MemoryError("injected")
        apply(view, s, m, acc)

    def counted_product(s, m):
        taken.set()
        return product(s, m)

    monkeypatch.setattr(batch, "_apply", failing_apply)
    monkeypatch.setattr(batch, "_product", counted_product)
    w = batch._Worker()
    q = batch.Queue()
    view = np.full((32, 48), np.nan, np.float32)
    first = batch.Product(view, ss[0], ms[0], False, q)
    q.ops.append(first)
    w.submit(first)
    assert started.wait(5)              # the worker is inside product 0
    for i in range(1, n):
        p = batch.Product(view, ss[i], ms[i], True, q)
        q.ops.append(p)
        w.submit(p)
    w.settle(q.ops)
    assert q.broken and first.done and not first.applied
    assert view.view(np.uint32).tolist() == want.view(np.uint32).tolist()
    w.drop()
