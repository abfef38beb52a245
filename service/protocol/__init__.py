"""Wire protocol v1: the bytes between cameras, the daemon and subscribers (docs/protocol.md).

One module per direction — :mod:`.ingest` (camera -> daemon), :mod:`.results` (daemon -> subscribers),
:mod:`.control` (requests and replies) — plus :mod:`.endpoints` (defaults, checks) and :mod:`.codec`
(what they share). Both sides import the same definitions; the public names are re-exported here.
"""

from lptem.service.protocol.codec import MAX_PIXELS, MAX_SIDE, PROTOCOL_VERSION, Buffer
from lptem.service.protocol.control import (
    COMMAND_TYPES,
    COMMANDS,
    MAX_OBJECTS,
    MAX_PROMPT_POINTS,
    MAX_REQUEST_BYTES,
    MSD_KEYS,
    QUOTE_CHARS,
    AddObject,
    Command,
    CommandError,
    GetStatus,
    ListObjects,
    Ping,
    RemoveObject,
    Reset,
    SetAutoDetect,
    SetMsd,
    command_request,
    decode_reply,
    encode_reply,
    parse_command,
)
from lptem.service.protocol.endpoints import (
    DEFAULT_CONTROL,
    DEFAULT_INGEST,
    DEFAULT_PREVIEW,
    DEFAULT_PUBLISH,
    EndpointError,
    check_endpoint,
)
from lptem.service.protocol.ingest import (
    DTYPES,
    MAX_FRAME_BYTES,
    FrameRejected,
    IngestFrame,
    RejectReason,
    SeriesMarker,
    decode_ingest,
    encode_header,
    encode_marker,
    wire_dtype_name,
)
from lptem.service.protocol.results import (
    TOPIC_MSD,
    TOPIC_PREVIEW,
    TOPIC_STATUS,
    TOPIC_TRACK,
    TOPICS,
    MsdMessage,
    ParticleMsd,
    PreviewMessage,
    ResultMessage,
    StatusMessage,
    TrackedObject,
    TrackMessage,
    decode_result,
    encode_result,
)

__all__ = [
    "COMMANDS", "COMMAND_TYPES", "DEFAULT_CONTROL", "DEFAULT_INGEST", "DEFAULT_PREVIEW", "DEFAULT_PUBLISH",
    "DTYPES", "MAX_FRAME_BYTES", "MAX_OBJECTS", "MAX_PIXELS", "MAX_PROMPT_POINTS", "MAX_REQUEST_BYTES",
    "MAX_SIDE", "MSD_KEYS", "PROTOCOL_VERSION", "QUOTE_CHARS", "TOPICS", "TOPIC_MSD", "TOPIC_PREVIEW",
    "TOPIC_STATUS", "TOPIC_TRACK", "AddObject", "Buffer", "Command", "CommandError", "EndpointError",
    "FrameRejected", "GetStatus", "IngestFrame", "ListObjects", "MsdMessage", "ParticleMsd", "Ping",
    "PreviewMessage", "RejectReason", "RemoveObject", "Reset", "ResultMessage", "SeriesMarker",
    "SetAutoDetect", "SetMsd", "StatusMessage", "TrackMessage", "TrackedObject", "check_endpoint",
    "command_request", "decode_ingest", "decode_reply", "decode_result", "encode_header", "encode_marker",
    "encode_reply", "encode_result", "parse_command", "wire_dtype_name",
]  # fmt: skip
