"""console: the operators' HTTP API, a gateway turning each call into a command over RabbitMQ."""
