# The server fixtures (rabbit, zaqar, unique_name) for unit and functional
# tests alike; see tests/fixtures/servers.py.  keystone and zaqar_keystone
# (a real Keystone, a keystone-auth zaqar-server): tests/fixtures/keystone.py.
pytest_plugins = ['tests.fixtures.servers', 'tests.fixtures.keystone']
