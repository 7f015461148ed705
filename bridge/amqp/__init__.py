"""AMQP adapter: connection, topology (exchanges, queues, dead letters),
confirmed publisher, consumer helpers, acknowledgements."""
