//! `cargo xtask vchan-sim`: the vchan simulation's drop-in C libraries (`vchan-sim/`), built
//! (release) and copied under the names Xen's libraries have, into `target/vchan-sim/`, the
//! directory a program linked against Xen's libxenvchan takes as `LD_LIBRARY_PATH`
//! (docs/vchan.md, "Running a C program on the simulation").

use std::path::PathBuf;

use super::{cargo, root, run};

/// The packages and the library each becomes.
const LIBRARIES: [(&str, &str); 2] =
    [("vproto-vchan-sim-gnttab", "libxengnttab.so.1"), ("vproto-vchan-sim-evtchn", "libxenevtchn.so.1")];

/// Builds the libraries and returns the directory holding them.
pub fn build() -> Result<PathBuf, String> {
    let mut command = cargo();
    command.args(["build", "--release"]);
    for (package, _) in LIBRARIES {
        command.args(["-p", package]);
    }
    run("cargo build --release (the vchan simulation's libraries)", &mut command)?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), |dir| root().join(dir));
    let dir = target.join("vchan-sim");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (package, name) in LIBRARIES {
        let built = target.join("release").join(format!("lib{}.so", package.replace('-', "_")));
        // Written beside and renamed, so a program starting meanwhile never loads half a file.
        let partial = dir.join(format!(".{name}.partial"));
        std::fs::copy(&built, &partial).map_err(|e| format!("cannot copy {}: {e}", built.display()))?;
        std::fs::rename(&partial, dir.join(name))
            .map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))?;
    }
    Ok(dir)
}
