"""schema/vproto.json against os-vif itself.

Checks that the schema's `os_vif` objects are exactly os-vif's registered
versioned objects, with the same versions, fields, nullability, field kinds,
enum values, defaults and inheritance.

Run with the interpreter of a virtualenv that has os-vif installed:

    python -m pytest tests/osvif
"""

from __future__ import annotations

import json
import pathlib
import warnings
from typing import Any

import pytest

with warnings.catch_warnings():
    # os-vif pulls in oslo and eventlet, which warn on import.
    warnings.simplefilter("ignore")
    import os_vif.objects
    from oslo_versionedobjects import base as ovo_base
    from oslo_versionedobjects import fields as ovo_fields

SCHEMA_PATH = pathlib.Path(__file__).resolve().parent / ".." / ".." / "schema" / "vproto.json"

#: Every object os-vif registers, as of os-vif 5.3.0.
OSVIF_OBJECTS = [
    "FixedIP", "FixedIPList", "Route", "RouteList", "Subnet", "SubnetList",
    "Network", "InstanceInfo", "HostPortProfileInfo", "HostVIFInfo",
    "HostPluginInfo", "HostInfo", "VIFBase", "VIFGeneric", "VIFBridge",
    "VIFOpenVSwitch", "VIFDirect", "VIFVHostUser", "VIFHostDevice",
    "VIFNestedDPDK", "DatapathOffloadBase", "DatapathOffloadRepresentor",
    "VIFPortProfileBase", "VIFPortProfileOpenVSwitch",
    "VIFPortProfileFPOpenVSwitch", "VIFPortProfileOVSRepresentor",
    "VIFPortProfileFPBridge", "VIFPortProfileFPTap", "VIFPortProfile8021Qbg",
    "VIFPortProfile8021Qbh", "VIFPortProfileK8sDPDK",
]

#: The schema format each oslo string-pattern field type maps to.
FORMATS = [
    (ovo_fields.UUID, "uuid"),
    (ovo_fields.MACAddress, "mac-address"),
    (ovo_fields.PCIAddress, "pci-address"),
    (ovo_fields.IPNetwork, "ip-network"),
    (ovo_fields.IPAddress, "ip-address"),
]


def version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def registry() -> dict[str, type]:
    """os-vif's registered classes by name, newest version of each."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os_vif.objects.register_all()
    classes = {}
    for name, versions in ovo_base.VersionedObjectRegistry.obj_classes().items():
        newest = max(versions, key=lambda cls: version_tuple(cls.VERSION))
        if newest.OBJ_PROJECT_NAMESPACE == "os_vif":
            classes[name] = newest
    return classes


def resolve(schema: dict[str, Any], expr: dict[str, Any]) -> dict[str, Any]:
    """Follows `$ref`s to named types."""
    while "$ref" in expr:
        prefix = "#/types/"
        assert expr["$ref"].startswith(prefix), expr
        expr = schema["types"][expr["$ref"][len(prefix):]]["schema"]
    return expr


def registered_parent(cls: type, registry: dict[str, type]) -> type | None:
    """The nearest superclass that is itself a registered os-vif object."""
    for parent in cls.__mro__[1:]:
        name = getattr(parent, "obj_name", None)
        if name is not None and parent.__dict__.get("VERSION") is not None \
                and registry.get(parent.obj_name()) is parent:
            return parent
    return None


def schema_fields(schema: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """An object's own and inherited fields, following `extends`."""
    objects = schema["objects"]
    fields: dict[str, dict[str, Any]] = {}
    seen = set()
    while name is not None:
        assert name not in seen, f"inheritance cycle through {name}"
        seen.add(name)
        for field_name, field in objects[name].get("fields", {}).items():
            assert field_name not in fields, f"{field_name} declared twice along {name}'s bases"
            fields[field_name] = field
        name = objects[name].get("extends", {}).get("object")
    return fields


def check_kind(schema: dict[str, Any], where: str, oslo_type: Any, expr: dict[str, Any]) -> None:
    """The schema type expression `expr` describes oslo field type `oslo_type`."""
    if isinstance(oslo_type, ovo_fields.Object):
        assert expr.get("object") == oslo_type._obj_name, f"{where}: {expr} is not {oslo_type._obj_name}"
        assert bool(expr.get("subclasses", False)) == bool(oslo_type._subclasses), \
            f"{where}: subclasses differs from os-vif"
        return
    expr = resolve(schema, expr)
    if isinstance(oslo_type, ovo_fields.List):
        assert expr.get("type") == "array", f"{where}: expected an array, got {expr}"
        check_kind(schema, f"{where}[]", oslo_type._element_type._type, expr["items"])
        return
    for pattern_type, fmt in FORMATS:
        if isinstance(oslo_type, pattern_type):
            assert expr.get("type") == "string" and expr.get("format") == fmt, \
                f"{where}: expected a string of format {fmt}, got {expr}"
            return
    if isinstance(oslo_type, ovo_fields.Enum):
        assert expr.get("type") == "string", f"{where}: expected a string enum, got {expr}"
        assert list(expr.get("enum", [])) == list(oslo_type.valid_values), \
            f"{where}: enum {expr.get('enum')} differs from os-vif's {list(oslo_type.valid_values)}"
        return
    simple = [
        (ovo_fields.String, "string"),
        (ovo_fields.Integer, "integer"),
        (ovo_fields.Boolean, "boolean"),
    ]
    for simple_type, json_type in simple:
        if isinstance(oslo_type, simple_type):
            assert expr.get("type") == json_type, f"{where}: expected {json_type}, got {expr}"
            assert "format" not in expr and "enum" not in expr, \
                f"{where}: os-vif declares a plain {json_type}, the schema restricts it: {expr}"
            return
    pytest.fail(f"{where}: no mapping for oslo field type {type(oslo_type).__name__}")


