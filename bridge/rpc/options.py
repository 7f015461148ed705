"""The ``[rpc]`` options: the reply tokens' secret and lifetimes, the
AMQP queue answers to guests' calls come to (bridge/rpc/relay.py)."""

from oslo_config import cfg

GROUP = 'rpc'

OPTS = [
    cfg.StrOpt('reply_secret', secret=True,
               help='Secret key that signs reply addresses handed to '
                    'guests (HMAC-SHA256), and from which the key proving '
                    'doorbell rings is derived. Every bridge that shares '
                    'routes must use the same value. Required when any '
                    'route uses envelope = oslo or a doorbell_port. '
                    'Changing it invalidates outstanding reply addresses; '
                    'doorbell subscriptions are signed again when each '
                    'bridge restarts.'),
    cfg.IntOpt('reply_token_ttl', default=3600, min=10,
               help='Longest validity in seconds of a reply address. A '
                    'call\'s address expires with the call\'s own timeout '
                    '(AMQP expiration) plus reply_grace, never later than '
                    'this.'),
    cfg.IntOpt('reply_grace', default=30, min=0,
               help='Seconds a reply address stays valid after the '
                    'caller\'s timeout.'),
    cfg.StrOpt('amqp_reply_queue', default='amqp-zaqar-bridge.replies',
               help='Durable AMQP queue on the default exchange where '
                    'control-plane servers answer calls made by guests; '
                    'every bridge worker consumes it.'),
    cfg.IntOpt('guest_call_timeout', default=60, min=1,
               help='Expiry in seconds of the reply address of a call made '
                    'by a guest when the guest did not state a timeout.'),
    cfg.FloatOpt('answer_due_window', default=2.0, min=0.0, max=60.0,
                 help='Seconds during which the worker draining a reply '
                      'queue looks at it quickly after this bridge posted '
                      'a controller\'s call whose answer comes there: first '
                      'when answers usually come (learnt), then at growing '
                      'steps from 2 ms up to 0.25 s. A call answered later '
                      'is found by the doorbell or the route\'s poll. Costs '
                      'a few empty claims per call; 0 turns it off.'),
]
