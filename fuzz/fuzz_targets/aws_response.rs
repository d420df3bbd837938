//! AWS Secrets Manager responses: the SDK's own response deserialisers for
//! the six operations the key store calls (the code the SDK's orchestrator
//! runs on every answer), then the key store's error mapping. The input
//! picks the operation, the status, an error-type header and the body.
//!
//! The deserialisers are called directly, through each operation's runtime
//! plugin, instead of through a client and its orchestrator: that path
//! signs every request and resolves its endpoint first, none of which sees
//! a byte of the response, and ran at 700 executions/s instead of tens of
//! thousands. What the orchestrator adds after deserialising, the
//! conversion into an `SdkError`, is rebuilt here the same way.
#![no_main]

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::create_secret::{CreateSecret, CreateSecretError};
use aws_sdk_secretsmanager::operation::delete_secret::{DeleteSecret, DeleteSecretError};
use aws_sdk_secretsmanager::operation::get_secret_value::{
    GetSecretValue, GetSecretValueError, GetSecretValueOutput,
};
use aws_sdk_secretsmanager::operation::list_secrets::{
    ListSecrets, ListSecretsError, ListSecretsOutput,
};
use aws_sdk_secretsmanager::operation::put_secret_value::{PutSecretValue, PutSecretValueError};
use aws_sdk_secretsmanager::operation::update_secret_version_stage::{
    UpdateSecretVersionStage, UpdateSecretVersionStageError,
};
use aws_smithy_runtime_api::client::interceptors::context::Output;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::runtime_plugin::RuntimePlugin;
use aws_smithy_runtime_api::client::ser_de::{DeserializeResponse, SharedResponseDeserializer};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, FrozenLayer};
use kes_fuzz::Input;
use kes_keystore::aws::map_error;
use kes_keystore::Error;
use libfuzzer_sys::fuzz_target;
use std::fmt::Debug;
use std::sync::OnceLock;

/// The config layer of an operation's runtime plugin: it holds the
/// operation's response deserialiser.
fn layer(operation: impl RuntimePlugin) -> FrozenLayer {
    operation.config().expect("an operation has a config layer")
}

/// The operations' layers, in the order the input's first byte picks them.
fn layers() -> &'static [FrozenLayer; 6] {
    static ALL: OnceLock<[FrozenLayer; 6]> = OnceLock::new();
    ALL.get_or_init(|| {
        [
            layer(GetSecretValue::new()),
            layer(ListSecrets::new()),
            layer(CreateSecret::new()),
            layer(DeleteSecret::new()),
            layer(PutSecretValue::new()),
            layer(UpdateSecretVersionStage::new()),
        ]
    })
}

/// Deserialises `response` as the orchestrator does (the streaming hook
/// first, then the body) and turns a failure into the `SdkError` a client
/// call returns, mapped by the key store. `Some` holds the type-erased
/// output.
fn decode<E>(index: usize, mut response: HttpResponse, action: &str) -> Option<Output>
where
    E: ProvideErrorMetadata + std::error::Error + Debug + Send + Sync + 'static,
{
    let cfg = ConfigBag::base();
    let de = layers()[index]
        .load::<SharedResponseDeserializer>()
        .expect("an operation has a response deserialiser");
    let result = match de.deserialize_streaming_with_config(&mut response, &cfg) {
        Some(result) => result,
        None => de.deserialize_nonstreaming_with_config(&response, &cfg),
    };
    let err = match result {
        Ok(output) => return Some(output),
        Err(err) => err,
    };
    // The generated deserialisers fail with operation errors only (a body
    // they cannot parse is an unhandled operation error); any other kind
    // becomes the response error the orchestrator would report.
    let sdk_error: SdkError<E, HttpResponse> = if err.is_operation_error() {
        let mut operation_error = None;
        err.map_operation_error(|e| {
            operation_error = Some(e.downcast::<E>().expect("the operation's error type"));
        });
        SdkError::service_error(operation_error.expect("an operation error"), response)
    } else {
        SdkError::response_error(err, response)
    };
    check(map_error(sdk_error, action, "kes/my-key"));
    None
}

fn check(err: Error) {
    // Only the AWS error code decides; the message is for the log.
    if let Error::Other { message, .. } = &err {
        assert!(message.starts_with("aws: failed to "), "{message}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let op = input.byte() % 6;
    let status = 200 + u16::from(input.byte()) * 2;
    let error_type = match input.byte() % 4 {
        0 => None,
        1 => Some("ResourceNotFoundException".to_string()),
        2 => Some("ResourceExistsException:http://internal.amazon.com/".to_string()),
        _ => Some(input.text()),
    };
    let mut response = HttpResponse::new(
        StatusCode::try_from(status).expect("valid status"),
        SdkBody::from(input.rest()),
    );
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.1");
    if let Some(error_type) = error_type {
        // A value a real HTTP stack could not deliver is left out.
        let _ = response
            .headers_mut()
            .try_insert("x-amzn-errortype", error_type);
    }
    match op {
        0 => {
            if let Some(output) = decode::<GetSecretValueError>(0, response, "read") {
                let output = output.downcast::<GetSecretValueOutput>().expect("output");
                // What the key store keeps of it.
                let _value = output
                    .secret_string
                    .map(String::into_bytes)
                    .or(output.secret_binary.map(|b| b.into_inner()));
                let _old = output.version_id;
            }
        }
        1 => {
            if let Some(output) = decode::<ListSecretsError>(1, response, "list") {
                let page = output.downcast::<ListSecretsOutput>().expect("output");
                for entry in page.secret_list.unwrap_or_default() {
                    if let Some(name) = entry.name.as_deref() {
                        let _ = kes_core::name::valid_name(name);
                    }
                }
                let _next = page.next_token;
            }
        }
        2 => drop(decode::<CreateSecretError>(2, response, "create")),
        3 => drop(decode::<DeleteSecretError>(3, response, "delete")),
        4 => drop(decode::<PutSecretValueError>(4, response, "replace")),
        _ => drop(decode::<UpdateSecretVersionStageError>(
            5,
            response,
            "deprecate the old value of",
        )),
    }
});
