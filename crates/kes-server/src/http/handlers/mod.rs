//! One function per API endpoint, grouped by what they serve: keys,
//! policies, identities, the server itself, its logs. Handlers see the
//! [`Call`] with an authorised caller and a size-limited body; they return
//! an [`Answer`] or an [`ApiError`], which [`crate::http::wire::error`]
//! turns into bytes. Key-store failures are mapped to API errors here and only here,
//! with their detail going to the error log.

mod crypto;
mod deletion;
mod identity;
mod key;
mod log;
mod policy;
mod system;

pub(crate) use crate::http::server::Call;

use crate::http::routes::Endpoint;
use crate::http::wire::Body;
use hyper::Response;
use kes_core::name::{valid_name, valid_pattern};
use kes_core::ApiError;

pub use system::VERSION;

/// A handler's answer plus what the audit log should say about it.
pub(crate) struct Answer {
    pub response: Response<Body>,
    pub audit: Option<String>,
}

impl From<Response<Body>> for Answer {
    fn from(response: Response<Body>) -> Self {
        Answer {
            response,
            audit: None,
        }
    }
}

type Result<T> = std::result::Result<T, ApiError>;

impl Call<'_> {
    /// The resource as a key, policy or identity name, or the error
    /// `invalid` makes of it when it is not a valid name.
    fn name(&self, invalid: fn(&str) -> ApiError) -> Result<&str> {
        if valid_name(&self.resource) {
            Ok(&self.resource)
        } else {
            Err(invalid(&self.resource))
        }
    }
}

/// Runs the handler of `endpoint`.
pub(crate) async fn dispatch(req: &Call<'_>, endpoint: Endpoint) -> Result<Answer> {
    use Endpoint::*;
    match endpoint {
        Version => system::version(),
        Ready => system::ready(req).await,
        Status => system::status(req).await,
        Metrics => system::metrics(req),
        Api => system::api(req),
        KeyCreate => key::create_key(req).await,
        KeyImport => key::import_key(req).await,
        KeyDescribe => key::describe_key(req).await,
        KeyList => key::list_keys(req).await,
        KeyDelete => key::delete_key(req).await,
        KeyGenerate => crypto::generate(req).await,
        KeyEncrypt => crypto::encrypt(req).await,
        KeyDecrypt => crypto::decrypt(req).await,
        KeyHmac => crypto::hmac(req).await,
        KeyBulkDecrypt => crypto::bulk_decrypt(req).await,
        KeyRotate => key::rotate_key(req).await,
        KeyRetire => key::retire_key(req).await,
        KeyRestore => deletion::restore_key(req).await,
        KeyDeleted => deletion::list_deleted(req).await,
        PolicyDescribe => policy::describe_policy(req),
        PolicyRead => policy::read_policy(req),
        PolicyList => policy::list_policies(req),
        IdentityDescribe => identity::describe_identity(req),
        IdentitySelfDescribe => identity::self_describe(req),
        IdentityList => identity::list_identities(req),
        LogError | LogAudit => log::follow(req, endpoint),
    }
}

/// Query parameters of list endpoints. Without `limit`, every match is
/// returned in one response (the Go KES's 1024-name pages lose keys with
/// the Go SDK, which resends `continue_at` as the prefix).
pub struct Paging<'a> {
    continue_at: Option<&'a str>,
    limit: Option<usize>,
}

/// The `continue_at` and `limit` of a list call's query string.
pub fn paging(query: &str) -> Paging<'_> {
    let mut p = Paging {
        continue_at: None,
        limit: None,
    };
    for kv in query.split('&') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "continue" | "continue_at" if !v.is_empty() => p.continue_at = Some(v),
            "limit" => p.limit = v.parse().ok().filter(|n| *n > 0),
            _ => {}
        }
    }
    p
}

/// Applies paging to sorted names: names from `continue_at` on, at most
/// `limit`; returns the page and the first name not returned.
pub fn page(names: Vec<String>, paging: &Paging<'_>) -> (Vec<String>, String) {
    let start = match paging.continue_at {
        Some(c) => names.partition_point(|n| n.as_str() < c),
        None => 0,
    };
    let mut names = names;
    let rest = names.split_off(start);
    match paging.limit {
        Some(limit) if rest.len() > limit => {
            let next = rest[limit].clone();
            let mut page = rest;
            page.truncate(limit);
            (page, next)
        }
        _ => (rest, String::new()),
    }
}

/// The prefix a list pattern (`prefix` or `prefix*`) matches, or the
/// API error for a pattern the Go KES refuses.
pub fn list_prefix(pattern: &str) -> Result<&str> {
    if !valid_pattern(pattern) {
        return Err(ApiError::invalid_pattern(pattern));
    }
    // The Go KES strips the trailing `*` for policies and identities but
    // not for keys; we strip it everywhere.
    Ok(pattern.strip_suffix('*').unwrap_or(pattern))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn paging_returns_everything_without_limit() {
        let all = names(&["a", "b", "c"]);
        assert_eq!(page(all.clone(), &paging("")), (all.clone(), String::new()));
        assert_eq!(
            page(all.clone(), &paging("limit=2")),
            (names(&["a", "b"]), "c".to_string())
        );
        assert_eq!(
            page(all.clone(), &paging("continue=c&limit=2")),
            (names(&["c"]), String::new())
        );
        assert_eq!(
            page(all, &paging("continue=bb")),
            (names(&["c"]), String::new())
        );
    }

    #[test]
    fn list_prefix_strips_star() {
        assert_eq!(list_prefix("golden-i*").unwrap(), "golden-i");
        assert_eq!(list_prefix("*").unwrap(), "");
        assert_eq!(list_prefix("").unwrap(), "");
        assert!(list_prefix("a.b").is_err());
    }
}
