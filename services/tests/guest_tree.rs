//! Guest data trees: encode/decode round trips (hostile names included), the
//! exact paths of both layouts, versioning rules and every `TreeError`.

use std::collections::BTreeMap;

use vproto_api::{
    layouts::GUEST_V1, GuestAddress, GuestInfo, GuestNic, GuestProtocol, IPAddress, LinkState, MACAddress, OsInfo,
};
use vproto_services::guest_tree::GuestLayout;
use vproto_support::{
    tree::{decode, encode, DataTree, FieldKind, LayoutVersion, Leaf, Node, Scalar, TreeError, TreeField},
    wire::Constraints,
};

fn nic(name: &str, mac: &str, addresses: &[(&str, i64)], up: bool) -> GuestNic {
    GuestNic {
        name: name.into(),
        mac: MACAddress::new(mac).expect("a valid MAC"),
        addresses: addresses
            .iter()
            .map(|(address, prefix_length)| GuestAddress {
                address: IPAddress::new(*address).expect("a valid address"),
                prefix_length: *prefix_length,
            })
            .collect(),
        link: LinkState { admin_up: up, carrier: up },
    }
}

fn sample() -> GuestInfo {
    GuestInfo {
        protocol: GuestProtocol { name: "vproto-guest-data".into(), layout_version: "1.1.0".into() },
        os: OsInfo {
            name: "Debian GNU/Linux".into(),
            version: Some("12".into()),
            kernel_version: Some("6.1.0-18-amd64".into()),
            distro: Some("debian".into()),
        },
        nics: vec![
            nic("eth0", "fa:16:3e:11:22:33", &[("192.0.2.10", 24), ("2001:db8::1", 64)], true),
            nic("enX1", "fa:16:3e:44:55:66", &[("198.51.100.7", 25), ("fe80::f816:3eff:fe44:5566", 64)], false),
        ],
    }
}

/// Lists in decoded trees come in path order; compare them in that order.
fn normalized(mut info: GuestInfo) -> GuestInfo {
    info.nics.sort_by(|a, b| a.mac.as_str().cmp(b.mac.as_str()));
    for nic in &mut info.nics {
        nic.addresses.sort_by_key(|a| vproto_support::tree::mangle_key(Some("ip-address"), a.address.as_str()));
    }
    info
}

