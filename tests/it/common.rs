//! Helpers shared by the test files that run the `bcl` binary.
use std::path::Path;
use std::process::{Command, Output};

/// Runs the `bcl` binary as a user would (without LD_LIBRARY_PATH).
pub fn bcl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bcl")).args(args).env_remove("LD_LIBRARY_PATH").output().expect("bcl runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The first `train` training and `test` test images of each class of the real
/// Fashion-MNIST, as IDX files in a temporary folder (tests/support/tiny_fashion_mnist.py): a
/// data set small enough to train on in seconds.
pub fn tiny_fashion_mnist(train: usize, test: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/tiny_fashion_mnist.py");
    let status =
        Command::new("python3").arg(script).arg(dir.path()).args([train.to_string(), test.to_string()]).status();
    assert!(status.expect("python3 runs").success());
    dir
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}
