//! Pairing the members of two revisions by the name they travel under, not by the name code
//! calls them: a field, param, method or event renamed in the schema but keeping its wire name
//! is the same member on the wire (a source-breaking rename), and one whose wire name changed
//! under the same schema name is, for peers, a removal and an addition at once.

/// The members of one collection in both revisions, paired.
pub(super) struct Pairs<'s, T> {
    /// Members present in both revisions under the same wire name: (old name, old, new name, new).
    pub(super) matched: Vec<Pair<'s, T>>,
    /// Members with the same schema name whose wire name changed: (old name, old, new name, new).
    pub(super) rewired: Vec<Pair<'s, T>>,
    /// Old members with neither their wire name nor their schema name left.
    pub(super) removed: Vec<(&'s str, &'s T)>,
    /// New members with neither name in the old revision.
    pub(super) added: Vec<(&'s str, &'s T)>,
}

/// One member in both revisions, each with its schema name.
pub(super) struct Pair<'s, T> {
    pub(super) old_name: &'s str,
    pub(super) old: &'s T,
    pub(super) new_name: &'s str,
    pub(super) new: &'s T,
}

/// Pairs `before` with `after` (each `(schema name, member)`, in schema order), where `wire`
/// gives a member's wire name from its schema name and itself.
pub(super) fn pair_by_wire<'s, T>(
    before: &[(&'s str, &'s T)],
    after: &[(&'s str, &'s T)],
    wire: impl Fn(&'s str, &'s T) -> String,
) -> Pairs<'s, T> {
    let mut pairs = Pairs { matched: Vec::new(), rewired: Vec::new(), removed: Vec::new(), added: Vec::new() };
    let mut unclaimed: Vec<(&'s str, &'s T)> = after.to_vec();
    let mut unmatched = Vec::new();
    for &(old_name, old) in before {
        let old_wire = wire(old_name, old);
        match unclaimed.iter().position(|&(name, member)| wire(name, member) == old_wire) {
            Some(index) => {
                let (new_name, new) = unclaimed.remove(index);
                pairs.matched.push(Pair { old_name, old, new_name, new });
            }
            None => unmatched.push((old_name, old)),
        }
    }
    for (old_name, old) in unmatched {
        match unclaimed.iter().position(|&(name, _)| name == old_name) {
            Some(index) => {
                let (new_name, new) = unclaimed.remove(index);
                pairs.rewired.push(Pair { old_name, old, new_name, new });
            }
            None => pairs.removed.push((old_name, old)),
        }
    }
    pairs.added = unclaimed;
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(name: &str, member: &Option<&'static str>) -> String {
        member.unwrap_or(name).to_string()
    }

    #[test]
    fn members_pair_by_wire_name_first_then_by_schema_name() {
        let before: [(&str, &Option<&str>); 4] =
            [("vm_id", &Some("vmID")), ("mem", &None), ("gone", &None), ("rewired", &Some("old"))];
        let after: [(&str, &Option<&str>); 4] =
            [("vm", &Some("vmID")), ("mem", &None), ("rewired", &Some("new")), ("fresh", &None)];
        let pairs = pair_by_wire(&before, &after, wire);
        let matched: Vec<_> = pairs.matched.iter().map(|p| (p.old_name, p.new_name)).collect();
        assert_eq!(matched, [("vm_id", "vm"), ("mem", "mem")]);
        let rewired: Vec<_> = pairs.rewired.iter().map(|p| (p.old_name, p.new_name)).collect();
        assert_eq!(rewired, [("rewired", "rewired")]);
        assert_eq!(pairs.removed.iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["gone"]);
        assert_eq!(pairs.added.iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["fresh"]);
    }
}
