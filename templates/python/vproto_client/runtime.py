"""The schema-independent part of vproto_client: envelopes, version conversion, validation,
transports and the negotiating call.

Copied unchanged by `cargo xtask codegen` from templates/python/vproto_client/runtime.py; the
generated modules (descriptors, objects, versions, errors, services) stand on it. Conversion
follows vproto's support crate (support/src/wire/convert.rs), which follows
oslo.versionedobjects: written at an older version, an object drops the fields that version
does not carry, base-class fields follow the base version the object version carries, and
children are written at the version their parent's version pins (or a manifest names). Read
from an older version, absent fields get their defaults. Envelopes are written with sorted
keys and `versioned_object.changes` sorted, so `dumps(value)` equals the Rust side's
`serde_json::to_string` byte for byte.
"""

from __future__ import annotations

import dataclasses
import http.client
import ipaddress
import itertools
import json
import re
import socket
import threading
import urllib.parse
import uuid
from importlib import resources
from typing import Any, Dict, List, Optional, Tuple

import jsonschema
import referencing
import referencing.jsonschema

NAME = "versioned_object.name"
NAMESPACE = "versioned_object.namespace"
VERSION = "versioned_object.version"
DATA = "versioned_object.data"
CHANGES = "versioned_object.changes"
ENVELOPE_KEYS = (NAME, NAMESPACE, VERSION, DATA, CHANGES)

_VERSION = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")


class _Unset:
    """The value of a field that is absent (not sent at all), as opposed to `None` (`null`)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self):
        return "UNSET"

    def __bool__(self):
        return False

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


#: An optional field or param that is not sent.
UNSET: Any = _Unset()


class WireError(ValueError):
    """A value that does not fit the schema, with where (`path`, a JSON pointer) and why."""

    def __init__(self, path: str, why: str):
        super().__init__(f"{path or '/'}: {why}")
        self.path, self.why = path, why


def parse_version(text: Any, path: str = "") -> Tuple[int, int]:
    """`MAJOR.MINOR` as a tuple of ints."""
    if not isinstance(text, str) or not _VERSION.match(text):
        raise WireError(path, f"{text!r} is not a MAJOR.MINOR version")
    major, minor = text.split(".")
    return int(major), int(minor)


def _child_path(path: str, key: Any) -> str:
    return f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"


def dumps(value: Any) -> str:
    """`value` as compact JSON with sorted keys: the bytes the Rust side writes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# --------------------------------------------------------------------------------------------
# Descriptors (filled in by the generated `descriptors` module)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """One field an object declares itself."""

    name: str
    since: Tuple[int, int]
    removed: Optional[Tuple[int, int]]
    required: bool
    nullable: bool
    default: Any  # UNSET when the field has none
    type: Dict[str, Any]
    child: Optional[Tuple[str, List[Tuple[Tuple[int, int], Tuple[int, int]]]]]

    def exists_at(self, version: Tuple[int, int]) -> bool:
        """Whether the owner at `version` carries the field."""
        return self.since <= version and (self.removed is None or version < self.removed)


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    """What conversion needs to know about one object."""

    name: str
    namespace: str
    versioned: bool
    version: Tuple[int, int]
    versions: List[Tuple[int, int]]
    base: Optional[Tuple[str, List[Tuple[Tuple[int, int], Tuple[int, int]]]]]
    tolerate_unknown_fields: bool
    is_abstract: bool
    fields: List[FieldInfo]


def _v(text: str) -> Tuple[int, int]:
    return parse_version(text)


