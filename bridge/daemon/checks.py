"""Can the bridge reach both sides?  Used by the CLI and at start-up."""

from bridge.amqp import connection as amqp_connection
from bridge import backoff
from bridge.zaqar import clients as zaqar_clients


def rabbitmq(conf):
    """None when the control-plane broker answers, else the error text."""
    conn = amqp_connection.connection(conf)
    try:
        conn.ensure_connection(max_retries=1, interval_start=0,
                               interval_step=0, timeout=conf.amqp.
                               connect_timeout)
        return None
    except Exception as exc:
        return backoff.error_text(exc)
    finally:
        conn.release()


def zaqar(conf):
    """None when Zaqar answers (and accepts the credentials)."""
    try:
        zaqar_clients.Clients(conf).check()
        return None
    except Exception as exc:
        return backoff.error_text(exc)