fn entries(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn v1_paths_are_exactly_the_schemas() {
    let info = GuestInfo { nics: vec![nic("eth0", "FA:16:3E:11:22:33", &[("2001:DB8:0::1", 64)], true)], ..sample() };
    let expected = entries(&[
        ("data/vproto/protocol/name", "vproto-guest-data"),
        ("data/vproto/protocol/layout_version", "1.1.0"),
        ("data/vproto/os/name", "Debian GNU/Linux"),
        ("data/vproto/os/version", "12"),
        ("data/vproto/os/distro", "debian"),
        ("data/vproto/os/unix/kernel_version", "6.1.0-18-amd64"),
        ("data/vproto/nics/fa-16-3e-11-22-33/name", "eth0"),
        ("data/vproto/nics/fa-16-3e-11-22-33/mac", "FA:16:3E:11:22:33"),
        ("data/vproto/nics/fa-16-3e-11-22-33/link/admin_up", "1"),
        ("data/vproto/nics/fa-16-3e-11-22-33/link/carrier", "1"),
        ("data/vproto/nics/fa-16-3e-11-22-33/addresses/2001-db8--1/address", "2001:DB8:0::1"),
        ("data/vproto/nics/fa-16-3e-11-22-33/addresses/2001-db8--1/prefix_length", "64"),
    ]);
    assert_eq!(GuestLayout::V1.encode(&info), expected);
    assert_eq!(GuestLayout::V1.owned_roots(), &["data/vproto"]);
}

#[test]
fn the_writer_publishes_its_own_layout_version() {
    let mut info = sample();
    info.protocol.layout_version = "9.9.9".into();
    let tree = GuestLayout::V1.encode(&info);
    assert_eq!(tree["data/vproto/protocol/layout_version"], GUEST_V1.layout_version.to_string());
}

#[test]
fn v1_round_trip() {
    let info = sample();
    let decoded = GuestLayout::V1.decode(&GuestLayout::V1.encode(&info)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(normalized(decoded), normalized(info));
}

#[test]
fn hostile_names_are_only_values() {
    let long = "x".repeat(5000);
    let hostile = ["../../../local/domain/0/evil", "a/b", "x\0y", "..", "/", "Ethernet 2", long.as_str(), ""];
    for (index, name) in hostile.iter().enumerate() {
        let mac = format!("02:00:00:00:00:{index:02x}");
        let info = GuestInfo { nics: vec![nic(name, &mac, &[("192.0.2.1", 24)], true)], ..sample() };
        let tree = GuestLayout::V1.encode(&info);
        for path in tree.keys() {
            assert!(path.starts_with("data/vproto/"), "{path:?} escapes the tree");
            assert!(
                path.split('/').all(|s| !s.is_empty()
                    && s != ".."
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')),
                "{path:?} has an unsafe segment"
            );
        }
        assert_eq!(tree[&format!("data/vproto/nics/02-00-00-00-00-{index:02x}/name")], *name);
        let decoded = GuestLayout::V1.decode(&tree).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decoded.nics[0].name, *name);
        // The legacy layout has no place for names: only eth<N>/enX<N> give a VIF id, no other name counts.
        assert!(!GuestLayout::Legacy.encode(&info).keys().any(|path| path.starts_with("attr/vif")));
    }
}

#[test]
fn a_duplicate_key_keeps_the_first_entry_whole() {
    let info = GuestInfo {
        nics: vec![
            nic("eth0", "fa:16:3e:11:22:33", &[("192.0.2.10", 24)], true),
            nic("eth0.100", "fa:16:3e:11:22:33", &[("198.51.100.1", 24)], false),
        ],
        ..sample()
    };
    let tree = GuestLayout::V1.encode(&info);
    assert_eq!(tree["data/vproto/nics/fa-16-3e-11-22-33/name"], "eth0");
    assert!(!tree.keys().any(|path| path.contains("198-51-100-1")));
    let decoded = GuestLayout::V1.decode(&tree).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(decoded.nics.len(), 1);
}

#[test]
fn readers_accept_newer_minors_and_skip_unknown_keys() {
    let mut tree = GuestLayout::V1.encode(&sample());
    tree.insert("data/vproto/protocol/layout_version".into(), "1.7.3".into());
    tree.insert("data/vproto/disks/xvda/size".into(), "1024".into());
    tree.insert("data/vproto/os/windows/build".into(), "22631".into());
    tree.insert("data/vproto/nics/fa-16-3e-11-22-33/mtu".into(), "1500".into());
    // Intermediate directory nodes, as a Xenstore walk returns them.
    for dir in ["data", "data/vproto", "data/vproto/nics", "data/vproto/nics/fa-16-3e-11-22-33"] {
        tree.insert(dir.into(), String::new());
    }
    let decoded = GuestLayout::V1.decode(&tree).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(decoded.protocol.layout_version, "1.7.3");
    assert_eq!(normalized(GuestInfo { protocol: sample().protocol, ..decoded }), normalized(sample()));
}

#[test]
fn absent_optional_values_and_empty_lists() {
    let tree = entries(&[
        ("data/vproto/protocol/name", "vproto-guest-data"),
        ("data/vproto/protocol/layout_version", "1.0.0"),
        ("data/vproto/os/name", "Microsoft Windows"),
    ]);
    let decoded = GuestLayout::V1.decode(&tree).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(decoded.os.kernel_version, None);
    assert_eq!(decoded.os.distro, None);
    assert!(decoded.nics.is_empty());
}

fn v1_error(change: impl FnOnce(&mut BTreeMap<String, String>)) -> TreeError {
    let mut tree = GuestLayout::V1.encode(&sample());
    change(&mut tree);
    GuestLayout::V1.decode(&tree).expect_err("the tree should be refused")
}

const NIC: &str = "data/vproto/nics/fa-16-3e-11-22-33";

#[test]
fn no_tree() {
    let error = GuestLayout::V1.decode(&entries(&[("data/os_name", "Debian")])).unwrap_err();
    assert_eq!(error, TreeError::NoTree { root: "data/vproto".into() });
    assert!(error.to_string().starts_with("data/vproto: no data tree"), "{error}");
}

#[test]
fn missing_version() {
    let error = v1_error(|t| {
        t.remove("data/vproto/protocol/layout_version");
    });
    assert_eq!(error, TreeError::MissingVersion { path: "data/vproto/protocol/layout_version".into() });
}

#[test]
fn malformed_versions() {
    for bad in ["1.0", "01.0.0", "1.0.0-rc1", "x", "", "1.0.0.0", "99999999999999999999.0.0"] {
        let error = v1_error(|t| {
            t.insert("data/vproto/protocol/layout_version".into(), bad.into());
        });
        assert!(matches!(&error, TreeError::BadVersion { path, .. } if path == "data/vproto/protocol/layout_version"));
        assert!(error.to_string().contains("layout version"), "{error}");
    }
}

#[test]
fn unknown_major_versions_are_refused_with_a_clear_message() {
    let error = v1_error(|t| {
        t.insert("data/vproto/protocol/layout_version".into(), "2.0.0".into());
    });
    assert_eq!(
        error.to_string(),
        "data/vproto/protocol/layout_version: layout 2.0.0 is newer than this reader, which reads 1.x"
    );
    let error = v1_error(|t| {
        t.insert("data/vproto/protocol/layout_version".into(), "0.9.0".into());
    });
    assert_eq!(
        error.to_string(),
        "data/vproto/protocol/layout_version: layout 0.9.0 is older than this reader, which reads 1.x"
    );
}

#[test]
fn missing_required_values() {
    let error = v1_error(|t| {
        t.remove("data/vproto/os/name");
    });
    assert_eq!(error, TreeError::Missing { path: "data/vproto/os/name".into(), why: "OsInfo.name is required".into() });
    let error = v1_error(|t| t.retain(|path, _| !path.starts_with("data/vproto/os/")));
    assert_eq!(error.path(), "data/vproto/os");
    let error = v1_error(|t| {
        t.remove(&format!("{NIC}/link/carrier"));
    });
    assert_eq!(error.path(), format!("{NIC}/link/carrier"));
}

#[test]
fn values_failing_their_type_or_format() {
    let cases = [
        (format!("{NIC}/mac"), "fa:16:3e:11:22", "mac-address"),
        (format!("{NIC}/link/admin_up"), "true", "is not a boolean, written 1 or 0"),
        (format!("{NIC}/addresses/192-0-2-10/prefix_length"), "24.0", "is not a decimal integer"),
        (format!("{NIC}/addresses/192-0-2-10/prefix_length"), "024", "is not a decimal integer"),
        (format!("{NIC}/addresses/192-0-2-10/prefix_length"), "129", "more than the maximum 128"),
        (format!("{NIC}/addresses/192-0-2-10/address"), "192.0.2.300", "ip-address"),
        ("data/vproto/protocol/name".to_string(), "other-protocol", "is not one of vproto-guest-data"),
        ("data/vproto/os/distro".to_string(), "Debian/../x", "does not match the pattern"),
    ];
    for (path, value, words) in cases {
        let error = v1_error(|t| {
            t.insert(path.clone(), value.into());
        });
        assert!(matches!(&error, TreeError::BadValue { path: at, .. } if *at == path), "{path}: {error:?}");
        assert!(error.to_string().contains(words), "{path}: {error}");
    }
}

#[test]
fn an_entry_must_be_named_by_its_mangled_key() {
    let error = v1_error(|t| {
        t.insert(format!("{NIC}/mac"), "fa:16:3e:00:00:01".into());
    });
    assert_eq!(
        error,
        TreeError::KeyMismatch {
            path: NIC.into(),
            segment: "fa-16-3e-11-22-33".into(),
            key: "mac".into(),
            value: "\"fa:16:3e:00:00:01\"".into(),
            expected: "fa-16-3e-00-00-01".into(),
        }
    );
    let error = v1_error(|t| {
        let moved: Vec<(String, String)> = t
            .iter()
            .filter(|(p, _)| p.contains("/addresses/192-0-2-10/"))
            .map(|(p, v)| (p.replace("192-0-2-10", "192.0.2.10"), v.clone()))
            .collect();
        t.retain(|p, _| !p.contains("/addresses/192-0-2-10/"));
        t.extend(moved);
    });
    assert!(matches!(error, TreeError::KeyMismatch { ref segment, .. } if segment == "192.0.2.10"), "{error:?}");
}

/// A strict layout of LinkState, to exercise what the guest objects (which
/// all tolerate unknown fields) never refuse.
static STRICT_LINK: DataTree = DataTree {
    name: "strict_link",
    description: "test",
    object: "LinkState",
    root: "link",
    version_key: "version",
    layout_version: LayoutVersion::new(3, 1, 0),
    history: &[],
    node: Node {
        object: "LinkState",
        tolerate_unknown_keys: false,
        fields: &[
            TreeField {
                name: "admin_up",
                path: &["admin", "up"],
                required: true,
                kind: FieldKind::Leaf(Leaf { scalar: Scalar::Boolean, constraints: Constraints::NONE }),
            },
            TreeField {
                name: "carrier",
                path: &["carrier"],
                required: false,
                kind: FieldKind::Leaf(Leaf { scalar: Scalar::Boolean, constraints: Constraints::NONE }),
            },
        ],
    },
};

#[test]
fn the_codec_is_generic_over_descriptors() {
    let link = LinkState { admin_up: true, carrier: false };
    let tree = encode(&STRICT_LINK, &link);
    assert_eq!(tree, entries(&[("link/admin/up", "1"), ("link/carrier", "0"), ("link/version", "3.1.0")]));
    assert_eq!(decode::<LinkState>(&STRICT_LINK, &tree), Ok(link));
}

#[test]
fn unknown_keys_are_refused_where_the_object_does_not_tolerate_them() {
    let mut tree = encode(&STRICT_LINK, &LinkState { admin_up: true, carrier: true });
    tree.insert("link/admin".into(), String::new()); // a directory on the way is no unknown key
    assert!(decode::<LinkState>(&STRICT_LINK, &tree).is_ok());
    tree.insert("link/speed".into(), "1000".into());
    let error = decode::<LinkState>(&STRICT_LINK, &tree).unwrap_err();
    assert_eq!(error, TreeError::UnknownKey { path: "link/speed".into(), object: "LinkState".into() });
    tree.remove("link/speed");
    tree.insert("link/admin/up/extra".into(), "x".into());
    let error = decode::<LinkState>(&STRICT_LINK, &tree).unwrap_err();
    assert_eq!(error.path(), "link/admin/up/extra");
}

#[test]
fn the_schema_checks_the_assembled_object() {
    // `carrier` is optional in this descriptor but required by LinkState itself.
    let tree = entries(&[("link/admin/up", "1"), ("link/version", "3.0.0")]);
    let error = decode::<LinkState>(&STRICT_LINK, &tree).unwrap_err();
    assert!(
        matches!(&error, TreeError::Invalid { path, why } if path == "link" && why.contains("carrier")),
        "{error:?}"
    );
}

#[test]
fn layouts_parse_and_print() {
    assert_eq!("v1".parse::<GuestLayout>(), Ok(GuestLayout::V1));
    assert_eq!("legacy".parse::<GuestLayout>(), Ok(GuestLayout::Legacy));
    assert!("v2".parse::<GuestLayout>().unwrap_err().to_string().contains("`v1` or `legacy`"));
    assert_eq!(GuestLayout::Legacy.to_string(), "legacy");
    assert_eq!(GuestLayout::V1.layout_version(), GUEST_V1.layout_version);
}

#[test]
fn legacy_paths_follow_xe_guest_utilities() {
    let mut info = sample();
    info.nics.push(nic("docker0", "02:42:ac:11:00:01", &[("172.17.0.1", 16)], true));
    info.nics.push(nic("eth01", "02:42:ac:11:00:02", &[("172.18.0.1", 16)], true));
    let version = env!("CARGO_PKG_VERSION").split('.').collect::<Vec<_>>();
    let expected = entries(&[
        ("data/os_name", "Debian GNU/Linux"),
        ("data/os_distro", "debian"),
        ("data/os_majorver", "12"),
        ("data/os_minorver", "unknown"),
        ("data/os_uname", "6.1.0-18-amd64"),
        ("attr/vif/0/ipv4/0", "192.0.2.10"),
        ("attr/vif/0/ipv6/0", "2001:db8::1"),
        ("attr/vif/1/ipv4/0", "198.51.100.7"),
        ("attr/vif/1/ipv6/0", "fe80::f816:3eff:fe44:5566"),
        ("attr/PVAddons/Installed", "1"),
        ("attr/PVAddons/MajorVersion", version[0]),
        ("attr/PVAddons/MinorVersion", version[1]),
        ("attr/PVAddons/MicroVersion", version[2]),
        ("attr/PVAddons/BuildVersion", "0"),
        ("data/updated", "1"),
    ]);
    let tree = GuestLayout::Legacy.encode(&info);
    assert_eq!(tree, expected);
    let owned = GuestLayout::Legacy.owned_roots();
    assert!(tree.keys().all(|path| owned.iter().any(|root| path == root || path.starts_with(&format!("{root}/")))));
}

#[test]
fn legacy_versions_split_as_xe_linux_distribution_does() {
    use vproto_services::guest_tree::legacy::split_version;
    let split = |v: &str| split_version(v);
    assert_eq!(split("12"), ("12".into(), "unknown".into()));
    assert_eq!(split("22.04"), ("22".into(), "04".into()));
    assert_eq!(split("15.5.1"), ("15".into(), "5".into()));
    assert_eq!(split(""), ("unknown".into(), "unknown".into()));
    assert_eq!(split("rolling"), ("unknown".into(), "unknown".into()));
}

fn legacy_tree() -> BTreeMap<String, String> {
    let mut tree = GuestLayout::Legacy.encode(&sample());
    // What the toolstack writes in the guest's frontend directories.
    tree.extend(entries(&[
        ("device/vif/0/mac", "fa:16:3e:11:22:33"),
        ("device/vif/0/state", "4"),
        ("device/vif/1/mac", "fa:16:3e:44:55:66"),
        ("device/vif/1/state", "1"),
    ]));
    tree
}

#[test]
fn legacy_round_trip_with_the_toolstack_nodes() {
    let decoded = GuestLayout::Legacy.decode(&legacy_tree()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(decoded.protocol.layout_version, "0.0.0");
    assert_eq!(decoded.os.name, "Debian GNU/Linux");
    assert_eq!(decoded.os.version.as_deref(), Some("12"));
    assert_eq!(decoded.os.distro.as_deref(), Some("debian"));
    assert_eq!(decoded.os.kernel_version.as_deref(), Some("6.1.0-18-amd64"));
    let expected = vec![
        nic("vif0", "fa:16:3e:11:22:33", &[("192.0.2.10", 32), ("2001:db8::1", 128)], true),
        nic("vif1", "fa:16:3e:44:55:66", &[("198.51.100.7", 32), ("fe80::f816:3eff:fe44:5566", 128)], false),
    ];
    assert_eq!(decoded.nics, expected);
    assert!(GuestLayout::Legacy.read_roots().contains(&"device/vif"));
}

#[test]
fn legacy_errors_name_the_path() {
    let refuse = |change: &dyn Fn(&mut BTreeMap<String, String>)| {
        let mut tree = legacy_tree();
        change(&mut tree);
        GuestLayout::Legacy.decode(&tree).expect_err("the tree should be refused")
    };
    assert!(matches!(GuestLayout::Legacy.decode(&BTreeMap::new()), Err(TreeError::NoTree { .. })));
    assert_eq!(refuse(&|t| drop(t.remove("data/updated"))).path(), "data/updated");
    assert_eq!(refuse(&|t| drop(t.remove("data/os_name"))).path(), "data/os_name");
    assert_eq!(refuse(&|t| drop(t.remove("device/vif/1/mac"))).path(), "device/vif/1/mac");
    assert_eq!(refuse(&|t| drop(t.insert("device/vif/1/mac".into(), "nope".into()))).path(), "device/vif/1/mac");
    assert_eq!(refuse(&|t| drop(t.insert("attr/vif/x/ipv4/0".into(), "192.0.2.1".into()))).path(), "attr/vif/x");
    assert_eq!(
        refuse(&|t| drop(t.insert("attr/vif/0/ipv4/01".into(), "192.0.2.1".into()))).path(),
        "attr/vif/0/ipv4/01"
    );
    let error = refuse(&|t| drop(t.insert("attr/vif/0/ipv4/1".into(), "2001:db8::2".into())));
    assert_eq!(error.to_string(), "attr/vif/0/ipv4/1: \"2001:db8::2\" is not an IPV4 address");
    assert_eq!(refuse(&|t| drop(t.insert("data/os_distro".into(), "Debian GNU".into()))).path(), "data/os_distro");
}
