//! The whole vdsm corpus (`../shared/corpora/vdsm`, beside the checkout): imported, checked,
//! every verb and type accounted for.

mod support;

use vproto_import::vdsm;

#[test]
fn the_whole_api_imports_and_passes_every_check() {
    let folder = support::vdsm_corpus();
    let imported = vdsm::import(&folder.join("vdsm-api.yml"), Some(&folder.join("vdsm-events.yml"))).expect("imports");
    if let Err(diagnostics) = imported.check() {
        panic!("{diagnostics}");
    }
    let schema = &imported.schema;
    let methods: usize = schema.services.values().map(|service| service.methods.len()).sum();
    assert_eq!(methods, 205, "every verb of vdsm-api.yml is a method");
    assert_eq!(
        schema.types.len() + schema.objects.len(),
        372 + 3,
        "every type of both files (the events file adds StatusDetails, StatusMap, JobInfo)"
    );
    let events: usize = schema.services.values().map(|service| service.events.len()).sum();
    assert_eq!(events, 4, "every event of vdsm-events.yml");
    let host = &schema.services["host"];
    let fence = &host.methods["fence_node"];
    assert!(fence.params["policy"].since.is_some() && !fence.params["policy"].required, "a late param is optional");
    assert_eq!(fence.result.as_ref().and_then(|r| r.object.as_deref()), Some("FenceNodeResult"));
    assert!(schema.objects["BalloonInfo"].fields["balloon_cur"].schema.json_type.is_some());
    assert!(!imported.notes.is_empty());
}
