"""Interoperability of `vproto convert` with os-vif itself.

For every object os-vif registers, a fully populated sample is serialized by
os-vif at its current version and converted twice to every version of the
object's history:

* by os-vif: ``obj.obj_to_primitive(target_version=V)`` ("plain" mode) and
  ``obj.obj_to_primitive(target_version=V, version_manifest=M)`` with
  ``M = obj_tree_get_versions(name)`` ("manifest" mode);
* by ``vproto convert --to V [--manifest M]`` from the current-version primitive.

The two results must be byte-for-byte the same JSON once the order of
``versioned_object.changes`` is ignored, except where os-vif is known to raise
(:data:`KNOWN_OSVIF_FAILURES`) or known to be wrong (:data:`DEVIATIONS`); both
tables are explained in ``docs/osvif-interop.md``. Every vproto output must
also be read back by os-vif, and must hold exactly the sample's fields minus
those the target version does not have (:func:`expected_conversion`, an
oracle built from os-vif's own version comments, not from vproto's schema).

Run it alone with::

    cargo build -p vproto-cli && .venv/bin/python -m pytest tests/osvif
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from os_vif import objects as osv_objects
from os_vif.objects import base as osv_base
from oslo_versionedobjects import base as ovo_base
from oslo_versionedobjects import exception as ovo_exception
from oslo_versionedobjects import fields as ovo_fields

osv_objects.register_all()

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SCHEMA_PATH = HERE / ".." / ".." / "schema" / "vproto.json"
VPROTO_BIN = Path(os.environ.get("VPROTO_BIN", REPO / "target" / "debug" / "vproto"))
VPROTO_TIMEOUT = 60

NS = "versioned_object."
NAME, NAMESPACE, VERSION, DATA, CHANGES = (
    NS + "name",
    NS + "namespace",
    NS + "version",
    NS + "data",
    NS + "changes",
)

REGISTRY = ovo_base.VersionedObjectRegistry.obj_classes()
OBJECT_FIELDS = (ovo_fields.ObjectField, ovo_fields.ListOfObjectsField)


def osvif_class(name: str) -> type[ovo_base.VersionedObject]:
    """The newest registered class of an object (the registry sorts newest first)."""
    return REGISTRY[name][0]


def vtuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


# ---------------------------------------------------------------------------
# Samples: one fully populated instance of every registered object.
# Canonical values only (lowercase MACs and PCI addresses, compressed IPv6), so
# that os-vif's own normalisation never hides a difference.
# ---------------------------------------------------------------------------

MAC = "fa:16:3e:5b:2c:01"
PCI_VF = "0000:0a:00.1"
PCI_VF2 = "0000:0a:00.2"


def _new(object_name: str, /, **values: Any) -> ovo_base.VersionedObject:
    with warnings.catch_warnings():
        # VIFPortProfileOVSRepresentor is flagged PendingDeprecation by os-vif.
        warnings.simplefilter("ignore")
        return osvif_class(object_name)(**values)


def sample_fixed_ip_v4() -> Any:
    return _new("FixedIP", address="192.0.2.10", floating_ips=["203.0.113.10"])


def sample_fixed_ip_v6() -> Any:
    return _new(
        "FixedIP",
        address="2001:db8:1::10",
        floating_ips=["2001:db8:ff::10", "2001:db8:ff::11"],
    )


def sample_fixed_ip_list() -> Any:
    return _new("FixedIPList", objects=[sample_fixed_ip_v4(), sample_fixed_ip_v6()])


def sample_route_v4() -> Any:
    return _new("Route", cidr="198.51.100.0/24", gateway="192.0.2.254", interface="eth0")


def sample_route_v6() -> Any:
    return _new("Route", cidr="2001:db8:2::/48", gateway="2001:db8:1::fe", interface="eth1")


def sample_route_list() -> Any:
    return _new("RouteList", objects=[sample_route_v4(), sample_route_v6()])


def sample_subnet_v4() -> Any:
    return _new(
        "Subnet",
        cidr="192.0.2.0/24",
        dns=["192.0.2.53", "198.51.100.53"],
        gateway="192.0.2.1",
        ips=_new("FixedIPList", objects=[sample_fixed_ip_v4()]),
        routes=_new("RouteList", objects=[sample_route_v4()]),
        dhcp_server="192.0.2.2",
    )


def sample_subnet_v6() -> Any:
    return _new(
        "Subnet",
        cidr="2001:db8:1::/64",
        dns=["2001:db8:1::53"],
        gateway="2001:db8:1::1",
        ips=_new("FixedIPList", objects=[sample_fixed_ip_v6()]),
        routes=_new("RouteList", objects=[sample_route_v6()]),
        dhcp_server="2001:db8:1::2",
    )


def sample_subnet_list() -> Any:
    return _new("SubnetList", objects=[sample_subnet_v4(), sample_subnet_v6()])


def sample_network() -> Any:
    return _new(
        "Network",
        id="3f7a2c1e-9b4d-4e8a-8f3c-2d1b0a9e8c7f",
        bridge="br-int",
        label="tenant-net",
        subnets=sample_subnet_list(),
        multi_host=True,
        should_provide_bridge=True,
        should_provide_vlan=True,
        bridge_interface="eth2",
        vlan=42,
        mtu=1450,
    )


def sample_datapath_offload() -> Any:
    return _new(
        "DatapathOffloadRepresentor",
        representor_name="rep0-1",
        representor_address=PCI_VF,
    )


def _port_profile_base_fields() -> dict[str, Any]:
    return {"datapath_offload": sample_datapath_offload()}


def _ovs_profile_fields() -> dict[str, Any]:
    return {
        **_port_profile_base_fields(),
        "interface_id": "e1c2d3b4-a596-4788-99aa-bbccddeeff00",
        "profile_id": "ovs-profile-1",
        "datapath_type": "netdev",
        "create_port": True,
        "create_tap": True,
        "multiqueue": True,
    }


def sample_port_profile_ovs() -> Any:
    return _new("VIFPortProfileOpenVSwitch", **_ovs_profile_fields())


def _vif_base_fields() -> dict[str, Any]:
    return {
        "id": "5c4e0b7a-1d2f-4c3b-9a8e-7f6d5c4b3a21",
        "address": MAC,
        "network": sample_network(),
        "plugin": "ovs",
        "active": False,
        "preserve_on_delete": True,
        "has_traffic_filtering": True,
        "port_profile": sample_port_profile_ovs(),
    }


def sample_host_port_profile_info(name: str = "VIFPortProfileOpenVSwitch") -> Any:
    return _new(
        "HostPortProfileInfo", profile_object_name=name, min_version="1.0", max_version="1.4"
    )


def sample_host_vif_info() -> Any:
    return _new(
        "HostVIFInfo",
        vif_object_name="VIFOpenVSwitch",
        min_version="1.0",
        max_version="1.0",
        supported_port_profiles=[
            sample_host_port_profile_info("VIFPortProfileOpenVSwitch"),
            sample_host_port_profile_info("VIFPortProfileFPOpenVSwitch"),
        ],
    )


def sample_host_plugin_info() -> Any:
    vhostuser = _new(
        "HostVIFInfo",
        vif_object_name="VIFVHostUser",
        min_version="1.0",
        max_version="1.1",
        supported_port_profiles=[sample_host_port_profile_info("VIFPortProfileOpenVSwitch")],
    )
    return _new("HostPluginInfo", plugin_name="ovs", vif_info=[sample_host_vif_info(), vhostuser])


def sample_host_info() -> Any:
    bridge = _new(
        "HostPluginInfo",
        plugin_name="linux_bridge",
        vif_info=[
            _new(
                "HostVIFInfo",
                vif_object_name="VIFBridge",
                min_version="1.0",
                max_version="1.0",
                supported_port_profiles=[],
            )
        ],
    )
    return _new("HostInfo", plugin_info=[sample_host_plugin_info(), bridge])


SAMPLES: dict[str, Callable[[], Any]] = {
    "FixedIP": sample_fixed_ip_v6,
    "FixedIPList": sample_fixed_ip_list,
    "HostPortProfileInfo": sample_host_port_profile_info,
    "HostVIFInfo": sample_host_vif_info,
    "HostPluginInfo": sample_host_plugin_info,
    "HostInfo": sample_host_info,
    "InstanceInfo": lambda: _new(
        "InstanceInfo",
        uuid="9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a",
        name="instance-0000002a",
        project_id="b7d4a1c2e3f94a5b8c6d7e8f9a0b1c2d",
    ),
    "Network": sample_network,
    "Route": sample_route_v6,
    "RouteList": sample_route_list,
    "Subnet": sample_subnet_v6,
    "SubnetList": sample_subnet_list,
    "VIFBase": lambda: _new("VIFBase", **_vif_base_fields()),
    "VIFGeneric": lambda: _new("VIFGeneric", **_vif_base_fields(), vif_name="tap5c4e0b7a-1d"),
    "VIFBridge": lambda: _new(
        "VIFBridge", **_vif_base_fields(), vif_name="tap5c4e0b7a-1d", bridge_name="brq3f7a2c1e-9b"
    ),
    "VIFOpenVSwitch": lambda: _new(
        "VIFOpenVSwitch", **_vif_base_fields(), vif_name="tap5c4e0b7a-1d", bridge_name="br-int"
    ),
    "VIFDirect": lambda: _new(
        "VIFDirect",
        **_vif_base_fields(),
        vif_name="macvtap0",
        dev_address=PCI_VF,
        mode="passthrough",
        vlan_name="vlan42",
    ),
    "VIFVHostUser": lambda: _new(
        "VIFVHostUser",
        **_vif_base_fields(),
        vif_name="vhu5c4e0b7a-1d",
        path="/var/run/openvswitch/vhu5c4e0b7a-1d",
        mode="server",
    ),
    "VIFHostDevice": lambda: _new(
        "VIFHostDevice", **_vif_base_fields(), dev_type="ethernet", dev_address=PCI_VF
    ),
    "VIFNestedDPDK": lambda: _new(
        "VIFNestedDPDK", **_vif_base_fields(), pci_address=PCI_VF2, dev_driver="virtio-pci"
    ),
    "DatapathOffloadBase": lambda: _new("DatapathOffloadBase"),
    "DatapathOffloadRepresentor": sample_datapath_offload,
    "VIFPortProfileBase": lambda: _new("VIFPortProfileBase", **_port_profile_base_fields()),
    "VIFPortProfileOpenVSwitch": sample_port_profile_ovs,
    "VIFPortProfileFPOpenVSwitch": lambda: _new(
        "VIFPortProfileFPOpenVSwitch",
        **_ovs_profile_fields(),
        bridge_name="br-fp",
        hybrid_plug=True,
    ),
    "VIFPortProfileOVSRepresentor": lambda: _new(
        "VIFPortProfileOVSRepresentor",
        **_ovs_profile_fields(),
        representor_name="rep0-2",
        representor_address=PCI_VF2,
    ),
    "VIFPortProfileFPBridge": lambda: _new(
        "VIFPortProfileFPBridge", **_port_profile_base_fields(), bridge_name="br-fp"
    ),
    "VIFPortProfileFPTap": lambda: _new(
        "VIFPortProfileFPTap", **_port_profile_base_fields(), mac_address="fa:16:3e:5b:2c:02"
    ),
    "VIFPortProfile8021Qbg": lambda: _new(
        "VIFPortProfile8021Qbg",
        **_port_profile_base_fields(),
        manager_id=7,
        type_id=12,
        type_id_version=1,
        instance_id="0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    ),
    "VIFPortProfile8021Qbh": lambda: _new(
        "VIFPortProfile8021Qbh", **_port_profile_base_fields(), profile_id="qbh-profile-1"
    ),
    "VIFPortProfileK8sDPDK": lambda: _new(
        "VIFPortProfileK8sDPDK",
        **_port_profile_base_fields(),
        l3_setup=True,
        selflink="/api/v1/namespaces/default/pods/pod-1",
        resourceversion="4711",
    ),
}


# ---------------------------------------------------------------------------
# os-vif's version history, transcribed from the "# Version X.Y:" comments and
# obj_make_compatible() methods of os_vif/objects/*.py (5.3.0). This is the
# oracle's source of truth; test_oracle_tables_agree_with_schema checks vproto's
# schema against it.
# ---------------------------------------------------------------------------

#: Fields added after 1.0 of the class that declares them: {object: {field: since}}.
FIELD_SINCE: dict[str, dict[str, str]] = {
    "Network": {"mtu": "1.1"},
    "HostVIFInfo": {"supported_port_profiles": "1.1"},
    "VIFVHostUser": {"vif_name": "1.1"},
    "VIFPortProfileBase": {"datapath_offload": "1.1"},
    "VIFPortProfileOpenVSwitch": {
        "datapath_type": "1.1",
        "create_port": "1.3",
        "create_tap": "1.4",
        "multiqueue": "1.4",
    },
}


def _same_versions(*versions: str) -> dict[str, str]:
    return {v: v for v in versions}


#: Inheritance: {subclass: (base, {subclass version: base version it carries})},
#: from the super().obj_make_compatible(primitive, BASE_VERSION) calls.
EXTENDS: dict[str, tuple[str, dict[str, str]]] = {
    **{
        vif: ("VIFBase", {"1.0": "1.0"})
        for vif in (
            "VIFGeneric",
            "VIFBridge",
            "VIFOpenVSwitch",
            "VIFDirect",
            "VIFHostDevice",
            "VIFNestedDPDK",
        )
    },
    "VIFVHostUser": ("VIFBase", {"1.0": "1.0", "1.1": "1.0"}),
    "DatapathOffloadRepresentor": ("DatapathOffloadBase", {"1.0": "1.0"}),
    "VIFPortProfileOpenVSwitch": (
        "VIFPortProfileBase",
        {"1.0": "1.0", "1.1": "1.0", "1.2": "1.1", "1.3": "1.1", "1.4": "1.1"},
    ),
    "VIFPortProfileFPOpenVSwitch": (
        "VIFPortProfileOpenVSwitch",
        _same_versions("1.0", "1.1", "1.2", "1.3", "1.4"),
    ),
    "VIFPortProfileOVSRepresentor": (
        "VIFPortProfileOpenVSwitch",
        _same_versions("1.0", "1.1", "1.2", "1.3", "1.4"),
    ),
    **{
        profile: ("VIFPortProfileBase", _same_versions("1.0", "1.1"))
        for profile in (
            "VIFPortProfileFPBridge",
            "VIFPortProfileFPTap",
            "VIFPortProfile8021Qbg",
            "VIFPortProfile8021Qbh",
            "VIFPortProfileK8sDPDK",
        )
    },
}

#: oslo's obj_relationships as os-vif declares them: {(object, field): [(parent, child)]}.
OSVIF_RELATIONSHIPS: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("VIFPortProfileBase", "datapath_offload"): [("1.1", "1.0")],
}


def load_schema() -> dict[str, Any] | None:
    try:
        with open(SCHEMA_PATH, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


SCHEMA = load_schema()


def _history_versions(entry: Any) -> list[str]:
    history = entry.get("history", [])
    if isinstance(history, dict):
        return list(history)
    return [h["version"] if isinstance(h, dict) else str(h) for h in history]


def object_versions(name: str) -> list[str]:
    """Every version of an object: the schema's history, or 1.0..VERSION."""
    if SCHEMA is not None and name in SCHEMA.get("objects", {}):
        return _history_versions(SCHEMA["objects"][name])
    major, minor = vtuple(osvif_class(name).VERSION)
    return [f"{major}.{m}" for m in range(minor + 1)]


