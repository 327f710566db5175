//! `scripts/ensure-nats-server` accepts a nats-server only if it runs: a
//! broken one first on PATH, or in `NATS_SERVER`, is skipped for the next
//! working one. No network: a working binary is always on PATH here.

mod common;

use std::env;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The script, from this crate's directory.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ensure-nats-server")
}

/// Whether `binary --version` exits 0.
fn runs(binary: &Path) -> bool {
    Command::new(binary)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// A `broken/nats-server` that exits 127 like a pyenv shim without the
/// binary, and a `good/nats-server` linking to the harness's binary (a link,
/// so a `NATS_SERVER` with another file name works too).
struct Candidates {
    dir: common::TempDir,
}

impl Candidates {
    fn new() -> Self {
        let real = common::binary();
        assert!(
            runs(real),
            "{} --version fails; {}",
            real.display(),
            common::HOW_TO_GET_IT
        );
        let dir = common::TempDir::new("ensure");
        let candidates = Self { dir };
        fs::create_dir(candidates.broken().parent().unwrap()).unwrap();
        fs::write(
            candidates.broken(),
            "#!/bin/sh\necho 'pyenv: nats-server: command not found' >&2\nexit 127\n",
        )
        .unwrap();
        fs::set_permissions(candidates.broken(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(candidates.good().parent().unwrap()).unwrap();
        symlink(real, candidates.good()).unwrap();
        assert!(!runs(&candidates.broken()));
        candidates
    }

    fn broken(&self) -> PathBuf {
        self.dir.path().join("broken/nats-server")
    }

    fn good(&self) -> PathBuf {
        self.dir.path().join("good/nats-server")
    }

    /// `broken`, then `good`, then this process's PATH (for bash and the
    /// shims' interpreters).
    fn path(&self) -> OsString {
        let inherited = env::var_os("PATH").unwrap_or_default();
        let dirs = [self.broken(), self.good()]
            .map(|binary| binary.parent().unwrap().to_owned())
            .into_iter()
            .chain(env::split_paths(&inherited));
        env::join_paths(dirs).unwrap()
    }

    /// Runs the script with `nats_server` as `NATS_SERVER` (unset if `None`).
    fn ensure(&self, nats_server: Option<&Path>) -> Output {
        let mut command = Command::new(script());
        command.env("PATH", self.path()).env_remove("NATS_SERVER");
        if let Some(nats_server) = nats_server {
            command.env("NATS_SERVER", nats_server);
        }
        command.output().expect("scripts/ensure-nats-server runs")
    }
}

/// The one path the script printed, checked to run.
fn printed(output: &Output) -> PathBuf {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{}: stdout {stdout:?}, stderr {stderr:?}",
        output.status
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only the path on stdout: {stdout:?}");
    let path = PathBuf::from(lines[0]);
    assert!(runs(&path), "{} --version fails", path.display());
    path
}

#[test]
fn a_broken_nats_server_first_on_path_is_skipped() {
    let candidates = Candidates::new();
    let output = candidates.ensure(None);
    assert_eq!(printed(&output), candidates.good());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&*candidates.broken().to_string_lossy()),
        "{stderr}"
    );
}

#[test]
fn a_broken_nats_server_env_falls_back_to_path() {
    let candidates = Candidates::new();
    let output = candidates.ensure(Some(&candidates.broken()));
    assert_eq!(printed(&output), candidates.good());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("NATS_SERVER="), "{stderr}");
}

#[test]
fn a_working_nats_server_env_is_taken_as_is() {
    let candidates = Candidates::new();
    let output = candidates.ensure(Some(&candidates.good()));
    assert_eq!(printed(&output), candidates.good());
    assert!(output.stderr.is_empty(), "{:?}", output.stderr);
}
