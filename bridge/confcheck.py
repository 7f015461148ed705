"""What is wrong in the configuration files, in one line.

oslo.config checks a value only when it is read, and says so in its own
terms (``Value for option url from LocationInfo(...) is not valid:
(..., URIReference(...))``); it accepts any option name in a file.  This
module gives the bridge's own words for both:

* :func:`value` reads an option and, for a bad value, raises
  :class:`BadValue` naming the value and what the option allows (from the
  option's type: choices, min/max, URL schemes...);
* :func:`unknown_options` compares the files' sections with the options
  registered for them, as ``oslo-config-validator`` does, so a misspelled
  option is refused instead of silently ignored.
"""

import difflib
import glob
import os
import re

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
from oslo_config import types

# The oslo.config.opts namespaces of a bridge configuration file: the
# bridge's own options and the libraries that read the same file (as in
# etc/amqp-zaqar-bridge-config-generator.conf).
NAMESPACES = ('amqp_zaqar_bridge', 'cotyledon', 'oslo.log')
DEFAULT = 'DEFAULT'
# What oslo.config writes (and then exits 1) for a command line option
# whose value in a file is bad (ConfigOpts._validate_cli_options).
_CLI_VALUE = re.compile(r'^argument --(?P<dest>\w+): Invalid .* value: '
                        r'(?P<value>.*)$')


class BadValue(ValueError):
    """An option whose value oslo.config refuses; the text is one line."""


def _files(conf):
    """The config files ``conf`` read, in the order it read them."""
    files = list(conf.config_file or ())
    for directory in conf.config_dir or ():     # a ListOpt, oddly
        files += sorted(glob.glob(os.path.join(
            os.path.expanduser(directory), '*.conf')))
    return files


def _parse(conf):
    """[(file, {section: {option: [values]}})] for each file ``conf`` read."""
    parsed = []
    for path in _files(conf):
        sections = {}
        try:
            cfg.ConfigParser(path, sections).parse()
        except (OSError, cfg.ParseError):
            continue        # conf() reported it already
        parsed.append((path, sections))
    return parsed


def _raw(conf, group, opt):
    """The text the files give ``opt`` (the last one wins), or None."""
    found = None
    names = {opt.dest, opt.name} | {d.name for d in opt.deprecated_opts
                                    if d.group in (None, group)}
    for _, sections in _parse(conf):
        for name in names:
            values = sections.get(group, {}).get(name)
            if values:
                found = values[-1]
    return found


def _number(kind, low, high):
    low, high = (repr(n).rstrip('0').rstrip('.') if isinstance(n, float)
                 else n for n in (low, high))
    if low is not None and high is not None:
        return '%s from %s to %s' % (kind, low, high)
    if low is not None:
        return '%s of at least %s' % (kind, low)
    if high is not None:
        return '%s of at most %s' % (kind, high)
    return kind


def allowed(type_):
    """What values an option of type ``type_`` takes, in words."""
    if getattr(type_, 'choices', None):
        return 'one of %s' % ', '.join(str(c) for c in type_.choices)
    if isinstance(type_, types.Boolean):
        return 'true or false'
    if isinstance(type_, types.Port):
        return _number('a port number', type_.min, type_.max)
    if isinstance(type_, types.Integer):
        return _number('an integer', type_.min, type_.max)
    if isinstance(type_, types.Number):
        return _number('a number', type_.min, type_.max)
    if isinstance(type_, types.URI):
        text = 'a URL'
        if type_.schemes:
            text += ' with scheme %s' % ' or '.join(sorted(type_.schemes))
        if type_.max_length:
            text += ' of at most %d characters' % type_.max_length
        return text
    if isinstance(type_, types.List):
        return 'a comma-separated list of %s' % allowed(type_.item_type)
    if isinstance(type_, types.Dict):
        values = allowed(type_.value_type)
        return 'comma-separated key:value pairs' + (
            '' if values == 'text' else ', each value %s' % values)
    if isinstance(type_, types.IPAddress):
        return 'an IP address'
    if isinstance(type_, (types.HostAddress, types.HostDomain)):
        return 'an IP address or a host name'
    if isinstance(type_, types.Hostname):
        return 'a host name'
    if isinstance(type_, types.String):
        rules = []
        if type_.regex is not None:
            rules.append('text matching %s' % type_.regex.pattern)
        if type_.max_length:
            rules.append('at most %d characters' % type_.max_length)
        return ', '.join(rules) or 'text'
    return 'a %s' % getattr(type_, 'type_name', 'valid value')


def value(conf, group, opt):
    """``conf``'s value of ``opt`` in ``group`` (``DEFAULT`` or None for
    the default group); a bad value raises :class:`BadValue` saying what
    the option allows."""
    default = group in (None, DEFAULT)
    try:
        return conf[opt.dest] if default else conf[group][opt.dest]
    except (cfg.ConfigFileValueError, ValueError):
        raw = _raw(conf, DEFAULT if default else group, opt)
        given = ' %r' % raw if raw is not None else ''
        raise BadValue('bad value%s: must be %s'
                       % (given, allowed(opt.type))) from None


def bad_cli_value(said):
    """The bridge's line for oslo.config's ``said`` about a command line
    option (oslo.log's ``debug``...) set to a bad value in [DEFAULT]."""
    match = _CLI_VALUE.match(said.strip())
    if not match:
        return None
    for opt in known_options().get(DEFAULT, ()):
        if opt.dest == match.group('dest'):
            return ('[DEFAULT] %s: bad value %r: must be %s'
                    % (opt.dest, match.group('value'), allowed(opt.type)))
    return None


def known_options():
    """{group: [Opt]} of every option a bridge config file may set."""
    from stevedore import named
    known = {}

    def failed(manager, entrypoint, exc):
        raise exc
    for ext in named.NamedExtensionManager(
            'oslo.config.opts', names=NAMESPACES, invoke_on_load=True,
            on_load_failure_callback=failed):
        for group, opts in ext.obj:
            known.setdefault(group or DEFAULT, []).extend(opts)
    return known


def _names(opts, group):
    names = set()
    for opt in opts:
        names |= {opt.dest, opt.name.replace('-', '_')}
        names |= {d.name.replace('-', '_') for d in opt.deprecated_opts
                  if d.name and d.group in (None, group)}
    return names


def _auth_plugin_opts(conf, group, opts):
    """The options of the keystoneauth plugin ``[group] auth_type`` names
    (keystoneauth registers them only when it loads the plugin)."""
    if 'auth_type' not in {opt.dest for opt in opts}:
        return []
    try:
        auth_type = conf[group].auth_type
        if auth_type:
            return ks_loading.get_auth_plugin_conf_options(auth_type)
    except (cfg.NoSuchOptError, ValueError, ks_exc.NoMatchingPlugin):
        pass
    return []


def unknown_options(conf, groups):
    """One line naming the first section with unknown options, or None.

    ``groups`` maps each section to look at to the options it may hold;
    other sections belong to other programs and are not checked.
    """
    for path, sections in _parse(conf):
        for group, opts in groups.items():
            names = _names(list(opts) + _auth_plugin_opts(conf, group, opts),
                           group)
            unknown = [n for n in sections.get(group, ())
                       if n.replace('-', '_') not in names]
            if not unknown:
                continue
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, sorted(names), 1)
                hints.append('%s (did you mean %s?)' % (name, close[0])
                             if close else name)
            return ('[%s] in %s: unknown option%s %s'
                    % (group, path, 's' if len(unknown) > 1 else '',
                       ', '.join(hints)))
    return None