def declaring_class(name: str, version: str, field: str) -> tuple[str, str]:
    """The class that declares `field` and its version carried by `name` at `version`."""
    while name in EXTENDS:
        base, mapping = EXTENDS[name]
        if field not in osvif_class(base).fields:
            break
        keys = sorted((k for k in mapping if vtuple(k) <= vtuple(version)), key=vtuple)
        name, version = base, mapping[keys[-1]]
    return name, version


def field_exists(name: str, version: str, field: str) -> bool:
    owner, owner_version = declaring_class(name, version, field)
    return vtuple(owner_version) >= vtuple(FIELD_SINCE.get(owner, {}).get(field, "1.0"))


def schema_child_versions(owner: str, field: str) -> list[tuple[str, str]]:
    if SCHEMA is None:
        return OSVIF_RELATIONSHIPS.get((owner, field), [])
    entry = SCHEMA.get("objects", {}).get(owner, {}).get("fields", {}).get(field, {})
    pins = entry.get("child_versions", {})
    return sorted(pins.items(), key=lambda kv: vtuple(kv[0]))


def pinned_child_version(name: str, version: str, field: str) -> str | None:
    """The child version pinned for `field` of `name` at `version` (oslo's
    _get_subobject_version over the schema's child_versions), or None."""
    owner, owner_version = declaring_class(name, version, field)
    pinned = None
    for parent, child in schema_child_versions(owner, field):
        if vtuple(parent) <= vtuple(owner_version):
            pinned = child
    return pinned


