use proptest::prelude::*;

use super::{DEFAULT_SEPARATOR, MAX_TOOL_NAME_LEN, ToolIndex, ToolRef, exposed_name};

fn is_valid(name: &str) -> bool {
    (1..=MAX_TOOL_NAME_LEN).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn pair(p: &str, t: &str) -> (String, String) {
    (p.to_owned(), t.to_owned())
}

#[test]
fn plain_names_join_provider_and_tool() {
    assert_eq!(exposed_name("math", "add", DEFAULT_SEPARATOR), "math__add");
    assert_eq!(exposed_name("math", "add", "-"), "math-add");
    assert_eq!(exposed_name("fs", "read.file/v2", "__"), "fs__read_file_v2");
    assert_eq!(exposed_name("fs", "héllo wörld", "__"), "fs__h_llo_w_rld");
    assert_eq!(exposed_name("fs", "", "__"), "fs___");
    assert_eq!(exposed_name("", "", ""), "_");
    assert_eq!(exposed_name("a", "b", "."), "a_b");
}

#[test]
fn long_names_are_shortened_deterministically() {
    let tool = "t".repeat(100);
    let name = exposed_name("provider", &tool, "__");
    assert_eq!(name.len(), 64);
    assert!(is_valid(&name));
    assert!(name.starts_with("provider__ttt"));
    assert_eq!(name.as_bytes().get(55), Some(&b'-'));
    assert_eq!(name, exposed_name("provider", &tool, "__"));
    // Same sanitized prefix, different full names: different hashes.
    let other = exposed_name("provider", &format!("{tool}x"), "__");
    assert_ne!(name, other);
    // Exactly 64 is kept as is.
    let tool = "t".repeat(64 - "p__".len());
    assert_eq!(exposed_name("p", &tool, "__"), format!("p__{tool}"));
}

#[test]
fn sanitizing_collisions_are_disambiguated_and_reported() {
    // "b.c" and "b_c" both sanitize to "a__b_c".
    let index = ToolIndex::build(
        vec![pair("a", "b.c"), pair("a", "b_c"), pair("x", "y")],
        "__",
    );
    assert_eq!(index.len(), 3);
    assert_eq!(index.resolve("x__y").map(|r| r.tool.as_str()), Some("y"));
    assert!(index.resolve("a__b_c").is_none());
    let collisions = index.collisions();
    assert_eq!(collisions.len(), 1);
    assert_eq!(
        collisions.first().map(|c| c.exposed.as_str()),
        Some("a__b_c")
    );
    assert_eq!(collisions.first().map(|c| c.tools.len()), Some(2));
    for tool in ["b.c", "b_c"] {
        let name = index
            .exposed_name_of("a", tool)
            .unwrap_or_default()
            .to_owned();
        assert!(name.starts_with("a__b_c-"), "{name}");
        assert_eq!(name.len(), "a__b_c-".len() + 8);
        assert_eq!(
            index.resolve(&name),
            Some(&ToolRef {
                provider: "a".to_owned(),
                tool: tool.to_owned()
            })
        );
    }
}

#[test]
fn separator_collisions_are_disambiguated() {
    // With "-" as separator, "a-b" + "c" and "a" + "b-c" both read "a-b-c".
    let index = ToolIndex::build(vec![pair("a-b", "c"), pair("a", "b-c")], "-");
    assert_eq!(index.len(), 2);
    assert_eq!(index.collisions().len(), 1);
    assert!(index.resolve("a-b-c").is_none());
    assert_ne!(
        index.exposed_name_of("a-b", "c"),
        index.exposed_name_of("a", "b-c")
    );
}

#[test]
fn shortened_names_that_collide_are_disambiguated() {
    // Two long names whose 55-char prefixes match and whose (salted) hashes differ never
    // share a name; a long name whose shortened form equals another tool's literal name is
    // also told apart.
    let long = "t".repeat(80);
    let shortened = exposed_name("p", &long, "__");
    let literal_tool = shortened.strip_prefix("p__").unwrap_or_default().to_owned();
    let index = ToolIndex::build(vec![pair("p", &long), pair("p", &literal_tool)], "__");
    assert_eq!(index.len(), 2);
    assert_eq!(
        index.collisions().first().map(|c| c.exposed.clone()),
        Some(shortened.clone())
    );
    let a = index.exposed_name_of("p", &long).unwrap_or_default();
    let b = index
        .exposed_name_of("p", &literal_tool)
        .unwrap_or_default();
    assert_ne!(a, b);
    assert!(is_valid(a) && is_valid(b), "{a} {b}");
}

#[test]
fn duplicate_entries_are_merged_not_collisions() {
    let index = ToolIndex::build(vec![pair("m", "add"), pair("m", "add")], "__");
    assert_eq!(index.len(), 1);
    assert!(index.collisions().is_empty());
    assert_eq!(index.exposed_name_of("m", "add"), Some("m__add"));
    assert_eq!(index.exposed_name_of("m", "sub"), None);
    assert!(ToolIndex::default().is_empty());
}

#[test]
fn iteration_is_sorted() {
    let index = ToolIndex::build(vec![pair("b", "x"), pair("a", "y"), pair("a", "x")], "__");
    let names: Vec<&str> = index.iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a__x", "a__y", "b__x"]);
}

#[test]
fn disambiguated_names_avoid_natural_ones() {
    use sha2::{Digest, Sha256};
    // "q"+"r.s" and "q"+"r_s" collide on "q__r_s"; a third tool naturally owns the name the
    // first would get ("q__r_s-<hash of q\0r.s>"), so the first must be salted instead.
    let hash = hex::encode(Sha256::digest(b"q\0r.s").get(..4).unwrap_or_default());
    let squatter = format!("r_s-{hash}");
    let index = ToolIndex::build(
        vec![pair("q", "r.s"), pair("q", "r_s"), pair("q", &squatter)],
        "__",
    );
    assert_eq!(index.len(), 3);
    assert_eq!(
        index.exposed_name_of("q", &squatter),
        Some(format!("q__{squatter}").as_str())
    );
    let first = index.exposed_name_of("q", "r.s").unwrap_or_default();
    assert!(
        first.starts_with("q__r_s-") && first != format!("q__{squatter}"),
        "{first}"
    );
    let names: std::collections::BTreeSet<&str> = index.iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 3);
}

