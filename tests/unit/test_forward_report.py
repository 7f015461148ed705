"""The forward flow's metrics: written per batch and every REPORT_INTERVAL
while messages flow, but whether a message is held is told at once."""

from bridge.flows import forward
from tests.unit import confutil


class Recorder:
    def __init__(self):
        self.calls = []

    def received(self, route, n=1):
        self.calls.append(('received', n))

    def in_flight(self, route, n):
        self.calls.append(('in_flight', n))

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def forwarder(tmp_path):
    conf, routes = confutil.load(tmp_path, confutil.ROUTES, routes='fwd')
    metrics = Recorder()
    return forward.Forwarder(conf, routes[0], clients=None,
                             metrics=metrics), metrics


def hold(f, n):
    f.batches.clear()
    for i in range(n):
        f.batches.add(('p', 'q'), i, 10)


def test_report(tmp_path, monkeypatch):
    f, m = forwarder(tmp_path)
    now = [100.0]
    monkeypatch.setattr(forward.time, 'monotonic', lambda: now[0])
    f.report()                          # idle from the start: said once
    assert m.calls == [('in_flight', 0)]
    f.report()
    assert m.calls == [('in_flight', 0)]
    del m.calls[:]
    f.received, _ = 3, hold(f, 3)       # a burst starts: told at once
    f.report()
    assert m.calls == [('received', 3), ('in_flight', 3)]
    del m.calls[:]
    for n in range(4, 40):              # within REPORT_INTERVAL: nothing
        f.received += 1
        hold(f, n)
        f.report()
    assert m.calls == []
    now[0] += forward.REPORT_INTERVAL   # then the figures of now
    f.report()
    assert m.calls == [('received', 36), ('in_flight', 39)]
    del m.calls[:]
    hold(f, 0)                          # nothing held: told at once
    f.report()
    assert m.calls == [('in_flight', 0)]
    del m.calls[:]
    f.received = 1                      # a lone message, already posted
    f.report()
    assert m.calls == [('received', 1), ('in_flight', 0)]