def expected_conversion(
    primitive: dict[str, Any], target: str, manifest: dict[str, str] | None
) -> dict[str, Any]:
    """What a correct backport of `primitive` to `target` is, by vproto's rules.

    Fields the target version does not have are dropped; child objects go to
    manifest[concrete child] or manifest[declared object] when a manifest is
    given, else to the version pinned for the parent's version, else stay as
    they are; `changes` is sorted and lists only fields present in the data.
    """
    name = primitive[NAME]
    cls = osvif_class(name)
    data: dict[str, Any] = {}
    for field, value in primitive[DATA].items():
        if not field_exists(name, target, field):
            continue
        definition = cls.fields[field]
        if isinstance(definition, OBJECT_FIELDS) and value is not None:
            children = value if isinstance(value, list) else [value]
            converted = []
            for child in children:
                if manifest is not None:
                    # The concrete class's entry, else the declared class's (oslo's lookup).
                    version = manifest.get(child[NAME], manifest.get(definition.objname))
                else:
                    version = pinned_child_version(name, target, field)
                converted.append(
                    copy.deepcopy(child)
                    if version is None
                    else expected_conversion(child, version, manifest)
                )
            value = converted if isinstance(value, list) else converted[0]
        data[field] = copy.deepcopy(value)
    result = {NAME: name, NAMESPACE: primitive[NAMESPACE], VERSION: target, DATA: data}
    changes = sorted(c for c in primitive.get(CHANGES, []) if c in data)
    if changes:
        result[CHANGES] = changes
    return result


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

