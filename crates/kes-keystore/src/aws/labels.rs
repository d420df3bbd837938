//! The second half of `replace_if`: the compare-and-swap on the
//! `AWSCURRENT` label, and the reads and relabels around it.

use aws_sdk_secretsmanager::Client;
use zeroize::Zeroizing;

use super::map_error;
use super::{CURRENT_STAGE, PENDING_STAGE, PREVIOUS_STAGE};
use crate::Error;

/// The second half of `replace_if`: puts `text` as a new version that only
/// carries [`PENDING_STAGE`], then moves `AWSCURRENT` to it from
/// `read_version`, which AWS refuses unless the label is still there.
pub(super) async fn swap_current(
    client: &Client,
    secret_name: &str,
    read_version: &str,
    text: &str,
) -> Result<(), Error> {
    // The SDK fills in a fresh random ClientRequestToken (an idempotency
    // token) once per call and keeps it across its own retries, so a
    // retried put never makes a second version.
    let put = client
        .put_secret_value()
        .secret_id(secret_name)
        .secret_string(text)
        .version_stages(PENDING_STAGE)
        .send()
        .await
        .map_err(|err| map_error(err, "replace", secret_name))?;
    let new_version = put.version_id.ok_or_else(|| {
        Error::other(format!(
            "aws: failed to replace '{secret_name}': no version id in the answer"
        ))
    })?;
    let moved = client
        .update_secret_version_stage()
        .secret_id(secret_name)
        .version_stage(CURRENT_STAGE)
        .move_to_version_id(&new_version)
        .remove_from_version_id(read_version)
        .send()
        .await;
    if let Err(err) = moved {
        let err = map_error(err, "replace", secret_name);
        if err == Error::KeyNotFound {
            // Deleted meanwhile, with the pending version.
            return Err(Error::KeyNotFound);
        }
        // Refused, or no answer. Which version carries AWSCURRENT now
        // tells which: the SDK retries a move whose answer was lost, and
        // the retry is refused although the first attempt moved the label.
        match read_current(client, secret_name).await {
            Ok((_, now)) if now == new_version => {}
            Ok((_, now)) => {
                unlabel(client, secret_name, PENDING_STAGE, &new_version).await;
                return Err(if now == *read_version {
                    err
                } else {
                    Error::Changed
                });
            }
            Err(Error::KeyNotFound) => return Err(Error::KeyNotFound),
            Err(_) => {
                unlabel(client, secret_name, PENDING_STAGE, &new_version).await;
                return Err(err);
            }
        }
    }
    // Done: the rest is tidying up. AWS put AWSPREVIOUS on the old
    // value; without any label it is a deprecated version, which AWS
    // deletes on its own (AWS offers no call to delete one version of a
    // secret at once).
    unlabel(client, secret_name, PENDING_STAGE, &new_version).await;
    unlabel(client, secret_name, PREVIOUS_STAGE, read_version).await;
    Ok(())
}

/// The value of the `AWSCURRENT` version of a secret, and that version's
/// id. The stage is named although it is the default: moto answers a read
/// without it from the version the last put made current, even after
/// `UpdateSecretVersionStage` moved the label.
pub(super) async fn read_current(
    client: &Client,
    secret_name: &str,
) -> Result<(Zeroizing<Vec<u8>>, String), Error> {
    let output = client
        .get_secret_value()
        .secret_id(secret_name)
        .version_stage(CURRENT_STAGE)
        .send()
        .await
        .map_err(|err| map_error(err, "read", secret_name))?;
    let version = output.version_id.unwrap_or_default();
    // Moved, not copied, into zeroizing buffers. The SDK's own copies (the
    // HTTP response body and the JSON it parsed the value from) are freed
    // without wiping: out of our reach.
    if let Some(text) = output.secret_string {
        return Ok((Zeroizing::new(text.into_bytes()), version));
    }
    if let Some(binary) = output.secret_binary {
        return Ok((Zeroizing::new(binary.into_inner()), version));
    }
    Err(Error::other(format!(
        "aws: failed to read '{secret_name}': secret has no value"
    )))
}

/// Removes `stage` from `version`, if it is still there (AWS refuses
/// otherwise, and then it is on another version, which is left alone).
/// Only tidying up after the decision of a compare-and-swap: a failure is
/// logged, never returned.
async fn unlabel(client: &Client, secret_name: &str, stage: &str, version: &str) {
    let removed = client
        .update_secret_version_stage()
        .secret_id(secret_name)
        .version_stage(stage)
        .remove_from_version_id(version)
        .send()
        .await;
    if let Err(err) = removed {
        let err = map_error(err, "relabel", secret_name);
        tracing::debug!(error = %err, stage, "aws: label not removed");
    }
}