def without_changes(primitive: Any) -> Any:
    """A primitive without oslo's `versioned_object.changes` bookkeeping."""
    if isinstance(primitive, dict):
        return {k: without_changes(v) for k, v in primitive.items() if k != "versioned_object.changes"}
    if isinstance(primitive, list):
        return [without_changes(v) for v in primitive]
    return primitive


def test_registry_is_the_expected_31(registry):
    assert sorted(registry) == sorted(OSVIF_OBJECTS)


def test_schema_has_exactly_the_osvif_objects(schema, registry):
    in_schema = sorted(name for name, obj in schema["objects"].items() if obj.get("namespace") == "os_vif")
    assert in_schema == sorted(registry)


@pytest.mark.parametrize("name", OSVIF_OBJECTS)
def test_object_header(schema, registry, name):
    cls = registry[name]
    obj = schema["objects"].get(name)
    assert obj is not None, f"{name} is missing from the schema"
    assert obj.get("namespace") == "os_vif"
    assert obj.get("wire", "versioned_object") == "versioned_object"
    assert obj["version"] == cls.VERSION
    assert not obj.get("abstract", False), "os-vif can instantiate and send base classes"
    major, minor = version_tuple(cls.VERSION)
    expected = [f"{major}.{m}" for m in range(minor + 1)]
    assert [entry["version"] for entry in obj["history"]] == expected
    assert all(entry["note"].strip() for entry in obj["history"])
    assert obj["description"].strip()


@pytest.mark.parametrize("name", OSVIF_OBJECTS)
def test_inheritance(schema, registry, name):
    cls = registry[name]
    obj = schema["objects"][name]
    parent = registered_parent(cls, registry)
    if parent is None:
        assert "extends" not in obj
        return
    extends = obj.get("extends")
    assert extends is not None, f"{name} extends {parent.obj_name()} in os-vif"
    assert extends["object"] == parent.obj_name()
    versions = extends["versions"]
    assert next(iter(versions)) == obj["history"][0]["version"]
    for base_version in versions.values():
        assert version_tuple(base_version) <= version_tuple(parent.VERSION)
    # The newest subclass version carries the newest base (what os-vif sends today).
    last_from = max(versions, key=version_tuple)
    assert versions[last_from] == parent.VERSION


@pytest.mark.parametrize("name", OSVIF_OBJECTS)
def test_fields(schema, registry, name):
    cls = registry[name]
    obj = schema["objects"][name]
    all_fields = schema_fields(schema, name)
    assert sorted(all_fields) == sorted(cls.fields), "own and inherited fields differ from os-vif"

    parent = registered_parent(cls, registry)
    own = set(cls.fields) - set(parent.fields if parent else ())
    assert sorted(obj.get("fields", {})) == sorted(own), "the object must declare exactly its own fields"

    first_version = version_tuple(obj["history"][0]["version"])
    for field_name, oslo_field in cls.fields.items():
        where = f"{name}.{field_name}"
        field = all_fields[field_name]
        assert bool(field.get("nullable", False)) == oslo_field.nullable, f"{where}: nullable differs"
        check_kind(schema, where, oslo_field._type, field["schema"])

        if field_name in own:
            since = version_tuple(field["since"])
            assert first_version <= since <= version_tuple(cls.VERSION), f"{where}: since out of range"
            if since > first_version:
                assert "default" in field or field.get("required", True) is False, \
                    f"{where}: added after the first version, so it needs a default or required: false"

        if oslo_field.default is not ovo_fields.UnspecifiedDefault:
            expected = oslo_field._type.to_primitive(None, field_name, oslo_field.default)
            assert "default" in field, f"{where}: os-vif defaults it to {expected!r}"
            assert field["default"] == expected, f"{where}: default differs from os-vif"


