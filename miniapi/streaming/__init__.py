"""Sans-IO codecs for the apiserver's and kubelet's streaming subresources (exec, attach, port-forward).

No module here does I/O or imports asyncio: bytes (or WebSocket message payloads) go in, events
come out, bytes to send are returned. The thin asyncio adapters live next to them (``*_io``).

* :mod:`.channel`        ``v5/v4/base64.channel.k8s.io`` framing, Status builders, negotiation
* :mod:`.spdy`           SPDY/3.1 frame parser and encoders (:mod:`.spdy_frames`, :mod:`.spdy_headers`)
* :mod:`.spdy_session`   SPDY/3.1 session: streams, pings, GOAWAY, flow control
* :mod:`.portforward`    ``portforward.k8s.io`` on a SPDY session (kubectl)
* :mod:`.portforward_ws` port-forward on ``v4.channel.k8s.io`` (Python client, kubelet)
* :mod:`.portforward_io` the kubelet's asyncio adapter for both (pod sockets, backpressure)
* :mod:`.bytestream_io`  chunk queues and TCP streams without StreamReader's copies
"""

from miniapi.streaming.channel import ChannelProtocol, negotiate
from miniapi.streaming.errors import LocalProtocolError, ProtocolError, StreamingError
from miniapi.streaming.portforward import PortForwardServer
from miniapi.streaming.portforward_ws import WsPortForwardClient, WsPortForwardServer
from miniapi.streaming.spdy import FrameParser
from miniapi.streaming.spdy_session import Role, SpdySession

__all__ = ["ChannelProtocol", "FrameParser", "LocalProtocolError", "PortForwardServer", "ProtocolError", "Role",
           "SpdySession", "StreamingError", "WsPortForwardClient", "WsPortForwardServer", "negotiate"]
