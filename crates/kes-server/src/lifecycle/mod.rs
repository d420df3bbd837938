//! The process lifecycle: start and stop (`run.rs`), reload on SIGHUP
//! (`reload.rs`), the rotation schedule (`schedule.rs`), the purge of
//! deleted keys (`purge.rs`), how a server is
//! assembled (`builder.rs`), the dev mode (`dev.rs`), the banner
//! (`banner.rs`), process hardening (`process.rs`), the host's addresses
//! (`net.rs`) and what it runs on (`sysinfo.rs`).

pub(crate) mod banner;
pub(crate) mod builder;
pub(crate) mod dev;
pub(crate) mod net;
pub(crate) mod process;
pub(crate) mod purge;
pub(crate) mod reload;
pub(crate) mod run;
pub(crate) mod schedule;
pub(crate) mod sysinfo;
