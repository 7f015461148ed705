"""Printing results: aligned text tables, or JSON with ``--format json``."""

import json


def to_json(value):
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def table(rows, title=None):
    """Rows (dicts with the same keys) as aligned columns."""
    lines = [title] if title else []
    if not rows:
        return '\n'.join(lines + ['(none)'])
    keys = list(rows[0])
    widths = [max(len(k), *(len(str(r[k])) for r in rows)) for k in keys]
    lines.append('  '.join(k.ljust(w) for k, w in zip(keys, widths))
                 .rstrip())
    lines.append('  '.join('-' * w for w in widths))
    for row in rows:
        lines.append('  '.join(str(row[k]).ljust(w)
                               for k, w in zip(keys, widths)).rstrip())
    return '\n'.join(lines)


def show(conf, rows, title=None, json_value=None):
    """Print ``rows`` as the command's ``--format`` asks.

    ``json_value`` replaces ``rows`` in JSON when the machine-readable
    form differs from the table (raw timestamps, full texts...).
    """
    if conf.command.format == 'json':
        print(to_json(rows if json_value is None else json_value))
    else:
        print(table(rows, title))

