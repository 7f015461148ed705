"""The ``[zaqar]`` options: where Zaqar is and how the bridge
authenticates (keystoneauth's session and auth options in the same group).
"""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

GROUP = 'zaqar'

OPTS = [
    cfg.URIOpt('url', schemes=['http', 'https'],
               default='http://127.0.0.1:8888',
               help='Endpoint of the Zaqar API (without the /v2 suffix).'),
    cfg.StrOpt('auth_strategy', default='noauth',
               choices=[('noauth', 'zaqar-server without authentication; '
                         'the project is sent in X-Project-ID'),
                        ('keystone', 'keystoneauth1 session from the auth '
                         'options of this group')],
               help='How the bridge authenticates to Zaqar.'),
    cfg.StrOpt('tenant_access', default='service_project',
               choices=[('service_project', 'every queue lives in the '
                         'project of the bridge\'s own token; tenants are '
                         'told apart by queue name only ({tenant} required '
                         'in every zaqar_queue template); guests use '
                         'pre-signed URLs limited to their queues'),
                        ('trusts', 'each tenant\'s queues live in its own '
                         'project, reached with a token scoped by a trust '
                         'from a user of that project to the bridge\'s '
                         'user')],
               help='With auth_strategy = keystone: where each tenant\'s '
                    'queues live and how the bridge reaches them.'),
    cfg.DictOpt('trusts', default={},
                help='With tenant_access = trusts: project id -> trust id. '
                     'A project not listed uses the newest unexpired trust '
                     'whose trustee is the bridge\'s user, found through '
                     'the Keystone API.'),
    cfg.IntOpt('trust_recheck_interval', default=60, min=1,
               help='With tenant_access = trusts: seconds the bridge waits '
                    'before asking Keystone again for a project whose '
                    'trust was missing or refused (its messages are '
                    'dead-lettered meanwhile).'),
    # Not "project_id": the keystone password plugin has that option.
    cfg.StrOpt('noauth_project_id', default='amqp-zaqar-bridge',
               help='With auth_strategy = noauth: the project of the '
                    'bridge\'s own queues (health checks). With keystone, '
                    'the bridge\'s token is scoped by project_name or '
                    'project_id.'),
    cfg.IntOpt('max_messages_post_size', default=262144, min=1024,
               help='Largest request body zaqar-server accepts for one '
                    'POST of messages (its [transport] '
                    'max_messages_post_size). A single message larger than '
                    'this is dead-lettered; batches are cut below it.'),
    cfg.FloatOpt('request_timeout', default=30.0, min=0.1,
                 help='Seconds before a Zaqar request is abandoned and '
                      'retried.'),
]


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)
    ks_loading.register_session_conf_options(conf, GROUP)
    ks_loading.register_auth_conf_options(conf, GROUP)


def list_opts():
    return (OPTS
            + ks_loading.get_session_conf_options()
            + ks_loading.get_auth_common_conf_options()
            + ks_loading.get_auth_plugin_conf_options('password'))
