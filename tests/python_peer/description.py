"""vproto's published description, read the way any third party would read it.

Everything here comes from the two published files, schema/vproto.openrpc.json (methods,
params, results, declared errors) and the schemas inside it (components/schemas), validated with
the `jsonschema` package. No Rust, no generated code.

What this module derives from the description:

- `Description.method(name)`: a method's params (in positional order), declared errors by name
  (`x-name`), and validators for its params object, result and each error's `data`;
- `Description.versions(object)`: the versions of a versioned object (the `enum` of its
  `versioned_object.version`, oldest first), so `newest()` is the highest a peer supports;
- `backlevel(envelope, version)`: an object rewritten at an older version.

Backlevelling rule (the honest minimum the description supports): every field of a versioned
object carries `x-since: "<Object> <version>"`. Written at an older version V of the object O,
a field whose `x-since` names O itself at a version newer than V is dropped (and taken out of
`versioned_object.changes`); fields introduced by a base class (`x-since` naming another object)
are kept. Nested versioned objects are not touched: the object named by UnsupportedVersion is
backlevelled wherever it occurs. A major version other than the object's own cannot be reached
this way and is refused.
"""

import ipaddress
import json
import os
import re
import uuid

import jsonschema
import referencing
import referencing.jsonschema

NAME = "versioned_object.name"
NAMESPACE = "versioned_object.namespace"
VERSION = "versioned_object.version"
DATA = "versioned_object.data"
CHANGES = "versioned_object.changes"

#: The published OpenRPC document, relative to this file.
DEFAULT_OPENRPC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schema",
                               "vproto.openrpc.json")

_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
_PCI = re.compile(r"^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$")
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")

FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("uuid")
def _is_uuid(text):
    """The canonical hyphenated 8-4-4-4-12 hex form (the description of Uuid)."""
    if not isinstance(text, str):
        return True
    return bool(_UUID.match(text)) and uuid.UUID(text) is not None


@FORMATS.checks("mac-address")
def _is_mac(text):
    """Six colon-separated pairs of hex digits (the description of MACAddress)."""
    return not isinstance(text, str) or bool(_MAC.match(text))


@FORMATS.checks("pci-address", raises=ValueError)
def _is_pci(text):
    """domain:bus:slot.function, such as 0000:02:00.1 (the description of PCIAddress)."""
    return not isinstance(text, str) or bool(_PCI.match(text))


@FORMATS.checks("ip-address", raises=ValueError)
def _is_ip(text):
    """An IPv4 or IPv6 address without prefix length (the description of IPAddress)."""
    if isinstance(text, str):
        ipaddress.ip_address(text)
    return True


