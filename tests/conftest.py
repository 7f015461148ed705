# The server fixtures (rabbit, zaqar, unique_name) for unit and functional
# tests alike; see tests/fixtures/servers.py.
pytest_plugins = ['tests.fixtures.servers']
