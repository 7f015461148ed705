# The server fixtures (rabbit, zaqar, unique_name) for unit and functional
# tests alike; see tests/fixtures/servers.py.  keystone and zaqar_keystone
# (a real Keystone, a keystone-auth zaqar-server): tests/fixtures/keystone.py.
# rabbit_nodes and private_rabbit (RabbitMQ nodes of the tests' own, to
# stop, kill or inspect with rabbitmqctl): tests/fixtures/rabbit_node.py.
# Skips of a required area fail under CI=true: tests/fixtures/required.py.
pytest_plugins = ['tests.fixtures.servers', 'tests.fixtures.keystone',
                  'tests.fixtures.rabbit_node']
