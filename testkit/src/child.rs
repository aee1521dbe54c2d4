//! Spawning service processes that cannot outlive the test: each child gets a parent-death signal, and when
//! the tests run as root (as on CI), it drops to the `postgres` user that initdb and postgres insist on.
//! Also the sweep of directories that a crashed run left behind.

use std::ffi::CString;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The unprivileged account to run services as, when the tests run as root.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunAs {
    pub(crate) uid: libc::uid_t,
    pub(crate) gid: libc::gid_t,
}

impl RunAs {
    /// `None` when not root: services then run as the current user.
    pub(crate) fn for_postgres() -> Result<Option<Self>> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(None);
        }
        let name = CString::new("postgres").expect("static name");
        // SAFETY: getpwnam reads a static buffer; the fields are copied out before any other call.
        let pw = unsafe { libc::getpwnam(name.as_ptr()) };
        if pw.is_null() {
            bail!(
                "tests run as root but there is no `postgres` user to run PostgreSQL as (apt-get install postgresql-15 creates it)"
            );
        }
        // SAFETY: pw is non-null and points at getpwnam's static record.
        let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
        Ok(Some(Self { uid, gid }))
    }

    pub(crate) fn chown(&self, path: &Path) -> Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .with_context(|| format!("chown {} to the postgres user", path.display()))
    }
}

/// Makes `command` die with this process (SIGKILL of the test included) and run as `run_as`, in a process
/// group of its own: a Ctrl-C at the terminal then reaches only the parent, which stops its children in order.
pub(crate) fn bind_to_parent(command: &mut Command, run_as: Option<RunAs>, death_signal: libc::c_int) {
    command.process_group(0);
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe functions.
    unsafe {
        command.pre_exec(move || {
            if let Some(RunAs { uid, gid }) = run_as
                && (libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            // After setuid: changing credentials clears the parent-death signal.
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() == 1 {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

const OWNER_FILE: &str = "testkit.owner";

/// A temporary directory named `testkit-<kind>-...`, marked with this process's id so that a later run can
/// remove it if this one crashes before its drop.
pub(crate) fn service_dir(kind: &str) -> Result<tempfile::TempDir> {
    sweep_orphans();
    let dir = tempfile::Builder::new()
        .prefix(&format!("testkit-{kind}-"))
        .tempdir()
        .context("create a temporary directory")?;
    fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string())?;
    Ok(dir)
}

/// Removes the directories of test processes that no longer exist.
fn sweep_orphans() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let path: PathBuf = entry.path();
        let is_ours = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("testkit-"));
        if !is_ours {
            continue;
        }
        let owner = fs::read_to_string(path.join(OWNER_FILE)).ok().and_then(|s| s.trim().parse::<i32>().ok());
        // SAFETY: kill with signal 0 only checks that the process exists.
        let alive = owner.is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0);
        if owner.is_some() && !alive {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// Sends `signal` to the child and waits up to `grace` for it, then kills it.
pub(crate) fn stop(child: &mut std::process::Child, signal: libc::c_int, grace: std::time::Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // SAFETY: the pid is our own child, not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// An address on 127.0.0.1 with a port free now, for a binary's `--metrics-addr` or a server a test starts.
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("bind a free port")
}

/// A free TCP port on 127.0.0.1 (free now; the service binds it right after).
pub(crate) fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("bind a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Runs `start` on a free port, and on another one if it fails: a parallel test can take a free port
/// before the service binds it.
pub(crate) async fn on_free_port(what: &str, mut start: impl AsyncFnMut(u16) -> Result<()>) -> Result<()> {
    for attempt in 1.. {
        match start(free_port()?).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 3 => tracing::warn!(error = %format!("{e:#}"), "{what} did not start, retrying"),
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns by its third attempt")
}
