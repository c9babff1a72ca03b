"""aio-pika wrapper: connection, topology, confirmed publishing, dead-lettering, RPC client."""

from libs.bus.bus import Bus, PublishFailed
from libs.bus.codec import InvalidMessage, from_amqp, to_amqp
from libs.bus.rpc import BrokerUnavailable, RpcClient, RpcError, RpcTimeout, ServiceUnavailable

__all__ = [
    "BrokerUnavailable",
    "Bus",
    "InvalidMessage",
    "PublishFailed",
    "RpcClient",
    "RpcError",
    "RpcTimeout",
    "ServiceUnavailable",
    "from_amqp",
    "to_amqp",
]
