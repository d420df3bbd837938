//! Request paths: Go `ServeMux` path cleaning and route lookup. The cleaned
//! path must equal Go's `cleanPath` (a transcription of `path.Clean`), the
//! router must redirect exactly the paths that are not clean, and every
//! redirect target must route without another redirect.
#![no_main]

use kes_fuzz::reference;
use kes_server::fuzzing::{clean_path, Lookup, RouteTable};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static TABLE: OnceLock<RouteTable> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let path = String::from_utf8_lossy(data);
    let cleaned = clean_path(&path);
    assert_eq!(
        cleaned,
        reference::go_clean_path(&path),
        "clean_path({path:?})"
    );
    assert_eq!(clean_path(&cleaned), cleaned, "idempotent");

    let table = TABLE.get_or_init(RouteTable::default);
    match table.lookup(&path) {
        Lookup::Redirect(to) => {
            assert_ne!(to, path);
            assert_eq!(to, cleaned);
            assert!(!matches!(table.lookup(&to), Lookup::Redirect(_)), "{to:?}");
        }
        Lookup::Found(route, resource) => {
            assert_eq!(cleaned, path);
            assert!(path.starts_with(route.path) || format!("{path}/") == route.path);
            assert!(path.ends_with(resource.as_str()));
        }
        Lookup::NotFound => assert_eq!(cleaned, path),
    }
});
