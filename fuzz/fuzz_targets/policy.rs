//! Policy patterns and matching, and name validation, against plain
//! references written from the spec.
#![no_main]

use kes_core::name::valid_name;
use kes_core::policy::{pattern_matches, Policy};
use kes_fuzz::reference;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Case {
    allow: Vec<String>,
    deny: Vec<String>,
    paths: Vec<String>,
}

fuzz_target!(|case: Case| {
    let policy = Policy {
        allow: case.allow.clone(),
        deny: case.deny.clone(),
    };
    for path in &case.paths {
        assert_eq!(
            policy.allows(path),
            reference::policy_allows(&case.allow, &case.deny, path),
            "{policy:?} {path:?}"
        );
        assert_eq!(valid_name(path), reference::valid_name(path), "{path:?}");
        for pattern in case.allow.iter().chain(&case.deny) {
            assert_eq!(
                pattern_matches(pattern, path),
                reference::pattern_matches(pattern, path)
            );
        }
    }
});
