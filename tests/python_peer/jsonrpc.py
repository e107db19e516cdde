"""JSON-RPC 2.0 over newline-delimited JSON, from the specification (jsonrpc.org/specification).

A frame is one line: a request, a notification or a batch. Request ids are kept as the raw JSON
text the peer wrote and echoed byte for byte, so fractional, huge and escaped ids survive.
"""

import json

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


class RpcError(Exception):
    """A JSON-RPC error object to answer with."""

    def __init__(self, code, message, data=None):
        super().__init__(f"{code} {message}")
        self.code, self.message, self.data = code, message, data

    def to_json(self):
        """The error object."""
        error = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def _skip(text, index):
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index


def raw_members(text):
    """The members of the JSON object `text` (already known to be valid JSON) as
    `[(name, raw value text)]`, in order, duplicates kept."""
    members = []
    index = _skip(text, 1)
    if text[index] == "}":
        return members
    while True:
        name, index = json.decoder.scanstring(text, index + 1)
        index = _skip(text, index)
        index = _skip(text, index + 1)  # the ':'
        _, end = _DECODER.raw_decode(text, index)
        members.append((name, text[index:end]))
        index = _skip(text, end)
        if text[index] == "}":
            return members
        index = _skip(text, index + 1)  # the ','


def raw_items(text):
    """The items of the JSON array `text` (already known to be valid JSON) as raw texts."""
    items = []
    index = _skip(text, 1)
    if text[index] == "]":
        return items
    while True:
        _, end = _DECODER.raw_decode(text, index)
        items.append(text[index:end])
        index = _skip(text, end)
        if text[index] == "]":
            return items
        index = _skip(text, index + 1)


class Call:
    """A valid request (`id` is its raw text) or notification (`id` is None)."""

    def __init__(self, method, params, raw_id):
        self.method, self.params, self.id = method, params, raw_id


def _request(raw):
    """One member of a frame: a `Call`, or the error response text an invalid one gets."""
    if not raw.startswith("{"):
        return response(None, error=RpcError(INVALID_REQUEST, "Invalid Request", "a request must be a JSON object"))
    members = raw_members(raw)
    names = [name for name, _ in members]
    found = dict(members)
    raw_id = found.get("id")
    if raw_id is not None and not (raw_id[0] in '"-0123456789' or raw_id == "null"):
        return response(None, error=RpcError(INVALID_REQUEST, "Invalid Request",
                                              "`id` must be a string, a number or null"))

    def invalid(detail):
        return response(raw_id, error=RpcError(INVALID_REQUEST, "Invalid Request", detail))

    for name in ("jsonrpc", "method", "params", "id"):
        if names.count(name) > 1:
            return response(None, error=RpcError(INVALID_REQUEST, "Invalid Request", f"`{name}` appears twice"))
    if "jsonrpc" not in found or json.loads(found["jsonrpc"]) != "2.0":
        return invalid('`jsonrpc` must be "2.0"')
    if "method" not in found or not found["method"].startswith('"'):
        return invalid("`method` must be a string")
    params = None
    if "params" in found:
        if found["params"][0] not in "[{":
            return invalid("`params` must be an object or an array")
        params = json.loads(found["params"])
    return Call(json.loads(found["method"]), params, raw_id)


def parse(frame):
    """A frame (bytes) as `(batch, entries)`: each entry a `Call` or an error response text;
    `batch` is None for a frame that is one error (a parse error, an empty batch)."""
    try:
        text = frame.decode("utf-8")
        json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        return None, [response(None, error=RpcError(PARSE_ERROR, "Parse error", str(error)))]
    text = text.strip(_WHITESPACE)
    if text.startswith("["):
        items = raw_items(text)
        if not items:
            return None, [response(None, error=RpcError(INVALID_REQUEST, "Invalid Request",
                                                         "an empty batch: a batch holds at least one request"))]
        return True, [_request(item) for item in items]
    return False, [_request(text)]


def response(raw_id, result=None, error=None):
    """One response as JSON text; `raw_id` is the request id's raw text (None: `null`)."""
    member = ('"error":' + json.dumps(error.to_json())) if error else ('"result":' + json.dumps(result))
    return '{"jsonrpc":"2.0",' + member + ',"id":' + (raw_id if raw_id is not None else "null") + "}"


def reply(batch, answers):
    """The frame answering a frame's responses (None: nothing to send)."""
    if batch:
        return "[" + ",".join(answers) + "]" if answers else None
    return answers[0] if answers else None


def request(method, params, request_id):
    """A request as one line of JSON text (no newline)."""
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": request_id})
