//! Running the real `kes` binary in CLI tests.

use super::TestServer;
use std::process::{Command, Output, Stdio};

/// Every variable the commands read, so the caller's environment never
/// leaks into a test.
pub(crate) const VARS: [&str; 20] = [
    "MINIO_KES_SERVER",
    "KES_SERVER",
    "MINIO_KMS_KES_ENDPOINT",
    "MINIO_KES_API_KEY",
    "KES_API_KEY",
    "MINIO_KMS_KES_API_KEY",
    "MINIO_KES_CERT_FILE",
    "KES_CLIENT_CERT",
    "MINIO_KES_CLIENT_CERT",
    "MINIO_KMS_KES_CERT_FILE",
    "MINIO_KES_KEY_FILE",
    "KES_CLIENT_KEY",
    "MINIO_KES_CLIENT_KEY",
    "MINIO_KMS_KES_KEY_FILE",
    "KES_CLIENT_KEY_PASSWORD",
    "MINIO_KMS_KES_KEY_PASSWORD",
    "KES_CA",
    "MINIO_KMS_KES_CAPATH",
    "NO_COLOR",
    "KES_IDENTITY_PASSWORD",
];

/// `kes` with no KES variables set.
pub(crate) fn bare() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kes"));
    for v in VARS {
        cmd.env_remove(v);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// `kes` pointed at the server as the admin, trusting its certificate.
pub(crate) fn kes(server: &TestServer) -> Command {
    let mut cmd = bare();
    cmd.env("KES_SERVER", server.addr.to_string())
        .env("KES_API_KEY", server.setup.admin.to_kes_string().as_str())
        .env("KES_CA", &server.setup.server_cert);
    cmd
}

/// Runs a command and prints what it did (shown when a test fails).
pub(crate) fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run kes");
    eprintln!(
        "$ {:?}\nexit: {:?}\nstdout: {}stderr: {}",
        cmd.get_args().collect::<Vec<_>>(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
