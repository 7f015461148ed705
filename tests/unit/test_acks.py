from bridge.amqp import acks


class Delivery:
    """Records how it was acknowledged."""

    def __init__(self, tag, log):
        self.delivery_tag = tag
        self.log = log

    def ack(self, multiple=False):
        self.log.append((self.delivery_tag, multiple))


def deliveries(n):
    log = []
    return [Delivery(i, log) for i in range(1, n + 1)], log


def test_in_order_batch_is_one_multiple_ack():
    msgs, log = deliveries(5)
    a = acks.Acks()
    for m in msgs:
        a.received(m)
    a.ack(msgs[:3])
    assert log == [(3, True)]
    a.ack(msgs[3:])
    assert log == [(3, True), (5, True)]


def test_earlier_unfinished_delivery_forces_single_acks():
    msgs, log = deliveries(4)
    a = acks.Acks()
    for m in msgs:
        a.received(m)
    a.ack([msgs[1], msgs[2]])          # 1 is still waiting (other queue)
    assert log == [(2, False), (3, False)]
    a.ack([msgs[0], msgs[3]])          # now nothing earlier is unfinished
    assert log[2:] == [(4, True)]


def test_clear_forgets_the_channel():
    msgs, log = deliveries(2)
    a = acks.Acks()
    a.received(msgs[0])
    a.clear()
    a.received(msgs[1])
    a.ack([msgs[1]])
    assert log == [(2, False)]
