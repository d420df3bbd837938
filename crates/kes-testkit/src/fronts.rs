//! nginx and HAProxy as fronts of a KES server on loopback: the reverse
//! proxies and load balancers users put in front of KES (docs/proxies.md),
//! started as child processes so that the tests talk to the real programs.
//!
//! The executables come from `KES_TEST_NGINX` and `KES_TEST_HAPROXY` (set
//! by `scripts/test`, which installs Debian's `nginx-light` and `haproxy`).
//! The tests that start a front are `#[ignore]`d; run (`--include-ignored`)
//! without the program they fail, so that a missing front never looks like
//! a green run.
//!
//! Each front runs in the foreground with everything it writes (config,
//! certificates, pid file, temp files) in a temp dir of its own, and its
//! stderr in a file there: a front that does not come up panics with it.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a front may take to answer after being started.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The `nginx` executable; panics with instructions when it is not
/// configured.
pub fn nginx_path() -> PathBuf {
    crate::external_tool(
        "KES_TEST_NGINX",
        "an nginx executable with the ssl and proxy modules (Debian: apt-get install nginx-light)",
    )
}

/// The `haproxy` executable; panics with instructions when it is not
/// configured.
pub fn haproxy_path() -> PathBuf {
    crate::external_tool(
        "KES_TEST_HAPROXY",
        "a haproxy executable built with OpenSSL (Debian: apt-get install haproxy)",
    )
}

/// Writes PEM blocks (label, DER) one after the other into `dir/name` and
/// returns the path: a certificate, a key, or both in one file as HAProxy's
/// `crt` takes them.
pub fn write_pem(dir: &Path, name: &str, blocks: &[(&str, &[u8])]) -> PathBuf {
    let path = dir.join(name);
    let pem: String = blocks
        .iter()
        .map(|(label, der)| kes_core::pem::encode(label, der))
        .collect();
    std::fs::write(&path, pem).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// A running front (nginx or HAProxy) listening on `127.0.0.1:port`,
/// killed by PID when dropped.
pub struct Front {
    name: &'static str,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The port the front listens on (on 127.0.0.1).
    pub port: u16,
}

impl Front {
    /// Starts nginx. `http` gets the front's directory (to write the
    /// certificates it names into) and the port to listen on, and returns
    /// the directives of the `http` block: the `server` and `upstream`
    /// blocks of the test. The launcher adds what makes nginx run as a
    /// test's child: one process (`master_process off`, so that killing it
    /// leaves no worker behind and no `user` is switched to), and its pid
    /// file, temp paths and error log in the front's directory.
    pub fn nginx(http: impl FnOnce(&Path, u16) -> String) -> Front {
        let dir = tempfile::tempdir().expect("temp dir for nginx");
        let port = crate::free_port();
        let root = dir.path();
        let directives = http(root, port);
        let config = format!(
            "master_process off;\n\
             pid {root}/nginx.pid;\n\
             error_log stderr info;\n\
             events {{\n    worker_connections 256;\n}}\n\
             http {{\n\
             \x20   access_log off;\n\
             \x20   client_body_temp_path {root}/client_body;\n\
             \x20   proxy_temp_path {root}/proxy;\n\
             \x20   fastcgi_temp_path {root}/fastcgi;\n\
             \x20   uwsgi_temp_path {root}/uwsgi;\n\
             \x20   scgi_temp_path {root}/scgi;\n\
             {directives}\n\
             }}\n",
            root = root.display(),
        );
        let conf = root.join("nginx.conf");
        std::fs::write(&conf, config).expect("write nginx.conf");
        let mut cmd = Command::new(nginx_path());
        // `-e stderr`: the error log before the config is read, instead of
        // the path compiled in (which may not be writable).
        cmd.arg("-e")
            .arg("stderr")
            .arg("-p")
            .arg(root)
            .arg("-c")
            .arg(&conf)
            .arg("-g")
            .arg("daemon off;");
        Self::spawn("nginx", cmd, dir, port)
    }

    /// Starts HAProxy in the foreground (`-db`). `sections` gets the front's
    /// directory and the port to listen on, and returns the `frontend` and
    /// `backend` sections of the test; the launcher adds a `global` section
    /// (one thread) and `defaults` with timeouts.
    pub fn haproxy(sections: impl FnOnce(&Path, u16) -> String) -> Front {
        let dir = tempfile::tempdir().expect("temp dir for haproxy");
        let port = crate::free_port();
        let sections = sections(dir.path(), port);
        let config = format!(
            "global\n\
             \x20   nbthread 1\n\
             \x20   maxconn 256\n\
             defaults\n\
             \x20   timeout connect 5s\n\
             \x20   timeout client 60s\n\
             \x20   timeout server 60s\n\
             {sections}\n"
        );
        let conf = dir.path().join("haproxy.cfg");
        std::fs::write(&conf, config).expect("write haproxy.cfg");
        let mut cmd = Command::new(haproxy_path());
        cmd.arg("-db").arg("-f").arg(&conf);
        Self::spawn("haproxy", cmd, dir, port)
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port).into()
    }

    /// The front's directory (config, certificates, stderr).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the front wrote to stderr so far (its error log): for the
    /// messages of failing assertions.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    fn spawn(name: &'static str, mut cmd: Command, dir: tempfile::TempDir, port: u16) -> Front {
        let stderr = File::create(dir.path().join("stderr")).expect("stderr file");
        cmd.current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().expect("stderr file"))
            .stderr(stderr);
        let child = cmd
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        let mut front = Front {
            name,
            child: Some(child),
            dir,
            port,
        };
        front.wait_until_it_answers();
        front
    }

    fn wait_until_it_answers(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let addr = self.addr();
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "{} exited during startup ({status}):\n{}",
                    self.name,
                    self.stderr()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not answer on {addr} within {STARTUP_TIMEOUT:?}:\n{}",
                    self.name,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Front;

    #[test]
    #[ignore = "needs nginx; scripts/test runs it"]
    #[should_panic(expected = "unknown directive \"no_such_directive\"")]
    fn an_nginx_that_does_not_start_panics_with_its_error_log() {
        Front::nginx(|_, _| "no_such_directive on;".into());
    }

    #[test]
    #[ignore = "needs haproxy; scripts/test runs it"]
    #[should_panic(expected = "no_such_keyword")]
    fn a_haproxy_that_does_not_start_panics_with_its_error_log() {
        Front::haproxy(|_, _| "frontend f\n    no_such_keyword on".into());
    }
}
