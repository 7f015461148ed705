"""amqp-zaqar-bridge: oslo.messaging traffic between RabbitMQ and Zaqar."""

import warnings

# oslo.messaging imports oslo.service, which imports eventlet; the bridge
# itself never runs on eventlet, so its deprecation notice is only noise.
warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')
