//! The guest channel (`guest.*`) through the generated dispatcher every transport serves:
//! answers from a given live state (negotiation, filters, declared errors, the wait for the
//! first reading), and from this machine's own NICs and counters (`GuestChannel::standalone`).
//! The same service in a network namespace with traffic is `cli/tests/guest_channel.rs`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use vproto_api::{GuestInfo, GuestNicCountersList, GuestServer, OsInfo};
use vproto_netlink::{Interface, Mac};
use vproto_services::guest_agent::{LiveState, Snapshot};
use vproto_services::guest_channel::GuestChannel;
use vproto_services::guest_tree::GuestLayout;
use vproto_support::rpc::{codes, Handler, Params, RpcError};
use vproto_support::wire::{PlainObject, WirePath, WireValue};

fn server(live: &LiveState) -> GuestServer<GuestChannel> {
    GuestServer(Arc::new(GuestChannel::new(live.clone()).with_first_reading_wait(Duration::from_millis(200))))
}

async fn call(server: &GuestServer<GuestChannel>, method: &str, params: Value) -> Result<Value, RpcError> {
    server.handle(method, Params::ByName(params.as_object().unwrap().clone())).await
}

fn snapshot() -> Snapshot {
    let os = OsInfo {
        name: "Debian GNU/Linux".into(),
        version: Some("12".into()),
        kernel_version: Some("6.1.0-18-amd64".into()),
        distro: Some("debian".into()),
    };
    let eth0 = Interface {
        // No link of this machine has this index: its counters are never found.
        index: u32::MAX,
        name: "eth0".into(),
        mac: Mac([0xfa, 0x16, 0x3e, 0x11, 0x22, 0x33]),
        addresses: vec![("192.0.2.10".parse().unwrap(), 24)],
        admin_up: true,
        carrier: false,
    };
    Snapshot::new(GuestLayout::V1, &os, vec![eth0])
}

#[tokio::test]
async fn info_is_the_snapshots_guest_info_for_a_reader_of_its_major() {
    let live = LiveState::new();
    let snapshot = snapshot();
    live.publish(snapshot.clone());
    let server = server(&live);
    let expected = snapshot.info.to_wire();
    assert_eq!(call(&server, "guest.info", json!({})).await.unwrap(), expected);
    assert_eq!(call(&server, "guest.info", json!({"version": "1.0"})).await.unwrap(), expected);
    assert_eq!(call(&server, "guest.info", json!({"version": "1.7"})).await.unwrap(), expected);
    assert_eq!(expected["nics"][0]["mac"], "fa:16:3e:11:22:33");
    assert_eq!(expected["os"]["distro"], "debian");

    let error = call(&server, "guest.info", json!({"version": "2.0"})).await.unwrap_err();
    assert_eq!(error.code, 1004, "{error:?}");
    let written = <GuestInfo as PlainObject>::info().version.to_string();
    assert_eq!(error.data, Some(json!({"object": "GuestInfo", "max_version": written})));
    let error = call(&server, "guest.info", json!({"version": "1"})).await.unwrap_err();
    assert_eq!(error.code, codes::INVALID_PARAMS, "the pattern is checked before the handler: {error:?}");
    assert!(error.data.unwrap().to_string().contains("/version"));
}

#[tokio::test]
async fn a_filter_that_matches_no_nic_is_unknown_nic_repeating_the_filter() {
    let live = LiveState::new();
    live.publish(snapshot());
    let server = server(&live);
    for filter in [
        json!({"name": "eth1"}),
        json!({"mac": "fa:16:3e:00:00:01"}),
        json!({"name": "eth0", "mac": "fa:16:3e:00:00:01"}),
        // eth0 matches, but its counters cannot be read (it is gone from this machine).
        json!({"name": "eth0"}),
    ] {
        let error = call(&server, "guest.nic_counters", filter.clone()).await.unwrap_err();
        assert_eq!((error.code, error.data), (1200, Some(filter.clone())), "{filter}");
    }
    // Without a filter a NIC whose counters cannot be read is left out, not an error.
    let all = call(&server, "guest.nic_counters", json!({})).await.unwrap();
    assert_eq!(all["nics"], json!([]));

    let error = call(&server, "guest.nic_counters", json!({"name": ""})).await.unwrap_err();
    assert_eq!(error.code, codes::INVALID_PARAMS, "{error:?}");
    let error = call(&server, "guest.nic_counters", json!({"mac": "fa:16:3e"})).await.unwrap_err();
    assert_eq!(error.code, codes::INVALID_PARAMS, "{error:?}");
}

#[tokio::test]
async fn before_the_first_reading_a_call_waits_then_fails_as_internal() {
    let live = LiveState::new();
    let error = call(&server(&live), "guest.info", json!({})).await.unwrap_err();
    assert_eq!(error.code, codes::INTERNAL_ERROR, "{error:?}");

    let waiting = tokio::spawn({
        let live = live.clone();
        async move { call(&server(&live), "guest.info", json!({})).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    live.publish(snapshot());
    assert_eq!(waiting.await.unwrap().unwrap()["nics"][0]["name"], "eth0", "answered once the reading came");
}

/// This machine's own NICs (whatever they are, perhaps none), followed from netlink as
/// `vproto serve guest` does (`GuestChannel::standalone`): the counters are of the NICs GuestInfo lists, in its order, and
/// only grow.
#[tokio::test]
async fn counters_are_of_the_nics_guest_info_lists_and_only_grow() {
    let (channel, follower) = GuestChannel::standalone();
    let server = GuestServer(Arc::new(channel));
    let info = call(&server, "guest.info", json!({})).await.unwrap();
    let first = call(&server, "guest.nic_counters", json!({})).await.unwrap();
    let second = call(&server, "guest.nic_counters", json!({})).await.unwrap();
    let first = GuestNicCountersList::from_wire(&first, &WirePath::root()).unwrap();
    let second = GuestNicCountersList::from_wire(&second, &WirePath::root()).unwrap();
    let identify = |name: &Value, mac: &Value| format!("{name} {mac}");
    let listed: Vec<String> =
        info["nics"].as_array().unwrap().iter().map(|nic| identify(&nic["name"], &nic["mac"])).collect();
    let counted: Vec<String> =
        first.nics.iter().map(|nic| identify(&json!(nic.name), &json!(nic.mac.as_str()))).collect();
    assert_eq!(counted, listed, "the same NICs in the same order (none went away meanwhile)");
    assert!(second.read_at >= first.read_at, "{} then {}", first.read_at, second.read_at);
    for (before, after) in first.nics.iter().zip(&second.nics) {
        for (a, b) in [(&before.rx, &after.rx), (&before.tx, &after.tx)] {
            assert!(b.bytes >= a.bytes && b.packets >= a.packets, "{}: {a:?} then {b:?}", before.name);
            assert!(b.errors >= a.errors && b.dropped >= a.dropped, "{}: {a:?} then {b:?}", before.name);
        }
    }
    if let Some(nic) = first.nics.first() {
        let one = call(&server, "guest.nic_counters", json!({"mac": nic.mac.as_str().to_uppercase()})).await.unwrap();
        assert_eq!(one["nics"].as_array().unwrap().len(), 1, "{one}");
        assert_eq!(one["nics"][0]["name"], json!(nic.name));
    }
    follower.abort();
}
