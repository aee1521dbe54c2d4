//! A service that test processes share: the first test that asks for it starts it, every test holds a lease
//! on it while it runs, and a keeper process stops it once no test has held a lease for a while.
//!
//! nextest runs each test in a process of its own, so a service shared between tests must outlive the test
//! that started it. Leases are `flock(2)` locks, which the kernel releases when a process dies however it
//! dies: a SIGKILLed test never keeps a service alive, and a service whose keeper died is started afresh.
//!
//! In the service's directory (`$TMPDIR/testkit-shared-<name>`):
//! - `lock`: held exclusively while a test checks, starts or a keeper stops the service;
//! - `users`: held shared by every test that uses the service; the keeper's exclusive try fails while any does;
//! - `state`: `<pid> <port>` of the running service, written once it is ready.

use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

/// How long a shared service outlives its last lease: long enough to bridge the gaps between the tests that
/// use it in a run, short enough that nothing lingers long after the run.
const IDLE_STOP: Duration = Duration::from_secs(60);

/// Held while a test uses a shared service; dropping it (or the process dying) releases it.
#[derive(Debug)]
pub(crate) struct Lease {
    _users: File,
}

/// A service started by [`lease`]'s `start`: its process (detached from the test) and the port it serves.
pub(crate) struct Started {
    pub(crate) pid: u32,
    pub(crate) port: u16,
}

/// The shared service `name`: the running one, or one that `start` starts in `dir/data` (emptied first).
/// Returns the service's port and a lease that keeps it running while it is held.
pub(crate) async fn lease(name: &str, start: impl AsyncFnOnce(&Path) -> Result<Started>) -> Result<(u16, Lease)> {
    let dir = std::env::temp_dir().join(format!("testkit-shared-{name}"));
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let lock = open(&dir.join("lock"))?;
    // Blocks while another test starts the service, or a keeper stops it.
    lock.lock().context("lock the shared service")?;
    let port = match running(&dir).await {
        Some(port) => port,
        None => {
            let data = dir.join("data");
            let _ = fs::remove_dir_all(&data);
            fs::create_dir_all(&data)?;
            let started = start(&data).await?;
            spawn_keeper(&dir, started.pid)?;
            fs::write(dir.join("state"), format!("{} {}", started.pid, started.port))?;
            started.port
        }
    };
    let users = open(&dir.join("users"))?;
    users.lock_shared().context("take a lease on the shared service")?;
    drop(lock);
    Ok((port, Lease { _users: users }))
}

fn open(path: &Path) -> Result<File> {
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("open {}", path.display()))
}

/// The port of the service `state` names, if its process lives and accepts connections.
async fn running(dir: &Path) -> Option<u16> {
    let state = fs::read_to_string(dir.join("state")).ok()?;
    let (pid, port) = state.trim().split_once(' ')?;
    let (pid, port): (i32, u16) = (pid.parse().ok()?, port.parse().ok()?);
    // SAFETY: kill with signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return None;
    }
    tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    Some(port)
}

/// Starts the keeper: a shell loop, detached from the test like the service, that stops the service (SIGTERM,
/// then SIGKILL) once no lease has been held for [`IDLE_STOP`], and exits when the service does.
fn spawn_keeper(dir: &Path, pid: u32) -> Result<()> {
    const KEEPER: &str = r#"
        cd "$1" || exit 1
        pid=$2 idle_limit=$3 idle=0
        while kill -0 "$pid" 2>/dev/null; do
            sleep 1
            exec 9>lock
            flock 9
            if flock -n -x users true; then idle=$((idle + 1)); else idle=0; fi
            if [ "$idle" -ge "$idle_limit" ]; then
                rm -f state
                kill -TERM "$pid"
                for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                kill -KILL "$pid" 2>/dev/null
                rm -rf data
                exit 0
            fi
            exec 9>&-
        done
        rm -f state
    "#;
    let mut command = Command::new("bash");
    command
        .args(["-c", KEEPER, "keeper"])
        .arg(dir)
        .arg(pid.to_string())
        .arg(IDLE_STOP.as_secs().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    detach(&mut command);
    command.spawn().context("start the shared service's keeper (bash and util-linux's flock)")?;
    Ok(())
}

/// Makes `command` a session of its own: no signal to the test's process group, and no death of the test,
/// reaches it. Its output must go to files, not the test's pipes, which nextest waits on.
pub(crate) fn detach(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
