//! `cargo xtask hostile [--regenerate]`: the hostile corpus (tests/hostile/README.md), every
//! input of `tests/hostile/PARSER/*.jsonl` fed to its parser by `cli/tests/hostile.rs`, with the
//! count of inputs per parser printed. `--regenerate` writes the generator's inputs
//! (`cli/tests/hostile/generate.rs`) with the outcomes they have now, keeping the inputs added
//! by hand (`added.jsonl`); review `git diff tests/hostile` before committing.

use super::{cargo, run};

/// Runs (or regenerates) the corpus.
pub fn hostile(regenerate: bool) -> Result<(), String> {
    let mut command = cargo();
    command.args(["test", "-p", "vproto-cli", "--test", "hostile", "--", "--nocapture"]);
    if regenerate {
        command.env("VPROTO_HOSTILE_REGENERATE", "1");
    }
    let description = if regenerate { "regenerate the hostile corpus" } else { "the hostile corpus" };
    run(description, &mut command)
}
