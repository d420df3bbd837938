//! What the answers of failed Secrets Manager calls mean for KES.

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::Error;

/// What a failed SDK call means for KES. Only the AWS error code decides,
/// never the HTTP status. Service error messages never contain secret values.
/// Public for the fuzz targets only.
#[doc(hidden)]
pub fn map_error<E>(err: SdkError<E, HttpResponse>, action: &str, name: &str) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let context = format!("aws: failed to {action} '{name}'");
    match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let raw = service.raw();
            // Some front ends (and moto, for authentication failures) answer
            // JSON-protocol calls with an XML error that the SDK cannot parse.
            let body = raw.body().bytes().and_then(|b| std::str::from_utf8(b).ok());
            let code = e
                .code()
                .map(str::to_owned)
                .or_else(|| body.and_then(|b| xml_element(b, "Code")));
            match code.as_deref() {
                Some("ResourceExistsException") => Error::KeyExists,
                Some("ResourceNotFoundException") => Error::KeyNotFound,
                code => {
                    let message = e
                        .message()
                        .map(str::to_owned)
                        .or_else(|| body.and_then(|b| xml_element(b, "Message")));
                    Error::other(format!(
                        "{context}: {}: {} (HTTP {})",
                        code.unwrap_or("unknown error"),
                        message.as_deref().unwrap_or("no message"),
                        raw.status().as_u16()
                    ))
                }
            }
        }
        SdkError::TimeoutError(_) => Error::unreachable(context).with_source(err),
        SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
            Error::unreachable(context).with_source(err)
        }
        _ => Error::other(context).with_source(err),
    }
}

/// The text of the first `<tag>` element of an XML error body.
fn xml_element(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let len = body[start..].find(&format!("</{tag}>"))?;
    let text = body[start..start + len].trim();
    // An error code or message is short; anything else is not one.
    (!text.is_empty() && text.len() <= 512).then(|| text.to_owned())
}