@pytest.mark.parametrize("name", OSVIF_OBJECTS)
def test_constructor_defaults(schema, registry, name):
    """Defaults the schema gives beyond oslo's are what os-vif's __init__ sets."""
    cls = registry[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        instance = cls()
    all_fields = schema_fields(schema, name)
    for field_name, oslo_field in cls.fields.items():
        where = f"{name}.{field_name}"
        field = all_fields[field_name]
        if oslo_field.default is not ovo_fields.UnspecifiedDefault:
            continue
        if instance.obj_attr_is_set(field_name):
            value = oslo_field.to_primitive(instance, field_name, getattr(instance, field_name))
            assert "default" in field, f"{where}: os-vif's constructor sets it to {value!r}"
            assert field["default"] == without_changes(value), f"{where}: default differs from os-vif's constructor"
        else:
            assert "default" not in field, f"{where}: os-vif has no default for it"


@pytest.mark.parametrize("name", OSVIF_OBJECTS)
def test_child_versions(schema, registry, name):
    cls = registry[name]
    obj = schema["objects"][name]
    for field_name, field in obj.get("fields", {}).items():
        oslo_field = cls.fields[field_name]
        if not isinstance(oslo_field, (ovo_fields.ObjectField, ovo_fields.ListOfObjectsField)):
            assert "child_versions" not in field, f"{name}.{field_name} holds no object"
            continue
        where = f"{name}.{field_name}"
        child_versions = field.get("child_versions", {})
        relationships = cls.obj_relationships.get(field_name)
        if relationships:
            assert child_versions == dict(relationships), f"{where}: differs from os-vif's obj_relationships"
        subclasses = oslo_field._type._subclasses if isinstance(oslo_field, ovo_fields.ObjectField) \
            else oslo_field._type._element_type._type._subclasses
        if subclasses:
            continue
        assert child_versions, f"{where}: a non-polymorphic object field needs child_versions"
        assert next(iter(child_versions)) == field["since"], f"{where}: child_versions must start at since"
        if not relationships:
            child = registry[oslo_field.objname]
            assert set(child_versions.values()) == {child.VERSION}, \
                f"{where}: expected the child's current version {child.VERSION}"


#: A valid value for each oslo field type, to fill objects before backleveling.
SAMPLES = [
    (ovo_fields.UUID, "8e45a2ea-5364-4b0d-a252-bf8becaa606e"),
    (ovo_fields.MACAddress, "fa:16:3e:11:22:33"),
    (ovo_fields.PCIAddress, "0000:02:00.1"),
    (ovo_fields.IPNetwork, "192.0.2.0/24"),
    (ovo_fields.IPAddress, "192.0.2.10"),
    (ovo_fields.String, "x"),
    (ovo_fields.Integer, 1),
    (ovo_fields.Boolean, True),
    (ovo_fields.List, []),
]


def sample(registry: dict[str, type], oslo_field: Any) -> Any:
    oslo_type = oslo_field._type
    if isinstance(oslo_type, ovo_fields.Enum):
        return next(iter(oslo_type.valid_values))
    if isinstance(oslo_type, ovo_fields.Object):
        # Any registered class that is (a subclass of) the field's object.
        wanted = registry[oslo_type._obj_name]
        candidates = [cls for cls in registry.values() if issubclass(cls, wanted) and not cls.fields]
        return (candidates or [wanted])[0]()
    for oslo_class, value in SAMPLES:
        if isinstance(oslo_type, oslo_class):
            return value
    raise AssertionError(f"no sample for {type(oslo_type).__name__}")


def fields_at(schema: dict[str, Any], name: str, version: str) -> set[str]:
    """The fields the schema says version `version` of object `name` carries."""
    obj = schema["objects"][name]
    at = version_tuple(version)
    present = {
        field_name for field_name, field in obj.get("fields", {}).items()
        if version_tuple(field["since"]) <= at
        and ("removed" not in field or at < version_tuple(field["removed"]))
    }
    extends = obj.get("extends")
    if extends:
        base_version = None
        for own, base in extends["versions"].items():
            if version_tuple(own) <= at:
                base_version = base
        assert base_version is not None, f"{name} {version} has no base version"
        present |= fields_at(schema, extends["object"], base_version)
    return present


@pytest.mark.parametrize("name", OSVIF_OBJECTS)
def test_backlevel_matches_since_and_extends(schema, registry, name):
    """os-vif's obj_make_compatible keeps exactly the fields the schema's
    `since` and `extends` versions say each older version carries.

    Object fields are only filled where os-vif declares obj_relationships:
    os-vif cannot backlevel the others without a version manifest.
    """
    cls = registry[name]
    values = {}
    for field_name, oslo_field in cls.fields.items():
        if isinstance(oslo_field, (ovo_fields.ObjectField, ovo_fields.ListOfObjectsField)) \
                and field_name not in cls.obj_relationships:
            continue
        values[field_name] = sample(registry, oslo_field)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        instance = cls(**values)
    for field_name in cls.fields:
        # Network's constructor fills in its subnets: unset them again.
        if field_name not in values and instance.obj_attr_is_set(field_name) \
                and isinstance(cls.fields[field_name], (ovo_fields.ObjectField, ovo_fields.ListOfObjectsField)):
            delattr(instance, field_name)
        elif instance.obj_attr_is_set(field_name):
            values.setdefault(field_name, getattr(instance, field_name))
    major, minor = version_tuple(cls.VERSION)
    for m in range(minor + 1):
        version = f"{major}.{m}"
        primitive = instance.obj_to_primitive(target_version=version)
        assert primitive["versioned_object.version"] == version
        carried = set(primitive["versioned_object.data"])
        expected = fields_at(schema, name, version) & set(values)
        assert carried == expected, f"{name} {version}: os-vif carries {sorted(carried)}"
