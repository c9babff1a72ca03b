"""aio-pika wrapper: connection, topology, confirmed publishing, dead-lettering, RPC client."""

from libs.bus.bus import Bus, PublishFailed
from libs.bus.codec import InvalidMessage, from_amqp, to_amqp
from libs.bus.rpc import RpcClient, RpcError, RpcTimeout, ServiceUnavailable

__all__ = [
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