PLAIN, MANIFEST = "plain", "manifest"
CASES = [
    pytest.param(name, version, mode, id=f"{name}-{version}-{mode}")
    for name in sorted(REGISTRY)
    for version in object_versions(name)
    for mode in (PLAIN, MANIFEST)
]

#: Conversions os-vif 5.3.0 cannot do: {(object, version, mode): (exception, message)}.
#: Without a manifest, oslo needs an obj_relationships rule for every object field
#: of a backported object and os-vif declares none for these; with a manifest,
#: HostVIFInfo.obj_make_compatible deletes supported_port_profiles and then asks
#: the base class to backport the very field it deleted.
KNOWN_OSVIF_FAILURES: dict[tuple[str, str, str], tuple[type[BaseException], str]] = {
    ("Network", "1.0", PLAIN): (ovo_exception.ObjectActionError, "No rule for subnets"),
    ("VIFVHostUser", "1.0", PLAIN): (ovo_exception.ObjectActionError, "No rule for network"),
    ("HostVIFInfo", "1.0", PLAIN): (
        ovo_exception.ObjectActionError,
        "No rule for supported_port_profiles",
    ),
    ("HostVIFInfo", "1.0", MANIFEST): (KeyError, "supported_port_profiles"),
}

#: What vproto must produce instead, checked field by field on top of the
#: oracle: {(object, version, mode): (fields absent from data, {field: child version})}.
KNOWN_FAILURE_EXPECTATIONS: dict[tuple[str, str, str], tuple[set[str], dict[str, str]]] = {
    ("Network", "1.0", PLAIN): ({"mtu"}, {"subnets": "1.0"}),
    # network: pinned by the schema (VIFBase carries Network 1.1); port_profile:
    # no pin (VIFBase has a single version), so it stays as it is.
    ("VIFVHostUser", "1.0", PLAIN): ({"vif_name"}, {"network": "1.1", "port_profile": "1.4"}),
    ("HostVIFInfo", "1.0", PLAIN): ({"supported_port_profiles"}, {}),
    ("HostVIFInfo", "1.0", MANIFEST): ({"supported_port_profiles"}, {}),
}


