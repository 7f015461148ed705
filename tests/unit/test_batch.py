from bridge import batch


def test_batches_by_count_size_and_age():
    b = batch.Batches(max_count=3, max_bytes=100, timeout=1.0)
    for i in range(4):
        b.add(('p', 'q'), i, 10, now=0.0)
    b.add(('p', 'other'), 'x', 95, now=0.0)
    b.add(('p', 'other'), 'y', 10, now=0.0)   # over max_bytes: new batch
    assert len(b) == 6
    due = b.due(now=0.5)
    assert sorted(str(x.items) for x in due) == ["['x']", '[0, 1, 2]']
    assert len(b) == 2
    due = b.due(now=1.5)
    assert sorted(str(x.items) for x in due) == ["['y']", '[3]']
    assert len(b) == 0


def test_put_back_keeps_everything_for_the_next_try():
    b = batch.Batches(max_count=2, max_bytes=100, timeout=0.0)
    for i in range(5):
        b.add('k', i, 1, now=0.0)
    failed = b.due(now=0.0)
    assert sum(len(x.items) for x in failed) == 5
    for x in failed:
        b.put_back(x)
    assert len(b) == 5
    assert sorted(i for x in b.due(now=0.0) for i in x.items) == \
        [0, 1, 2, 3, 4]
