//! Starts moto's AWS emulator (`moto_server`) on loopback for a test.
//!
//! The executable comes from `KES_TEST_MOTO_SERVER` (set by `scripts/test`).
//! The tests that start moto are `#[ignore]`d; run (`--include-ignored`)
//! without it they fail, so that a missing emulator never looks like a
//! green run.

use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long moto may take to answer after being started.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The `moto_server` executable; panics with instructions when it is not
/// configured.
pub fn moto_server_path() -> PathBuf {
    crate::external_tool(
        "KES_TEST_MOTO_SERVER",
        "a moto_server executable (pip install 'moto[server]==5.2.*')",
    )
}

/// Runs moto's own `main` with werkzeug's `threaded` turned off (moto has
/// no flag for it).
const SERIAL_LAUNCHER: &str = "import sys, moto.server as m\n\
orig = m.run_simple\n\
m.run_simple = lambda *a, **k: orig(*a, **{**k, 'threaded': False})\n\
sys.exit(m.main(sys.argv[1:]))\n";

/// A running `moto_server`, killed by PID when dropped.
pub struct Moto {
    path: PathBuf,
    /// Arguments before moto's own (the serial launcher).
    launcher: Vec<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// Holds the port while the emulator is stopped (see [`Moto::stop`]).
    hold: Option<tokio::net::TcpSocket>,
    pub port: u16,
}

impl Moto {
    /// Starts moto with default settings (no signature checks).
    pub fn start() -> Moto {
        Self::start_with_env(&[])
    }

    /// Starts moto with extra environment variables (e.g.
    /// `INITIAL_NO_AUTH_ACTION_COUNT=0` to check request signatures).
    pub fn start_with_env(env: &[(&str, &str)]) -> Moto {
        Self::start_with(&[], env)
    }

    /// Starts moto with extra arguments (e.g. `-c cert.pem -k key.pem` to
    /// serve HTTPS) and environment variables.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Moto {
        let path = moto_server_path();
        let mut moto = Moto {
            path,
            launcher: Vec::new(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            hold: None,
            port: crate::free_port(),
        };
        moto.spawn();
        moto
    }

    /// Starts moto answering one request at a time. Threaded moto checks
    /// whether a secret exists and inserts it in two steps, so two racing
    /// `CreateSecret` calls can both succeed; on AWS exactly one does, and
    /// the tests of racing creates need that. Runs moto's `main` with the
    /// Python interpreter next to `moto_server` (the venv's).
    pub fn start_serial() -> Moto {
        let server = moto_server_path();
        let python = server.with_file_name("python3");
        assert!(
            python.exists(),
            "{} not found: the serial moto needs the Python of moto_server's venv",
            python.display()
        );
        let mut moto = Moto {
            path: python,
            launcher: vec!["-c".into(), SERIAL_LAUNCHER.into()],
            args: Vec::new(),
            env: Vec::new(),
            child: None,
            hold: None,
            port: crate::free_port(),
        };
        moto.spawn();
        moto
    }

    /// `http://127.0.0.1:PORT` (`https://…` if started with a certificate).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the emulator (its state is lost). Until [`Moto::restart`] its
    /// port stays held ([`crate::hold_port`]), so that a client retrying
    /// against it is refused, as by a stopped emulator, and never answered
    /// by another test's server.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            self.hold = crate::hold_port(self.port);
        }
    }

    /// Starts a fresh, empty emulator on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn spawn(&mut self) {
        self.hold = None;
        let port = self.port.to_string();
        let mut cmd = Command::new(&self.path);
        cmd.args(&self.launcher)
            .args(["-H", "127.0.0.1", "-p", &port])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", self.path.display()));
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port);
        loop {
            if TcpStream::connect_timeout(&addr.into(), Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("moto_server exited during startup: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on port {} within {STARTUP_TIMEOUT:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