@dataclass(frozen=True)
class Deviation:
    """A place where os-vif succeeds but produces a wrong primitive."""

    key: str
    summary: str
    #: {(object, version, mode): {path of the nested object in data: [field names]}}
    cases: dict[tuple[str, str, str], dict[tuple[str, ...], list[str]]]


def _vif_cases() -> list[str]:
    return [
        "VIFBase",
        "VIFGeneric",
        "VIFBridge",
        "VIFOpenVSwitch",
        "VIFDirect",
        "VIFVHostUser",
        "VIFHostDevice",
        "VIFNestedDPDK",
    ]


PORT_PROFILE = ("port_profile",)
TOP = ()

#: D1: with a manifest, oslo keeps a port profile's `datapath_offload` in
#: versions that predate it (VIFPortProfileBase < 1.1).
MANIFEST_KEEPS_DATAPATH_OFFLOAD = Deviation(
    key="manifest-keeps-datapath-offload",
    summary=(
        "with a version manifest, oslo's _obj_relationship_for() answers "
        "[(target, manifest[child])] for every object field, so "
        "_get_subobject_version() never raises TargetBeforeSubobjectExisted and "
        "`datapath_offload` (VIFPortProfileBase 1.1) survives in port profiles "
        "backported to a version carrying VIFPortProfileBase 1.0; without a manifest "
        "oslo drops it. vproto drops it in both modes."
    ),
    cases={
        **{
            (vif, version, MANIFEST): {PORT_PROFILE: ["datapath_offload"]}
            for vif in _vif_cases()
            for version in (["1.0", "1.1"] if vif == "VIFVHostUser" else ["1.0"])
        },
        ("VIFPortProfileBase", "1.0", MANIFEST): {TOP: ["datapath_offload"]},
        **{
            (profile, version, MANIFEST): {TOP: ["datapath_offload"]}
            for profile in (
                "VIFPortProfileOpenVSwitch",
                "VIFPortProfileFPOpenVSwitch",
                "VIFPortProfileOVSRepresentor",
            )
            for version in ("1.0", "1.1")
        },
        **{
            (profile, "1.0", MANIFEST): {TOP: ["datapath_offload"]}
            for profile in (
                "VIFPortProfileFPBridge",
                "VIFPortProfileFPTap",
                "VIFPortProfile8021Qbg",
                "VIFPortProfile8021Qbh",
                "VIFPortProfileK8sDPDK",
            )
        },
    },
)

#: D2: oslo filters `changes` of the top-level object to the fields left in
#: its data, but not the `changes` of backported children.
NESTED_CHANGES_NOT_FILTERED = Deviation(
    key="nested-changes-not-filtered",
    summary=(
        "obj_to_primitive() drops from the top-level `changes` the fields that "
        "obj_make_compatible() removed, but _do_subobject_backport() rewrites only "
        "a child's data and version, so a backported child's `changes` still names "
        "fields its data no longer has. vproto lists only fields present in the data."
    ),
    cases={
        (vif, version, MANIFEST): {PORT_PROFILE: ["create_port", "create_tap", "multiqueue"]}
        for vif in _vif_cases()
        for version in (["1.0", "1.1"] if vif == "VIFVHostUser" else ["1.0"])
    },
)

DEVIATIONS = [MANIFEST_KEEPS_DATAPATH_OFFLOAD, NESTED_CHANGES_NOT_FILTERED]


