//! What the process does to protect keys: memory locked, no core dumps,
//! not dumpable.

/// Keeps keys out of swap and out of core dumps, as far as the process
/// may: memory is locked (on by default on Linux, as the Go KES does;
/// `--mlock` only makes a failure say how to grant it), core dumps are
/// off and the process is not dumpable (no core file, no ptrace by other
/// processes of the same user).
pub(crate) fn harden_process(explicit_mlock: bool) {
    use rustix::mm::{mlockall, MlockAllFlags};
    use rustix::process::{set_dumpable_behavior, setrlimit, DumpableBehavior, Resource, Rlimit};
    let no_core = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(err) = setrlimit(Resource::Core, no_core) {
        eprintln!("Warning: failed to disable core dumps ({err})");
    }
    if let Err(err) = set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        eprintln!("Warning: failed to mark the process not dumpable ({err})");
    }
    // With locking on, the kernel refuses every new mapping beyond
    // RLIMIT_MEMLOCK: under a small limit a locked server would die of its
    // first large allocation. So memory is locked by default only where no
    // limit applies; `--mlock` locks under any limit, as asked.
    let unlimited = memlock_unlimited();
    if !unlimited && !explicit_mlock {
        eprintln!(
            "Warning: memory is not locked: keys may be swapped to disk. Grant CAP_IPC_LOCK \
             (`sudo setcap cap_ipc_lock=+ep $(readlink -f $(which kes))`) or remove the \
             memlock limit (systemd: LimitMEMLOCK=infinity)."
        );
        return;
    }
    // ONFAULT locks pages as they are touched instead of faulting in every
    // mapping at once (the binary, thread stacks): memory stays as small as
    // without locking. Kernels before 4.4 do not know it.
    let flags = MlockAllFlags::CURRENT | MlockAllFlags::FUTURE;
    match mlockall(flags | MlockAllFlags::ONFAULT).or_else(|_| mlockall(flags)) {
        Ok(()) => println!("MLock       enabled"),
        Err(err) => eprintln!(
            "Warning: failed to lock memory ({err}): keys may be swapped to disk. Grant \
             CAP_IPC_LOCK, e.g. `sudo setcap cap_ipc_lock=+ep $(readlink -f $(which kes))`, \
             or remove the memlock limit (systemd: LimitMEMLOCK=infinity)."
        ),
    }
}

/// Whether locked memory is not capped: RLIMIT_MEMLOCK is unlimited or the
/// process holds CAP_IPC_LOCK (which ignores the limit).
fn memlock_unlimited() -> bool {
    use rustix::process::{getrlimit, Resource};
    if getrlimit(Resource::Memlock).current.is_none() {
        return true;
    }
    const CAP_IPC_LOCK: u32 = 14;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}