fn entry() -> impl Strategy<Value = (String, String)> {
    (
        prop_oneof!["[a-c]{1,3}", "[a-c_-]{1,3}", "[a-zA-Z0-9_-]{50,70}"],
        prop_oneof!["[a-c._ -]{0,3}", "\\PC{0,6}", "[a-z]{60,90}"],
    )
}

proptest! {
    #[test]
    fn exposed_names_are_always_valid(p in "\\PC{0,80}", t in "\\PC{0,80}", sep in "\\PC{0,3}") {
        let name = exposed_name(&p, &t, &sep);
        prop_assert!(is_valid(&name), "{name:?}");
    }

    #[test]
    fn index_is_valid_injective_complete_and_order_independent(
        entries in prop::collection::vec(entry(), 0..40),
        seed in any::<u64>(),
    ) {
        let index = ToolIndex::build(entries.clone(), "__");
        let mut distinct: Vec<(String, String)> = entries.clone();
        distinct.sort();
        distinct.dedup();
        prop_assert_eq!(index.len(), distinct.len());
        let mut refs: Vec<&ToolRef> = Vec::new();
        for (name, tool_ref) in index.iter() {
            prop_assert!(is_valid(name), "{name:?}");
            refs.push(tool_ref);
        }
        refs.sort();
        refs.dedup();
        prop_assert_eq!(refs.len(), distinct.len());
        for (p, t) in &distinct {
            let name = index.exposed_name_of(p, t);
            prop_assert!(name.is_some());
            let resolved = name.and_then(|n| index.resolve(n));
            prop_assert_eq!(resolved.map(|r| (&r.provider, &r.tool)), Some((p, t)));
        }
        // Shuffle deterministically with the seed and rebuild.
        let mut shuffled = entries;
        let len = shuffled.len();
        let mut state = seed | 1;
        for i in (1..len).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let j = usize::try_from(state % (i as u64 + 1)).unwrap_or(0);
            shuffled.swap(i, j);
        }
        prop_assert_eq!(ToolIndex::build(shuffled, "__"), index);
    }
}