@FORMATS.checks("ip-network", raises=ValueError)
def _is_network(text):
    """An IPv4 or IPv6 network in CIDR notation, address and prefix length (IPNetwork)."""
    if isinstance(text, str):
        if "/" not in text:
            raise ValueError("no prefix length")
        ipaddress.ip_network(text, strict=False)
    return True


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(text):
    """RFC 3339 date-time."""
    if isinstance(text, str) and not re.match(
            r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", text):
        raise ValueError("not RFC 3339")
    return True


def parse_version(text):
    """`MAJOR.MINOR` as a tuple of ints; ValueError otherwise."""
    if not isinstance(text, str) or not re.match(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$", text):
        raise ValueError(f"{text!r} is not a MAJOR.MINOR version")
    major, minor = text.split(".")
    return int(major), int(minor)


def pointer(path):
    """A JSON pointer for a path of keys and indexes."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


class Method:
    """One method of the description."""

    def __init__(self, description, entry):
        self.name = entry["name"]
        self.params = [param["name"] for param in entry.get("params", [])]
        self.errors = {error["x-name"]: error for error in entry.get("errors", []) if "x-name" in error}
        self.params_validator = description.validator(f"{self.name}.params")
        self.result_validator = description.validator_for(entry["result"]["schema"])

    def declares(self, error_name):
        """Whether the method declares the error named `error_name` (its `x-name`)."""
        return error_name in self.errors

    def error(self, error_name, data):
        """The declared error `error_name` as a JSON-RPC error object with `data`."""
        declared = self.errors[error_name]
        return {"code": declared["code"], "message": declared["message"], "data": data}


class Description:
    """The published OpenRPC document and what can be derived from it."""

    def __init__(self, path=DEFAULT_OPENRPC):
        with open(path, encoding="utf-8") as file:
            self.document = json.load(file)
        self.schemas = self.document["components"]["schemas"]
        self._uri = "urn:vproto:openrpc"
        resource = referencing.Resource.from_contents(
            self.document, default_specification=referencing.jsonschema.DRAFT202012)
        self._registry = referencing.Registry().with_resource(self._uri, resource)
        self._validators = {}
        self.methods = {entry["name"]: Method(self, entry) for entry in self.document["methods"]}

    def validator_for(self, schema):
        """A 2020-12 validator (formats asserted) for a schema whose `$ref`s point into the document."""
        key = json.dumps(schema, sort_keys=True)
        if key not in self._validators:
            wrapped = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": self._uri + "/wrapper",
                       "allOf": [self._absolute(schema)]}
            self._validators[key] = jsonschema.Draft202012Validator(
                wrapped, registry=self._registry, format_checker=FORMATS)
        return self._validators[key]

    def _absolute(self, schema):
        """`schema` with its document-local `$ref`s made absolute."""
        if isinstance(schema, dict):
            return {key: (self._uri + value if key == "$ref" and value.startswith("#") else self._absolute(value))
                    for key, value in schema.items()}
        if isinstance(schema, list):
            return [self._absolute(item) for item in schema]
        return schema

    def validator(self, component):
        """A validator for `#/components/schemas/<component>`."""
        return self.validator_for({"$ref": "#/components/schemas/" + component})

    @staticmethod
    def violations(validator, instance):
        """Every violation of `instance`, as `{pointer, message}`, sorted by pointer."""
        found = [{"pointer": pointer(error.absolute_path), "message": error.message}
                 for error in validator.iter_errors(instance)]
        return sorted(found, key=lambda item: item["pointer"])

    def is_versioned(self, name):
        """Whether `name` is a versioned object of the description (an envelope schema)."""
        schema = self.schemas.get(name)
        return isinstance(schema, dict) and VERSION in schema.get("properties", {})

    def versions(self, name):
        """The versions of the versioned object `name`, oldest first."""
        listed = self.schemas[name]["properties"][VERSION]["enum"]
        return sorted(listed, key=parse_version)

    def newest(self, name):
        """The highest version of `name` the description (so this peer) supports."""
        return self.versions(name)[-1]

    def fields(self, name):
        """The field schemas of the versioned object `name`'s data."""
        return self.schemas[name]["properties"][DATA].get("properties", {})

    def too_new(self, value):
        """The first versioned object in `value` (depth first, parents before children, members in
        key order) whose version is newer than this peer supports: `(name, newest)`, else None."""
        if isinstance(value, dict):
            name, version = value.get(NAME), value.get(VERSION)
            if isinstance(name, str) and self.is_versioned(name) and isinstance(version, str):
                try:
                    if parse_version(version) > parse_version(self.newest(name)):
                        return name, self.newest(name)
                except ValueError:
                    pass
            for key in sorted(value):
                found = self.too_new(value[key])
                if found:
                    return found
        elif isinstance(value, list):
            for item in value:
                found = self.too_new(item)
                if found:
                    return found
        return None

    def backlevel(self, envelope, version):
        """A copy of `envelope` (a versioned object) written at the older `version`: fields that
        `x-since` introduces on this object after `version` are dropped (see the module doc)."""
        name = envelope[NAME]
        target, current = parse_version(version), parse_version(envelope[VERSION])
        if version not in self.versions(name):
            raise ValueError(f"{name} has no version {version} (it has {', '.join(self.versions(name))})")
        if target[0] != current[0]:
            raise ValueError(f"{name} {envelope[VERSION]} cannot be written at {version}: another major version")
        dropped = set()
        for field, schema in self.fields(name).items():
            since = schema.get("x-since", "").split(" ")
            if len(since) == 2 and since[0] == name and parse_version(since[1]) > target:
                dropped.add(field)
        out = dict(envelope)
        out[VERSION] = version
        out[DATA] = {key: value for key, value in envelope.get(DATA, {}).items() if key not in dropped}
        if CHANGES in envelope:
            out[CHANGES] = [field for field in envelope[CHANGES] if field not in dropped]
        return out

    def relabel_all(self, value, name, version):
        """`value` with every versioned object `name` in it claiming `version` but keeping its
        fields: a wrong backlevel, kept to show that the suite catches it."""
        if isinstance(value, dict):
            inner = {key: self.relabel_all(item, name, version) for key, item in value.items()}
            if inner.get(NAME) == name and VERSION in inner:
                inner[VERSION] = version
            return inner
        if isinstance(value, list):
            return [self.relabel_all(item, name, version) for item in value]
        return value

    def backlevel_all(self, value, name, version):
        """`value` with every versioned object `name` in it (at any depth) written at `version`."""
        if isinstance(value, dict):
            inner = {key: self.backlevel_all(item, name, version) for key, item in value.items()}
            if inner.get(NAME) == name and VERSION in inner:
                return self.backlevel(inner, version)
            return inner
        if isinstance(value, list):
            return [self.backlevel_all(item, name, version) for item in value]
        return value
