#!/usr/bin/env bash
# Start local RabbitMQ and PostgreSQL if installed but not answering; say so if missing.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {  # port, name
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 1; done
  echo "ensure-services: $2 did not open port $1 within 60 s" >&2; return 1
}

if [ -n "${LOCKGATE_AMQP_URL:-}" ] && [[ "$LOCKGATE_AMQP_URL" != *"127.0.0.1"* && "$LOCKGATE_AMQP_URL" != *"localhost"* ]]; then
  echo "ensure-services: LOCKGATE_AMQP_URL points elsewhere; not managing RabbitMQ"
elif port_open 5672; then
  :
elif command -v rabbitmq-server >/dev/null; then
  echo "ensure-services: starting RabbitMQ"
  rabbitmq-server -detached
  wait_port 5672 RabbitMQ
  rabbitmqctl -q await_startup --timeout 60 || true  # fully booted, not just listening
else
  echo "ensure-services: RabbitMQ is not installed; tests will use testcontainers if Docker runs"
fi

if [ -n "${LOCKGATE_DATABASE_URL:-}" ] && [[ "$LOCKGATE_DATABASE_URL" != *"127.0.0.1"* && "$LOCKGATE_DATABASE_URL" != *"localhost"* ]]; then
  echo "ensure-services: LOCKGATE_DATABASE_URL points elsewhere; not managing PostgreSQL"
elif port_open 5432; then
  :
elif command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  echo "ensure-services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  wait_port 5432 PostgreSQL
else
  echo "ensure-services: PostgreSQL is not installed; tests will use testcontainers if Docker runs"
fi