mod modes {
    use super::super::{NamingEntry, NamingMode, ToolIndex, ToolRef};

    fn entries(list: &[(&str, &str)]) -> Vec<NamingEntry> {
        list.iter()
            .map(|(p, t)| NamingEntry::plain(*p, *t))
            .collect()
    }

    fn route(index: &ToolIndex, name: &str) -> Option<(String, String)> {
        index
            .resolve(name)
            .map(|r| (r.provider.clone(), r.tool.clone()))
    }

    #[test]
    fn bare_keeps_tool_names_and_disambiguates_shared_ones() {
        let index = ToolIndex::build_named(
            entries(&[("a", "x"), ("b", "x"), ("b", "y")]),
            NamingMode::Bare,
            "__",
        );
        assert_eq!(index.len(), 3);
        assert_eq!(route(&index, "y"), Some(("b".into(), "y".into())));
        assert!(index.resolve("x").is_none());
        assert_eq!(index.collisions().len(), 1);
        for p in ["a", "b"] {
            let name = index.exposed_name_of(p, "x").unwrap_or_default();
            assert!(name.starts_with("x-") && name.len() == 10, "{name}");
        }
    }

    #[test]
    fn conditional_prefixes_only_what_collides_and_reports_it() {
        let index = ToolIndex::build_named(
            entries(&[("a", "x"), ("b", "x"), ("b", "y")]),
            NamingMode::Conditional,
            "__",
        );
        assert_eq!(route(&index, "y"), Some(("b".into(), "y".into())));
        assert_eq!(route(&index, "a__x"), Some(("a".into(), "x".into())));
        assert_eq!(route(&index, "b__x"), Some(("b".into(), "x".into())));
        let c = index.collisions();
        assert_eq!(c.len(), 1);
        assert_eq!(c.first().map(|c| c.exposed.as_str()), Some("x"));
        // A bare name equal to another tool's prefixed name: both kept.
        let index = ToolIndex::build_named(
            entries(&[("a", "x"), ("b", "x"), ("c", "a__x")]),
            NamingMode::Conditional,
            "__",
        );
        assert_eq!(index.len(), 3);
        let names: Vec<&str> = index.iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 3);
    }

    #[test]
    fn prefix_and_rename_shape_the_name_not_the_route() {
        let entry = NamingEntry {
            tool_ref: ToolRef {
                provider: "time".into(),
                tool: "get_current_time".into(),
            },
            prefix: "t".into(),
            name: "now".into(),
        };
        for (mode, want) in [
            (NamingMode::Prefixed, "t__now"),
            (NamingMode::Conditional, "now"),
            (NamingMode::Bare, "now"),
        ] {
            let index = ToolIndex::build_named([entry.clone()], mode, "__");
            assert_eq!(
                route(&index, want),
                Some(("time".into(), "get_current_time".into())),
                "{mode:?}"
            );
        }
    }

    #[test]
    fn long_bare_names_stay_within_64() {
        let long = "t".repeat(80);
        let index = ToolIndex::build_named(entries(&[("p", &long)]), NamingMode::Bare, "__");
        let name = index.exposed_name_of("p", &long).unwrap_or_default();
        assert_eq!(name.len(), 64);
        assert!(name.starts_with("ttt"));
    }
}