def _at(primitive: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for field in path:
        primitive = primitive[DATA][field]
    return primitive


def apply_deviations(osvif_out: dict[str, Any], case: tuple[str, str, str]) -> list[str]:
    """Rewrites os-vif's output into the correct one, asserting that each listed
    deviation really is there (so a fixed os-vif makes the entry fail, not rot)."""
    applied = []
    for deviation in DEVIATIONS:
        where = deviation.cases.get(case)
        if where is None:
            continue
        for path, names in where.items():
            target = _at(osvif_out, path)
            for field in names:
                if deviation is MANIFEST_KEEPS_DATAPATH_OFFLOAD:
                    assert field in target[DATA], (deviation.key, path, field, "not in os-vif data")
                    del target[DATA][field]
                    if field in target.get(CHANGES, []):
                        target[CHANGES].remove(field)
                else:
                    assert field in target.get(CHANGES, []), (deviation.key, path, field)
                    assert field not in target[DATA], (deviation.key, path, field)
                    target[CHANGES].remove(field)
            if CHANGES in target and not target[CHANGES]:
                # oslo writes no `changes` at all when nothing is left to list.
                del target[CHANGES]
        applied.append(deviation.key)
    return applied


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def normalise(value: Any) -> Any:
    """Sorts every `versioned_object.changes` list, recursively."""
    if isinstance(value, dict):
        return {k: (sorted(v) if k == CHANGES else normalise(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def canonical(value: Any) -> str:
    """Strict JSON text for comparison (Python's == says True == 1)."""
    return json.dumps(normalise(value), sort_keys=True, indent=1)


def strip_changes(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_changes(v) for k, v in value.items() if k != CHANGES}
    if isinstance(value, list):
        return [strip_changes(v) for v in value]
    return value


def run_vproto(
    stdin: str | bytes, *args: str, tmp_path: Path | None = None, manifest: Any = None
) -> subprocess.CompletedProcess[bytes]:
    if not os.access(VPROTO_BIN, os.X_OK):
        pytest.fail(
            f"no vproto binary at {VPROTO_BIN}: run `cargo build -p vproto-cli` or set VPROTO_BIN",
            pytrace=False,
        )
    argv = [str(VPROTO_BIN), "convert", *args]
    if manifest is not None:
        assert tmp_path is not None
        manifest_path = tmp_path / "manifest.json"
        manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
        argv += ["--manifest", str(manifest_path)]
    if isinstance(stdin, str):
        stdin = stdin.encode()
    return subprocess.run(
        argv, input=stdin, capture_output=True, timeout=VPROTO_TIMEOUT, check=False
    )


def vproto_convert(
    primitive: dict[str, Any], target: str, manifest: dict[str, str] | None, tmp_path: Path
) -> dict[str, Any]:
    proc = run_vproto(json.dumps(primitive), "--to", target, tmp_path=tmp_path, manifest=manifest)
    assert proc.returncode == 0, (
        f"vproto convert --to {target} failed ({proc.returncode}):\n{proc.stderr.decode()}"
    )
    return json.loads(proc.stdout)


def all_fields_set(obj: Any, where: str) -> list[str]:
    """Paths of unset fields in obj and its children."""
    missing = []
    for field in obj.fields:
        if not obj.obj_attr_is_set(field):
            missing.append(f"{where}.{field}")
            continue
        value = getattr(obj, field)
        children = value if isinstance(value, list) else [value]
        for i, child in enumerate(children):
            if isinstance(child, ovo_base.VersionedObject):
                missing += all_fields_set(child, f"{where}.{field}[{i}]")
    return missing


def hydrated_tree(obj: Any) -> Any:
    """(name, version, {set field: value}) of an object read back by os-vif."""
    fields = {}
    for field, definition in obj.fields.items():
        if not obj.obj_attr_is_set(field):
            continue
        value = getattr(obj, field)
        if isinstance(value, list) and value and isinstance(value[0], ovo_base.VersionedObject):
            fields[field] = [hydrated_tree(v) for v in value]
        elif isinstance(value, ovo_base.VersionedObject):
            fields[field] = hydrated_tree(value)
        else:
            fields[field] = definition.to_primitive(obj, field, value)
    return (obj.obj_name(), obj.VERSION, fields)


def constructor_defaults(name: str) -> dict[str, Any]:
    """Fields os-vif's constructor sets by itself (Network.__init__ sets mtu,
    subnets, multi_host, ...), which any object os-vif reads back has."""
    obj = _new(name)
    return {
        field: hydrated_tree(getattr(obj, field))
        if isinstance(getattr(obj, field), ovo_base.VersionedObject)
        else definition.to_primitive(obj, field, getattr(obj, field))
        for field, definition in obj.fields.items()
        if obj.obj_attr_is_set(field)
    }


def primitive_tree(primitive: Any) -> Any:
    """What hydrated_tree() must give for an object os-vif reads from
    `primitive`: its data plus the constructor's defaults for absent fields."""
    if isinstance(primitive, list):
        return [primitive_tree(p) for p in primitive]
    if isinstance(primitive, dict) and NAME in primitive:
        fields = constructor_defaults(primitive[NAME])
        fields.update({k: primitive_tree(v) for k, v in primitive[DATA].items()})
        return (primitive[NAME], primitive[VERSION], fields)
    return primitive


def child_version(primitive: dict[str, Any], field: str) -> str | list[str]:
    value = primitive[DATA][field]
    if isinstance(value, list):
        return [v[VERSION] for v in value]
    return value[VERSION]


# ---------------------------------------------------------------------------
# Tests: samples and tables
# ---------------------------------------------------------------------------


def test_every_registered_object_has_a_sample():
    assert len(REGISTRY) == 31
    assert sorted(SAMPLES) == sorted(REGISTRY)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_sample_is_fully_populated(name):
    obj = SAMPLES[name]()
    assert obj.obj_name() == name
    assert obj.VERSION == osvif_class(name).VERSION
    assert all_fields_set(obj, name) == []


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_osvif_history_transcription(name):
    """FIELD_SINCE and EXTENDS cover exactly os-vif's versions and fields."""
    cls = osvif_class(name)
    for field, since in FIELD_SINCE.get(name, {}).items():
        assert field in cls.fields
        assert vtuple(since) <= vtuple(cls.VERSION)
    if name in EXTENDS:
        base, mapping = EXTENDS[name]
        assert issubclass(cls, osvif_class(base))
        assert sorted(mapping, key=vtuple)[-1] == cls.VERSION
        assert max(mapping.values(), key=vtuple) == osvif_class(base).VERSION
    for (owner, field), rels in OSVIF_RELATIONSHIPS.items():
        assert osvif_class(owner).obj_relationships[field] == rels


@pytest.mark.skipif(SCHEMA is None, reason="schema/vproto.json does not exist yet")
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_oracle_tables_agree_with_schema(name):
    """The oracle's tables (FIELD_SINCE, EXTENDS, OSVIF_RELATIONSHIPS) and the
    schema's history, extends, since and child_versions say the same thing, so
    a case that fails points at vproto, not at a transcription slip."""
    objects = SCHEMA["objects"]
    assert name in objects, f"{name} missing from schema/vproto.json"
    entry = objects[name]
    cls = osvif_class(name)
    assert entry["version"] == cls.VERSION
    versions = _history_versions(entry)
    major, minor = vtuple(cls.VERSION)
    assert versions == [f"{major}.{m}" for m in range(minor + 1)]
    if name in EXTENDS:
        base, mapping = EXTENDS[name]
        assert entry.get("extends", {}).get("object") == base
        declared = entry["extends"]["versions"]
        # The schema may list only the versions where the base changes.
        for version in versions:
            keys = [k for k in declared if vtuple(k) <= vtuple(version)]
            assert keys, (name, version)
            assert declared[max(keys, key=vtuple)] == mapping[version], (name, version)
    else:
        assert "extends" not in entry
    own = set(cls.fields) - (
        set(osvif_class(EXTENDS[name][0]).fields) if name in EXTENDS else set()
    )
    assert set(entry.get("fields", {})) == own
    for field in own:
        since = entry["fields"][field]["since"]
        assert since == FIELD_SINCE.get(name, {}).get(field, "1.0"), (name, field)
    for (owner, field), rels in OSVIF_RELATIONSHIPS.items():
        if owner == name:
            assert schema_child_versions(owner, field) == rels


# ---------------------------------------------------------------------------
# Tests: conversion, case by case
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,version,mode", CASES)
def test_convert_matches_osvif(name, version, mode, tmp_path):
    case = (name, version, mode)
    sample = SAMPLES[name]()
    current = sample.obj_to_primitive()
    manifest = ovo_base.obj_tree_get_versions(name) if mode == MANIFEST else None

    osvif_out = None
    osvif_error = None
    try:
        if manifest is None:
            osvif_out = sample.obj_to_primitive(target_version=version)
        else:
            osvif_out = sample.obj_to_primitive(target_version=version, version_manifest=manifest)
    except Exception as error:  # noqa: BLE001 - every failure is checked below
        osvif_error = error

    out = vproto_convert(current, version, manifest, tmp_path)
    expected = expected_conversion(current, version, manifest)

    if osvif_error is not None:
        assert case in KNOWN_OSVIF_FAILURES, f"new os-vif failure: {osvif_error!r}"
        kind, message = KNOWN_OSVIF_FAILURES[case]
        assert type(osvif_error) is kind and message in str(osvif_error), repr(osvif_error)
        absent, children = KNOWN_FAILURE_EXPECTATIONS[case]
        assert out[VERSION] == version
        for field in absent:
            assert field not in out[DATA], field
            assert field not in out.get(CHANGES, []), field
        assert set(out[DATA]) == set(current[DATA]) - absent
        for field, child in children.items():
            assert child_version(out, field) == child
        assert canonical(out) == canonical(expected)
    else:
        assert case not in KNOWN_OSVIF_FAILURES, "os-vif no longer fails here: update the table"
        wanted = copy.deepcopy(osvif_out)
        applied = apply_deviations(wanted, case)
        assert canonical(out) == canonical(wanted), f"deviations applied to os-vif: {applied}"

    # os-vif reads vproto's output back, with exactly the fields that version has.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = osv_base.VersionedObject.obj_from_primitive(out)
    assert back.obj_name() == name
    assert hydrated_tree(back) == primitive_tree(strip_changes(expected))


def test_every_deviation_case_exists():
    ids = {(p.values[0], p.values[1], p.values[2]) for p in CASES}
    for deviation in DEVIATIONS:
        assert set(deviation.cases) <= ids, deviation.key
    assert set(KNOWN_OSVIF_FAILURES) <= ids
    assert set(KNOWN_FAILURE_EXPECTATIONS) == set(KNOWN_OSVIF_FAILURES)


# ---------------------------------------------------------------------------
# Tests: rejected input
# ---------------------------------------------------------------------------


def _rejected(proc: subprocess.CompletedProcess[bytes]) -> str:
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 2, (proc.returncode, stderr)
    assert proc.stdout == b""
    assert stderr.strip(), "no error message"
    return stderr


def _primitive(name: str) -> dict[str, Any]:
    return SAMPLES[name]().obj_to_primitive()


def test_rejects_target_newer_than_current():
    stderr = _rejected(run_vproto(json.dumps(_primitive("Network")), "--to", "1.2"))
    assert "1.2" in stderr
    assert "1.1" in stderr, "the message must name the highest supported version"


def test_rejects_input_newer_than_current():
    primitive = _primitive("VIFVHostUser")
    primitive[VERSION] = "1.7"
    stderr = _rejected(run_vproto(json.dumps(primitive), "--to", "1.0"))
    assert "1.7" in stderr
    assert "1.1" in stderr, "the message must name the highest supported version"


def test_rejects_unknown_object():
    primitive = _primitive("InstanceInfo")
    primitive[NAME] = "VIFQuantumEntangled"
    stderr = _rejected(run_vproto(json.dumps(primitive), "--to", "1.0"))
    assert "VIFQuantumEntangled" in stderr


def test_rejects_missing_required_field():
    primitive = _primitive("HostVIFInfo")
    del primitive[DATA]["vif_object_name"]
    stderr = _rejected(run_vproto(json.dumps(primitive), "--to", "1.0"))
    assert "vif_object_name" in stderr


def test_rejects_wrong_type_naming_the_path():
    primitive = _primitive("VIFBridge")
    primitive[DATA]["network"][DATA]["subnets"][DATA]["objects"][1][DATA]["ips"][DATA]["objects"][
        0
    ][DATA]["floating_ips"] = ["2001:db8:ff::10", 12]
    stderr = _rejected(run_vproto(json.dumps(primitive), "--to", "1.0"))
    # The path from the top: network > subnets > second subnet > ips > first IP > floating_ips.
    assert re.search(
        r"network\W+subnets\W+(objects\W+)?1\W+ips\W+(objects\W+)?0\W+floating_ips", stderr
    ), stderr


def test_rejects_wrong_scalar_type():
    primitive = _primitive("Network")
    primitive[DATA]["mtu"] = "1450"
    stderr = _rejected(run_vproto(json.dumps(primitive), "--to", "1.0"))
    assert "mtu" in stderr


def test_rejects_malformed_json():
    stderr = _rejected(run_vproto('{"versioned_object.name": "Network", ', "--to", "1.0"))
    assert re.search(r"json|pars|syntax|eof|end of|expected", stderr, re.IGNORECASE), stderr


def test_rejects_impossible_manifest_version(tmp_path):
    stderr = _rejected(
        run_vproto(
            json.dumps(_primitive("VIFBridge")),
            "--to",
            "1.0",
            tmp_path=tmp_path,
            manifest={"VIFBridge": "1.0", "Network": "1.7"},
        )
    )
    assert "Network" in stderr
    assert "1.7" in stderr


# ---------------------------------------------------------------------------
# Tests: a manifest naming the concrete class of a polymorphic child
# ---------------------------------------------------------------------------


def test_manifest_entry_for_concrete_child_wins(tmp_path):
    """vproto looks a child up in the manifest by its concrete class first.

    oslo only ever looks up the field's declared class (VIFPortProfileBase for
    port_profile), so os-vif would send this port profile at "1.1", the
    VIFPortProfileBase entry; vproto honours the VIFPortProfileOpenVSwitch
    entry. Without such an entry both behave the same (see the cases above).
    """
    sample = SAMPLES["VIFOpenVSwitch"]()
    current = sample.obj_to_primitive()
    manifest = dict(ovo_base.obj_tree_get_versions("VIFOpenVSwitch"))
    manifest["VIFPortProfileOpenVSwitch"] = "1.3"
    out = vproto_convert(current, "1.0", manifest, tmp_path)
    profile = out[DATA]["port_profile"]
    assert profile[VERSION] == "1.3"
    assert "create_port" in profile[DATA]
    assert "create_tap" not in profile[DATA] and "multiqueue" not in profile[DATA]
    assert profile[DATA]["datapath_offload"][VERSION] == "1.0"
    assert canonical(out) == canonical(expected_conversion(current, "1.0", manifest))
    # What os-vif does with the same manifest, for the record.
    osvif_out = sample.obj_to_primitive(target_version="1.0", version_manifest=manifest)
    assert osvif_out[DATA]["port_profile"][VERSION] == "1.1"
