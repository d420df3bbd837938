//! AWS Secrets Manager responses: the real SDK client (the same operations
//! the key store calls) is driven against canned HTTP responses, and errors
//! go through the key store's error mapping. The input picks the operation,
//! the status, an error-type header and the body.
#![no_main]

use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region, SharedHttpClient};
use aws_sdk_secretsmanager::Client;
use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpConnector, HttpConnectorFuture, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use kes_fuzz::Input;
use kes_keystore::aws::map_error;
use kes_keystore::Error;
use libfuzzer_sys::fuzz_target;
use std::sync::{Mutex, OnceLock};

/// The response the connector answers with next.
static NEXT: Mutex<Option<(u16, Option<String>, Vec<u8>)>> = Mutex::new(None);

#[derive(Debug)]
struct Canned;

impl HttpConnector for Canned {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let (status, error_type, body) =
            NEXT.lock().unwrap().take().expect("one response per call");
        let mut response = HttpResponse::new(
            StatusCode::try_from(status).expect("valid status"),
            SdkBody::from(body),
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
        HttpConnectorFuture::ready(Ok(response))
    }
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let http: SharedHttpClient = http_client_fn(|_, _| SharedHttpConnector::new(Canned));
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "AKIDFUZZ",
                "fuzz-secret",
                None,
                None,
                "fuzz",
            ))
            .endpoint_url("http://127.0.0.1:1")
            .http_client(http)
            // Every call gets exactly one canned response.
            .retry_config(RetryConfig::disabled())
            .build();
        Fixture {
            runtime,
            client: Client::from_conf(config),
        }
    })
}

fn check(err: Error) {
    // Only the AWS error code decides; the message is for the log.
    if let Error::Other { message, .. } = &err {
        assert!(message.starts_with("aws: failed to "), "{message}");
    }
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let mut input = Input(data);
    let op = input.byte();
    let status = 200 + u16::from(input.byte()) * 2;
    let error_type = match input.byte() % 4 {
        0 => None,
        1 => Some("ResourceNotFoundException".to_string()),
        2 => Some("ResourceExistsException:http://internal.amazon.com/".to_string()),
        _ => Some(input.text()),
    };
    let body = input.rest().to_vec();
    *NEXT.lock().unwrap() = Some((status, error_type, body));
    let client = &fixture.client;
    fixture.runtime.block_on(async {
        match op % 4 {
            0 => match client
                .get_secret_value()
                .secret_id("kes/my-key")
                .send()
                .await
            {
                Ok(output) => {
                    let _value = output
                        .secret_string
                        .map(String::into_bytes)
                        .or(output.secret_binary.map(|b| b.into_inner()));
                }
                Err(err) => check(map_error(err, "read", "kes/my-key")),
            },
            1 => match client.list_secrets().max_results(100).send().await {
                Ok(page) => {
                    for entry in page.secret_list.unwrap_or_default() {
                        if let Some(name) = entry.name.as_deref() {
                            let _ = kes_core::name::valid_name(name);
                        }
                    }
                }
                Err(err) => check(map_error(err, "list", "kes/")),
            },
            2 => {
                if let Err(err) = client
                    .create_secret()
                    .name("kes/my-key")
                    .secret_string("value")
                    .send()
                    .await
                {
                    check(map_error(err, "create", "kes/my-key"));
                }
            }
            _ => {
                if let Err(err) = client
                    .delete_secret()
                    .secret_id("kes/my-key")
                    .force_delete_without_recovery(true)
                    .send()
                    .await
                {
                    check(map_error(err, "delete", "kes/my-key"));
                }
            }
        }
    });
    // A failure before dispatch would leave the response unused.
    NEXT.lock().unwrap().take();
});
