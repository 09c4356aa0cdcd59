//! A storage server for tests (moto, fake-gcs-server, Azurite) as a child process on a free
//! loopback port, killed on drop, which can be stopped and started again on the same port.
//! The servers come from `scripts/install-deps.sh`, under
//! `${CAPSTAN_TOOLS_DIR:-$HOME/.cache/capstan}`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a server may take to answer after it is spawned (1-2 s on a quiet machine).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where `scripts/install-deps.sh` installs the test servers.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("CAPSTAN_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/capstan")
        })
}

/// A server process; `args` builds its arguments for a port.
pub struct Emulator {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub port: u16,
    program: PathBuf,
    args: fn(u16) -> Vec<String>,
    /// A path that answers HTTP once the server is up.
    probe: &'static str,
    work_dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Emulator {
    /// Starts `program` (under [`tools_dir`]) on a free port and waits until `probe` answers.
    pub async fn start(program: &str, args: fn(u16) -> Vec<String>, probe: &'static str) -> Self {
        let port = super::free_port();
        let mut emulator = Self {
            url: format!("http://127.0.0.1:{port}"),
            port,
            program: tools_dir().join(program),
            args,
            probe,
            work_dir: tempfile::tempdir().expect("emulator work dir"),
            child: None,
        };
        emulator.spawn().await;
        emulator
    }

    /// Kills the server and waits for it to exit: the store is down until [`Emulator::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it runs and starts it again on the same port, empty (each keeps
    /// everything in memory).
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let program = &self.program;
        assert!(
            program.exists(),
            "{} is missing: run scripts/install-deps.sh, which installs the storage test servers \
             under ${{CAPSTAN_TOOLS_DIR:-$HOME/.cache/capstan}}",
            program.display()
        );
        let mut child = Command::new(program)
            .args((self.args)(self.port))
            .current_dir(self.work_dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        let url = format!("{}{}", self.url, self.probe);
        let what = format!("{} to answer", program.display());
        super::wait_for(&what, START_TIMEOUT, || {
            let exited = child.try_wait().expect("try_wait on an emulator");
            assert!(exited.is_none(), "{what}: it exited at start: {exited:?}");
            let url = url.clone();
            async move { reqwest::get(url).await.is_ok() }
        })
        .await;
        self.child = Some(child);
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}