def _text(version: Tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def _pairs(pairs: List[Tuple[str, str]]) -> List[Tuple[Tuple[int, int], Tuple[int, int]]]:
    return [(_v(a), _v(b)) for a, b in pairs]


def make_object(spec: Dict[str, Any]) -> ObjectInfo:
    """An `ObjectInfo` from the generated descriptor literal."""
    fields = [
        FieldInfo(
            name=f["name"], since=_v(f["since"]), removed=_v(f["removed"]) if f["removed"] else None,
            required=f["required"], nullable=f["nullable"],
            default=json.loads(f["default"]) if f["default"] is not None else UNSET, type=f["type"],
            child=(f["child"]["object"], _pairs(f["child"]["versions"])) if f["child"] else None)
        for f in spec["fields"]
    ]
    base = (spec["base"]["object"], _pairs(spec["base"]["versions"])) if spec["base"] else None
    return ObjectInfo(name=spec["name"], namespace=spec["namespace"], versioned=spec["versioned"],
                      version=_v(spec["version"]), versions=[_v(v) for v in spec["versions"]], base=base,
                      tolerate_unknown_fields=spec["tolerate_unknown_fields"], is_abstract=spec["is_abstract"],
                      fields=fields)


def mapped_version(pairs, version):
    """The version the last pair whose `from` is not newer than `version` maps to."""
    found = None
    for start, to in pairs:
        if start <= version:
            found = to
    return found


class Registry:
    """Every object of the schema, and the classes generated for them."""

    def __init__(self, objects: Dict[str, ObjectInfo]):
        self.objects = objects
        self.classes: Dict[str, type] = {}

    def info(self, name: str, path: str = "") -> ObjectInfo:
        """The object `name`; WireError when the schema has none."""
        if name not in self.objects:
            raise WireError(path, f"unknown object {name!r}")
        return self.objects[name]

    def lineage(self, info: ObjectInfo, version, path: str = ""):
        """The object and each of its bases, with the version of each that applies at `version`."""
        chain = [(info, version)]
        current, at = info, version
        while current.base is not None:
            base_name, pairs = current.base
            at = mapped_version(pairs, at)
            if at is None:
                raise WireError(path, f"{current.name} {_text(chain[-1][1])} carries no version of {base_name}")
            current = self.info(base_name, path)
            chain.append((current, at))
            if len(chain) > len(self.objects):
                raise WireError(path, f"{info.name}'s bases form a cycle")
        return chain

    def base_version_at(self, info: ObjectInfo, version, base: str):
        """The version of `base` that `info` at `version` carries, or None."""
        for obj, at in self.lineage(info, version):
            if obj.name == base:
                return at
        return None

    # ---------------------------------------------------------------- conversion of wire data

    def check_version(self, info: ObjectInfo, version, path: str = "") -> None:
        """Fails unless `version` is one of the object's versions."""
        if version > info.version:
            raise WireError(path, f"{info.name} {_text(version)} is newer than {_text(info.version)}, "
                                  "the newest this client knows")
        if version not in info.versions:
            raise WireError(path, f"{info.name} has no version {_text(version)} "
                                  f"(it has {', '.join(map(_text, info.versions))})")

    def parse_envelope(self, value: Any, path: str = ""):
        """`(info, version, data, changes)` of a checked envelope."""
        if not isinstance(value, dict):
            raise WireError(path, f"expected a versioned object envelope, found {type(value).__name__}")
        for key in value:
            if key not in ENVELOPE_KEYS:
                raise WireError(path, f"unexpected key `{key}`")
        for key in (NAME, NAMESPACE, VERSION):
            if not isinstance(value.get(key), str):
                raise WireError(path, f"`{key}` must be a string")
        info = self.info(value[NAME], path)
        if not info.versioned:
            raise WireError(path, f"{info.name} is not a versioned object")
        if value[NAMESPACE] != info.namespace:
            raise WireError(path, f"{info.name} belongs to namespace `{info.namespace}`, not `{value[NAMESPACE]}`")
        version = parse_version(value[VERSION], path)
        self.check_version(info, version, path)
        data = value.get(DATA)
        if not isinstance(data, dict):
            raise WireError(path, f"`{DATA}` must be an object")
        changes = value.get(CHANGES)
        if changes is not None and not (isinstance(changes, list) and all(isinstance(c, str) for c in changes)):
            raise WireError(path, f"`{CHANGES}` must be a list of field names")
        return info, version, data, changes

    def fill_defaults(self, info: ObjectInfo, data: dict, version, path: str = "") -> None:
        """Fills in the default of every absent field that has one."""
        for obj, _ in self.lineage(info, version, path):
            for field in obj.fields:
                if field.removed is None and field.default is not UNSET and field.name not in data:
                    data[field.name] = json.loads(json.dumps(field.default))

    def backport_data(self, info: ObjectInfo, data: dict, target, manifest, path: str = "") -> None:
        """Converts the fields of `info` in `data` (at the current version) down to `target`."""
        for obj, version in self.lineage(info, target, path):
            for field in obj.fields:
                if not field.exists_at(version):
                    data.pop(field.name, None)
                    continue
                if field.removed is not None and field.name not in data and field.default is not UNSET:
                    data[field.name] = json.loads(json.dumps(field.default))
                if field.child is None or field.name not in data:
                    continue
                self._convert_children(field.child, version, data[field.name], manifest,
                                       _child_path(path, field.name))

    def _convert_children(self, child, owner_version, value, manifest, path):
        if value is None:
            return
        if isinstance(value, list):
            for index, item in enumerate(value):
                self._convert_children(child, owner_version, item, manifest, _child_path(path, index))
            return
        if isinstance(value, dict) and NAME not in value:
            for key, item in value.items():
                self._convert_children(child, owner_version, item, manifest, _child_path(path, key))
            return
        if not isinstance(value, dict):
            raise WireError(path, f"expected a {child[0]} object, found {type(value).__name__}")
        to = self._child_target(child, value.get(NAME) or "", owner_version, manifest, path)
        if to is not None:
            self.backport_envelope(value, to, manifest, path)

    def _child_target(self, child, concrete, owner_version, manifest, path):
        declared, pairs = child
        if manifest is not None:
            found = manifest.get(concrete, manifest.get(declared))
            return parse_version(found, path) if isinstance(found, str) else found
        pinned = mapped_version(pairs, owner_version)
        if pinned is None:
            return None
        if concrete == declared:
            return pinned
        info = self.info(concrete, path)
        for version in reversed(info.versions):
            base = self.base_version_at(info, version, declared)
            if base is not None and base <= pinned:
                return version
        raise WireError(path, f"no version of {concrete} carries {declared} {_text(pinned)} or older")

    def backport_envelope(self, value: dict, to, manifest=None, path: str = "") -> None:
        """Converts one envelope in place to version `to` (down, or up by filling defaults)."""
        info, start, data, _ = self.parse_envelope(value, path)
        self.check_version(info, to, path)
        data = dict(data)
        if to > start:
            self.fill_defaults(info, data, start, path)
        if to != info.version or start != info.version or manifest is not None:
            self.backport_data(info, data, to, manifest, path)
        if isinstance(value.get(CHANGES), list):
            value[CHANGES] = [name for name in value[CHANGES] if name in data]
            if not value[CHANGES]:
                del value[CHANGES]
        value[VERSION] = _text(to)
        value[DATA] = data

    def backport_named(self, value: Any, name: str, to, path: str = "") -> int:
        """Converts every envelope of object `name` in `value`, at any depth, to `to` (in place),
        as a client does after UnsupportedVersion named that object; returns how many."""
        if isinstance(value, dict) and value.get(NAME) == name:
            self.backport_envelope(value, to, None, path)
            return 1
        converted = 0
        if isinstance(value, dict):
            for key, item in value.items():
                converted += self.backport_named(item, name, to, _child_path(path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                converted += self.backport_named(item, name, to, _child_path(path, index))
        return converted

    def envelope(self, info: ObjectInfo, version, data: dict, changes) -> dict:
        """An envelope; `changes` (None: every field) keeps the fields the data holds, sorted."""
        changed = sorted(set(data) if changes is None else {name for name in changes if name in data})
        out = {NAME: info.name, NAMESPACE: info.namespace, VERSION: _text(version), DATA: data}
        if changed:
            out[CHANGES] = changed
        return out

    # ---------------------------------------------------------------- typed values

    def decode(self, type_view: Dict[str, Any], value: Any, path: str = "") -> Any:
        """The typed value of wire `value` of the schema type `type_view` (a TypeView)."""
        kind = type_view["kind"]
        if kind == "named":
            return self.decode(type_view["resolved"], value, path)
        if kind in _SCALARS:
            if not _SCALARS[kind](value):
                raise WireError(path, f"expected {kind}, found {json.dumps(value)[:80]}")
            return value
        if kind == "list":
            if not isinstance(value, list):
                raise WireError(path, f"expected a list, found {type(value).__name__}")
            return [self.decode(type_view["item"], item, _child_path(path, i)) for i, item in enumerate(value)]
        if kind == "map":
            if not isinstance(value, dict):
                raise WireError(path, f"expected a map, found {type(value).__name__}")
            return {key: self.decode(type_view["item"], item, _child_path(path, key)) for key, item in value.items()}
        if kind == "object":
            return self.decode_object(type_view["name"], value, path)
        if kind == "any_of":
            members = type_view["members"] or []
            name = value.get(NAME) if isinstance(value, dict) else None
            if name not in members:
                raise WireError(path, f"expected one of {', '.join(members)}, found {name!r}")
            return self.decode_object(name, value, path)
        raise WireError(path, f"unknown type kind {kind!r}")

    def decode_object(self, name: str, value: Any, path: str = "") -> Any:
        """The generated object `name` read from its wire form (an envelope at any known version,
        or a plain JSON object)."""
        info = self.info(name, path)
        cls = self.classes[name]
        if info.versioned:
            info, version, data, changes = self.parse_envelope(value, path)
            if info.name != name:
                raise WireError(path, f"expected {name}, found {info.name}")
        else:
            if not isinstance(value, dict):
                raise WireError(path, f"expected a {name} object, found {type(value).__name__}")
            version, data, changes = info.version, value, None
        self._check_known_fields(info, data, path)
        data = dict(data)
        self.fill_defaults(info, data, version, path)
        values = {}
        for obj, _ in self.lineage(info, info.version, path):
            for field in obj.fields:
                if field.removed is not None:
                    continue
                field_path = _child_path(path, field.name)
                if field.name not in data:
                    if field.required:
                        raise WireError(field_path, f"{name} requires `{field.name}`")
                    continue
                item = data[field.name]
                if item is None:
                    if not field.nullable:
                        raise WireError(field_path, f"`{field.name}` of {name} cannot be null")
                    values[_attr(cls, field.name)] = None
                    continue
                values[_attr(cls, field.name)] = self.decode(field.type, item, field_path)
        obj = cls(**values)
        if info.versioned:
            # As oslo: an envelope without `changes` marks nothing as changed.
            object.__setattr__(obj, "_changes", list(changes or []))
        return obj

    def _check_known_fields(self, info: ObjectInfo, data: dict, path: str) -> None:
        if info.tolerate_unknown_fields:
            return
        known = {field.name for obj, _ in self.lineage(info, info.version, path) for field in obj.fields}
        for key in data:
            if key not in known:
                raise WireError(_child_path(path, key), f"{info.name} has no field `{key}`")

    def encode(self, value: Any) -> Any:
        """The wire form of a typed value (objects at their current version)."""
        if isinstance(value, VersionedObject):
            return value.to_primitive()
        if isinstance(value, PlainObject):
            return value.to_json()
        if isinstance(value, (list, tuple)):
            return [self.encode(item) for item in value]
        if isinstance(value, dict):
            return {key: self.encode(item) for key, item in value.items()}
        return value


_SCALARS = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def _attr(cls, wire_name: str) -> str:
    return cls._ATTRS.get(wire_name, wire_name)


class _Object:
    """What every generated object has: its registry, descriptor and field names."""

    _REGISTRY: Registry
    _NAME: str
    #: Wire name → attribute name, where they differ (a Python keyword).
    _ATTRS: Dict[str, str] = {}

    @classmethod
    def info(cls) -> ObjectInfo:
        """The object's descriptor."""
        return cls._REGISTRY.objects[cls._NAME]

    def to_data(self) -> dict:
        """The fields at the current version; children as their current envelopes."""
        registry = self._REGISTRY
        data = {}
        for obj, _ in registry.lineage(self.info(), self.info().version):
            for field in obj.fields:
                if field.removed is not None:
                    continue
                value = getattr(self, _attr(type(self), field.name))
                if value is UNSET or (value is None and not field.nullable and not field.required):
                    if field.required:
                        raise WireError(_child_path("", field.name), f"{self._NAME} requires `{field.name}`")
                    continue
                data[field.name] = registry.encode(value)
        return data


class VersionedObject(_Object):
    """An object sent in the `versioned_object.*` envelope."""

    def to_primitive(self, target: Optional[str] = None, manifest: Optional[Dict[str, str]] = None) -> dict:
        """The envelope at `target` (default: the current version), children converted by their
        pins or, when given, by the version manifest (object name → version)."""
        registry, info = self._REGISTRY, self.info()
        version = parse_version(target) if target is not None else info.version
        registry.check_version(info, version)
        data = self.to_data()
        manifest = {key: parse_version(value) for key, value in manifest.items()} if manifest is not None else None
        if version != info.version or manifest is not None:
            registry.backport_data(info, data, version, manifest)
        return registry.envelope(info, version, data, getattr(self, "_changes", None))

    @classmethod
    def from_primitive(cls, value: Any):
        """The object read from an envelope of any version the schema knows."""
        return cls._REGISTRY.decode_object(cls._NAME, value)

    def obj_reset_changes(self) -> None:
        """Marks no field as changed (as oslo's `obj_reset_changes`)."""
        object.__setattr__(self, "_changes", [])

    def obj_what_changed(self) -> List[str]:
        """The fields marked as changed (every set field for an object built here)."""
        changes = getattr(self, "_changes", None)
        return sorted(self.to_data()) if changes is None else sorted(changes)


class PlainObject(_Object):
    """An object sent as a plain JSON object of its fields."""

    def to_json(self) -> dict:
        """The JSON object of its fields."""
        return self.to_data()

    @classmethod
    def from_json(cls, value: Any):
        """The object read from a JSON object."""
        return cls._REGISTRY.decode_object(cls._NAME, value)


# --------------------------------------------------------------------------------------------
# Validation against the published JSON Schema
# --------------------------------------------------------------------------------------------

_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
_PCI = re.compile(r"^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$")
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("uuid")
def _is_uuid(text):
    return not isinstance(text, str) or (bool(_UUID.match(text)) and uuid.UUID(text) is not None)


@FORMATS.checks("mac-address")
def _is_mac(text):
    return not isinstance(text, str) or bool(_MAC.match(text))


@FORMATS.checks("pci-address")
def _is_pci(text):
    return not isinstance(text, str) or bool(_PCI.match(text))


@FORMATS.checks("ipv4", raises=ValueError)
def _is_ipv4(text):
    return not isinstance(text, str) or ipaddress.IPv4Address(text) is not None


@FORMATS.checks("ipv6", raises=ValueError)
def _is_ipv6(text):
    return not isinstance(text, str) or ipaddress.IPv6Address(text) is not None


@FORMATS.checks("ip-address", raises=ValueError)
def _is_ip(text):
    return not isinstance(text, str) or ipaddress.ip_address(text) is not None


@FORMATS.checks("ip-network", raises=ValueError)
def _is_network(text):
    if isinstance(text, str):
        if "/" not in text:
            raise ValueError("no prefix length")
        ipaddress.ip_network(text, strict=False)
    return True


@FORMATS.checks("hostname")
def _is_hostname(text):
    return not isinstance(text, str) or bool(_HOSTNAME.match(text))


@FORMATS.checks("uri")
def _is_uri(text):
    return not isinstance(text, str) or bool(urllib.parse.urlsplit(text).scheme)


@FORMATS.checks("date-time")
def _is_date_time(text):
    return not isinstance(text, str) or bool(_DATE_TIME.match(text))


class Validator:
    """Validators for the `$defs` of the published JSON Schema shipped in the package."""

    def __init__(self, package: str, resource: str = "schema.json"):
        self.document = json.loads(resources.files(package).joinpath(resource).read_text(encoding="utf-8"))
        self._uri = "urn:vproto-client:schema"
        contents = dict(self.document)
        contents["$id"] = self._uri
        resource_ = referencing.Resource.from_contents(contents, default_specification=referencing.jsonschema.DRAFT202012)
        self._registry = referencing.Registry().with_resource(self._uri, resource_)
        self._validators: Dict[str, Any] = {}
        self._lock = threading.Lock()

    def violations(self, definition: str, instance: Any) -> List[Dict[str, str]]:
        """Every violation of `instance` against `$defs/<definition>`, as `{pointer, message}`."""
        with self._lock:
            if definition not in self._validators:
                if definition not in self.document.get("$defs", {}):
                    raise KeyError(f"the schema has no $defs entry {definition!r}")
                schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                          "$ref": f"{self._uri}#/$defs/{definition}"}
                self._validators[definition] = jsonschema.Draft202012Validator(
                    schema, registry=self._registry, format_checker=FORMATS)
            validator = self._validators[definition]
        found = [{"pointer": "".join(_child_path("", p) for p in error.absolute_path), "message": error.message}
                 for error in validator.iter_errors(instance)]
        return sorted(found, key=lambda item: item["pointer"])


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class VprotoError(Exception):
    """Any failure of a call: see the subclasses."""


class RpcError(VprotoError):
    """The server answered a JSON-RPC error the method does not declare."""

    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(f"{code} {message}" + (f": {json.dumps(data)[:500]}" if data is not None else ""))
        self.code, self.message, self.data = code, message, data


class DeclaredError(VprotoError):
    """A declared error of the protocol; the generated subclasses carry `CODE` and `data`."""

    CODE: int = 0
    MESSAGE: str = ""
    DATA_TYPE: Optional[Dict[str, Any]] = None

    def __init__(self, data: Any = None, message: Optional[str] = None):
        super().__init__(f"{type(self).__name__} ({self.CODE} {message or self.MESSAGE})"
                         + (f": {data!r}"[:500] if data is not None else ""))
        self.code, self.message, self.data = self.CODE, message or self.MESSAGE, data


class InvalidParams(VprotoError):
    """Params that do not fit the method's schema; nothing was sent."""

    def __init__(self, method: str, violations: List[Dict[str, str]]):
        listed = "; ".join(f"{v['pointer'] or '/'}: {v['message']}" for v in violations)
        super().__init__(f"{method}: refusing to send invalid params: {listed}")
        self.method, self.violations = method, violations


class InvalidResult(VprotoError):
    """A result that does not fit the method's result type."""


class TransportError(VprotoError):
    """The server cannot be reached, closed the connection, or answered something that is not
    JSON-RPC 2.0."""


# --------------------------------------------------------------------------------------------
# Transports
# --------------------------------------------------------------------------------------------


class LineTransport:
    """Newline-delimited JSON-RPC over a Unix socket or TCP; one call at a time."""

    def __init__(self, sock: socket.socket, address: str, timeout: float):
        self.address = address
        self.sock = sock
        self.sock.settimeout(timeout)
        self.reader = sock.makefile("rb")
        self.lock = threading.Lock()

    def exchange(self, request: dict) -> dict:
        """Sends one request and reads lines until its response (notifications are skipped)."""
        with self.lock:
            try:
                self.sock.sendall((json.dumps(request, separators=(",", ":")) + "\n").encode())
                while True:
                    line = self.reader.readline()
                    if not line:
                        raise TransportError(f"{self.address} closed the connection without answering "
                                             f"{request['method']}")
                    answer = _parse_answer(line, self.address)
                    if isinstance(answer, dict) and "id" not in answer and "method" in answer:
                        continue  # a notification (an event), not the answer
                    return answer
            except OSError as error:
                raise TransportError(f"{self.address}: {error}") from error

    def send(self, notification: dict) -> None:
        """Sends a notification, which is never answered."""
        with self.lock:
            try:
                self.sock.sendall((json.dumps(notification, separators=(",", ":")) + "\n").encode())
            except OSError as error:
                raise TransportError(f"{self.address}: {error}") from error

    def close(self) -> None:
        """Closes the connection."""
        try:
            self.reader.close()
        finally:
            self.sock.close()


class HttpTransport:
    """JSON-RPC over HTTP: `POST /jsonrpc`, one request per POST on a kept-alive connection."""

    def __init__(self, host: str, port: int, address: str, timeout: float, token: Optional[str]):
        self.address = address
        self.connection = http.client.HTTPConnection(host, port, timeout=timeout)
        self.token = token
        self.lock = threading.Lock()

    def exchange(self, request: dict) -> dict:
        """POSTs one request and reads its response."""
        body = json.dumps(request, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        with self.lock:
            try:
                self.connection.request("POST", "/jsonrpc", body=body, headers=headers)
                response = self.connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as error:
                self.connection.close()
                raise TransportError(f"{self.address}: {error}") from error
        if not payload:
            raise TransportError(f"{self.address}: HTTP {response.status} without a body")
        return _parse_answer(payload, self.address)

    def send(self, notification: dict) -> None:
        """POSTs a notification; the server answers it with no body."""
        body = json.dumps(notification, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        with self.lock:
            try:
                self.connection.request("POST", "/jsonrpc", body=body, headers=headers)
                self.connection.getresponse().read()
            except (OSError, http.client.HTTPException) as error:
                self.connection.close()
                raise TransportError(f"{self.address}: {error}") from error

    def close(self) -> None:
        """Closes the connection."""
        self.connection.close()


def _parse_answer(raw: bytes, address: str) -> dict:
    try:
        answer = json.loads(raw)
    except ValueError as error:
        raise TransportError(f"{address}: the answer is not JSON ({error}): {raw[:200]!r}") from error
    if not isinstance(answer, dict) or answer.get("jsonrpc") != "2.0":
        raise TransportError(f"{address}: not a JSON-RPC 2.0 response: {raw[:200]!r}")
    return answer


def _authenticate(transport: LineTransport, token: str) -> None:
    """Presents `token` as the connection's first message (`rpc.auth`, what vproto's `tcp:`
    listeners with credentials expect)."""
    answer = transport.exchange({"jsonrpc": "2.0", "method": "rpc.auth", "params": {"token": token}, "id": 0})
    if "error" in answer:
        transport.close()
        error = answer["error"] if isinstance(answer["error"], dict) else {}
        raise RpcError(error.get("code", 0), f"{transport.address} refused the token: {error.get('message')}",
                       error.get("data"))


def open_transport(address: str, timeout: float = 30.0, token: Optional[str] = None):
    """A transport to `unix:PATH`, `tcp:HOST:PORT` or `http://HOST:PORT`; `token` is presented
    as `rpc.auth` first on `tcp:` and as `Authorization: Bearer` over HTTP (Unix sockets need
    none)."""
    try:
        if address.startswith("unix:"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(address[len("unix:"):])
            except OSError:
                sock.close()
                raise
            return LineTransport(sock, address, timeout)
        if address.startswith("tcp:"):
            host, _, port = address[len("tcp:"):].rpartition(":")
            if not host or not port.isdigit():
                raise ValueError("expected tcp:HOST:PORT")
            sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
            transport = LineTransport(sock, address, timeout)
            if token:
                _authenticate(transport, token)
            return transport
        if address.startswith("http://"):
            parts = urllib.parse.urlsplit(address)
            if not parts.hostname or not parts.port:
                raise ValueError("expected http://HOST:PORT")
            return HttpTransport(parts.hostname, parts.port, address, timeout, token)
    except (OSError, ValueError) as error:
        raise TransportError(f"cannot connect to {address}: {error}") from error
    raise TransportError(f"cannot connect to {address}: expected unix:PATH, tcp:HOST:PORT or http://HOST:PORT")


# --------------------------------------------------------------------------------------------
# Calls
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MethodInfo:
    """What a call needs to know about one method."""

    wire_name: str
    params_def: str
    #: Each param's wire name → (the proxy method's argument name, its TypeView).
    params: Dict[str, Tuple[str, Dict[str, Any]]]
    result: Optional[Dict[str, Any]]
    errors: Dict[int, type]
    negotiates: bool
    notification: bool


class Session:
    """One connection and the calls made on it: params validated before sending, declared errors
    raised typed, UnsupportedVersion answered by backlevelling and retrying once."""

    def __init__(self, transport, registry: Registry, validator: Validator, unsupported_code: Optional[int]):
        self.transport = transport
        self.registry = registry
        self.validator = validator
        self.unsupported_code = unsupported_code
        self.ids = itertools.count(1)
        #: `(method, object, version)` of every backlevel this session made, oldest first.
        self.backlevels: List[Tuple[str, str, str]] = []

    def call(self, method: MethodInfo, params: Dict[str, Any]) -> Any:
        """Calls `method` with typed `params` (by name, UNSET ones left out)."""
        wire = {name: self.registry.encode(value) for name, value in params.items() if value is not UNSET}
        for attempt in (1, 2):
            problems = self.validator.violations(method.params_def, wire)
            if problems:
                raise InvalidParams(method.wire_name, problems)
            request = {"jsonrpc": "2.0", "method": method.wire_name, "params": wire}
            if method.notification:
                self.transport.send(request)
                return None
            request["id"] = next(self.ids)
            answer = self.transport.exchange(request)
            if answer.get("id") != request["id"]:
                raise TransportError(f"{method.wire_name}: the answer's id {answer.get('id')!r} is not "
                                     f"the request's {request['id']}")
            if "error" not in answer:
                return self._result(method, answer.get("result"))
            error = answer["error"]
            if not isinstance(error, dict) or not isinstance(error.get("code"), int):
                raise TransportError(f"{method.wire_name}: a malformed error: {error!r}")
            code, data = error["code"], error.get("data")
            if method.negotiates and code == self.unsupported_code and attempt == 1 and isinstance(data, dict):
                name, version = data.get("object"), data.get("max_version")
                try:
                    converted = self.registry.backport_named(wire, name, parse_version(version))
                except WireError as problem:
                    raise self._declared(method, code, error) from problem
                if converted:
                    self.backlevels.append((method.wire_name, name, version))
                    continue
            raise self._declared(method, code, error)
        raise AssertionError("unreachable")

    def _result(self, method: MethodInfo, result: Any) -> Any:
        if method.result is None:
            if result is not None:
                raise InvalidResult(f"{method.wire_name}: expected a null result, found {json.dumps(result)[:200]}")
            return None
        try:
            return self.registry.decode(method.result, result)
        except WireError as error:
            raise InvalidResult(f"{method.wire_name}: the result does not fit: {error}") from error

    def _declared(self, method: MethodInfo, code: int, error: dict) -> VprotoError:
        cls = method.errors.get(code)
        if cls is None:
            return RpcError(code, str(error.get("message")), error.get("data"))
        data = error.get("data")
        if cls.DATA_TYPE is not None and data is not None:
            try:
                data = self.registry.decode(cls.DATA_TYPE, data)
            except WireError:
                pass  # keep the raw data: the error itself is what matters
        return cls(data, error.get("message"))

    def close(self) -> None:
        """Closes the connection."""
        self.transport.close()


class ServiceProxy:
    """The methods of one service, on a session (generated subclasses add them)."""

    def __init__(self, session: Session):
        self._session = session
