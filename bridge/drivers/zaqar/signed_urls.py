"""The pre-signed Zaqar URLs of a guest (``auth_strategy = signed_url``).

Zaqar signs a URL for one queue (``POST /v2/queues/Q/share``): its
``paths`` are that queue's resources (``/v2/queues/Q/messages``...).  A
guest agent uses several queues (the ones it serves, the ones it casts
to, the bridge's reply queue, its own reply queue), so it gets one signed
URL per queue:

* the ``signed_url_signature``, ``_expires``, ``_paths`` and ``_methods``
  options give one;
* ``signed_url_file`` gives any number: a JSON file holding one object or
  a list of objects, each with the fields ``signature``, ``expires``,
  ``paths``, ``methods`` and ``project`` (default: the ``project_id``
  option), exactly as
  ``amqp-zaqar-bridge-manage signed-url --format json`` prints them.

:func:`load` maps each queue to its signed URL and says in one line what
is wrong with a file or an entry.
"""

import json

FIELDS = ('signature', 'expires', 'paths', 'methods')
PATH_PREFIX = '/v2/queues/'


class SignedUrlError(ValueError):
    """A signed URL the driver can't use; the message says which."""


def _queue_of(paths, where):
    queues = set()
    for path in paths:
        if not isinstance(path, str) or not path.startswith(PATH_PREFIX):
            raise SignedUrlError('%s: path %r is not a Zaqar queue path '
                                 '(%s<queue>/...)' % (where, path,
                                                      PATH_PREFIX))
        queues.add(path[len(PATH_PREFIX):].split('/', 1)[0])
    if len(queues) != 1:
        raise SignedUrlError('%s: its paths must name exactly one queue, '
                             'got %s' % (where, sorted(queues) or 'none'))
    return queues.pop()


def _entry(raw, project, where):
    if not isinstance(raw, dict):
        raise SignedUrlError('%s: expected an object with the fields %s'
                             % (where, ', '.join(FIELDS)))
    missing = [f for f in FIELDS if not raw.get(f)]
    if missing:
        raise SignedUrlError('%s: missing %s' % (where, ', '.join(missing)))
    project = raw.get('project') or project
    if not project:
        raise SignedUrlError('%s: no project (set project_id)' % where)
    entry = {'signature': str(raw['signature']),
             'expires': str(raw['expires']),
             'paths': _as_list(raw['paths']),
             'methods': _as_list(raw['methods']),
             'project': str(project)}
    return _queue_of(entry['paths'], where), entry


def _as_list(value):
    if isinstance(value, str):
        return [v.strip() for v in value.split(',') if v.strip()]
    return list(value)


def _read_file(path):
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as exc:
        raise SignedUrlError('signed_url_file %s: %s' % (path, exc.strerror))
    except ValueError as exc:
        raise SignedUrlError('signed_url_file %s: not JSON (%s)'
                             % (path, exc))
    return data if isinstance(data, list) else [data]


def load(opts, project=None):
    """``{queue: entry}`` from the options and ``signed_url_file``.

    ``project`` (default: the ``project_id`` option) is the one of the
    entries that do not name theirs.
    """
    project = project or opts.project_id
    urls = {}
    if opts.signed_url_signature or opts.signed_url_paths:
        queue, entry = _entry(
            {'signature': opts.signed_url_signature,
             'expires': opts.signed_url_expires,
             'paths': opts.signed_url_paths,
             'methods': opts.signed_url_methods},
            project, 'the signed_url_* options')
        urls[queue] = entry
    if opts.signed_url_file:
        for index, raw in enumerate(_read_file(opts.signed_url_file)):
            queue, entry = _entry(raw, project, 'signed_url_file '
                                  '%s entry %d' % (opts.signed_url_file,
                                                   index + 1))
            urls[queue] = entry
    if not urls:
        raise SignedUrlError('auth_strategy = signed_url needs the '
                             'signed_url_signature, _expires, _paths and '
                             '_methods options or a signed_url_file')
    return urls


def auth_opts(entry):
    """zaqarclient's ``signed-url`` auth backend options for one entry."""
    return {'backend': 'signed-url',
            'options': {'os_project_id': entry['project'],
                        'signature': entry['signature'],
                        'expires': entry['expires'],
                        'paths': entry['paths'],
                        'methods': entry['methods']}}
