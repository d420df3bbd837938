//! Parsing never panics, whatever the text.

use super::*;
use proptest::prelude::*;

const TEMPLATE: &str = include_str!("../data/config/vault-approle.yml");

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn on_arbitrary_text(text in "\\PC{0,400}") {
        let _ = ServerConfig::parse(&text);
    }

    #[test]
    fn on_mutated_configs(
        edits in proptest::collection::vec(
            (any::<prop::sample::Index>(), prop::sample::select(vec![
                "", " ", "\n", "\t", ":", "- ", "[", "]", "{", "}", "&a ", "*a", "<<: ", "'", "\"",
                "${X}", "!!str ", "~", "0", "-1s", "#", "? ", "|", ">", "\\",
            ])),
            1..6,
        )
    ) {
        let mut text = TEMPLATE.to_string();
        for (at, insert) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            text.insert_str(i, insert);
        }
        let _ = ServerConfig::parse(&text);
    }
}

#[test]
fn on_deep_nesting() {
    let err = ServerConfig::parse(&"[".repeat(1_000_000)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("kesconf: invalid YAML in line 1: "),
        "{err}"
    );
    let err = ServerConfig::parse(&"a:\n ".repeat(10_000)).unwrap_err();
    assert!(err.to_string().contains("kesconf: invalid YAML"), "{err}");
}
