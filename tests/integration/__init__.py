"""Integration tests: real RabbitMQ and PostgreSQL."""
