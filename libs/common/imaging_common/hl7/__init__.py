"""HL7 v2 over MLLP: messages (message.py), MSH-18 charsets (charset.py), framing, server and
client (mllp.py), their counters and correlation ids (observe.py), acknowledgements with ERR
(ack.py), and `MessageService` which ties them into "decode -> parse -> handle -> ACK" for any
receiving service.
"""

from imaging_common.hl7.ack import HL7Error, build_ack
from imaging_common.hl7.charset import UnsupportedCharset, decode
from imaging_common.hl7.message import HL7ParseError, Message, build_msh, build_segment
from imaging_common.hl7.mllp import MLLPClient, MLLPServer
from imaging_common.hl7.observe import HL7Metrics
from imaging_common.hl7.receiver import MessageService

__all__ = [
    "HL7Error", "HL7Metrics", "HL7ParseError", "MLLPClient", "MLLPServer", "Message", "MessageService",
    "UnsupportedCharset", "build_ack", "build_msh", "build_segment", "decode",
]
