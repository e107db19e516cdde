//! The vchan ring's corpus inputs are scripts of what a lying peer does to the shared page
//! (`LoopbackPage`: vchan's real `Ring` over process memory) and what our side does then.

use vproto_vchan::{
    layout::{Geometry, LEFT_CONS, LEFT_PROD, RIGHT_CONS, RIGHT_PROD},
    LoopbackPage, Role,
};

/// What a ring script's run came to.
pub enum RingOutcome {
    /// Every operation succeeded.
    Accepted,
    /// The orders were refused (`Geometry::from_page`).
    Geometry(vproto_vchan::layout::GeometryError),
    /// A read, write, ready or space refused the indices.
    Corrupt(vproto_vchan::CorruptRing),
}

/// Runs a ring script against a new loopback page: the first error (the geometry's or the
/// ring's) and the page it used. A script the runner cannot read panics (a corpus mistake).
///
/// A script is lines: `geometry LEFT RIGHT` (orders as a server writes them, first), `store
/// left.cons|left.prod|right.cons|right.prod VALUE` (the peer writes an index), `write|read
/// server|client N`, `ready|space server|client`.
pub fn ring_script(input: &[u8]) -> (RingOutcome, Option<LoopbackPage>) {
    let text = std::str::from_utf8(input).expect("ring scripts are text");
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let words: Vec<&str> = first.split_whitespace().collect();
    let ["geometry", left, right] = words[..] else { panic!("a ring script starts with geometry: {first:?}") };
    let number = |word: &str| word.parse::<u16>().unwrap_or_else(|e| panic!("{word:?} in a ring script: {e}"));
    let geometry = match Geometry::from_page(number(left), number(right)) {
        Ok(geometry) => geometry,
        Err(error) => return (RingOutcome::Geometry(error), None),
    };
    let page = LoopbackPage::new(geometry);
    let role = |word: &str| match word {
        "server" => Role::Server,
        "client" => Role::Client,
        other => panic!("no role {other} in a ring script"),
    };
    let count = |word: &str| word.parse::<usize>().unwrap_or_else(|e| panic!("{word:?} in a ring script: {e}"));
    let run = || {
        for line in lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[..] {
                ["store", index, value] => {
                    let offset = match index {
                        "left.cons" => LEFT_CONS,
                        "left.prod" => LEFT_PROD,
                        "right.cons" => RIGHT_CONS,
                        "right.prod" => RIGHT_PROD,
                        other => panic!("no index {other} in a ring script"),
                    };
                    page.store_index(offset, value.parse().unwrap_or_else(|e| panic!("{value:?}: {e}")));
                }
                ["write", who, n] => {
                    let n = count(n);
                    let written = page.write(role(who), &vec![0x5a; n])?;
                    assert!(written <= n, "wrote {written} bytes of {n}");
                }
                ["read", who, n] => {
                    let mut out = vec![0; count(n)];
                    let read = page.read(role(who), &mut out)?;
                    assert!(read <= out.len(), "read {read} bytes into {}", out.len());
                }
                ["ready", who] => drop(page.ready(role(who))?),
                ["space", who] => drop(page.space(role(who))?),
                _ => panic!("a bad ring script line {line:?}"),
            }
        }
        Ok(())
    };
    let outcome = match run() {
        Ok(()) => RingOutcome::Accepted,
        Err(error) => RingOutcome::Corrupt(error),
    };
    (outcome, Some(page))
}

/// Whether `page` (else a fresh one) carries 100 bytes each way once the peer sets its indices
/// to agree again.
pub fn ring_still_carries(page: Option<LoopbackPage>) -> Result<(), String> {
    let page = page.unwrap_or_else(|| LoopbackPage::new(Geometry { left: 10, right: 11 }));
    for (cons, prod) in [(LEFT_CONS, LEFT_PROD), (RIGHT_CONS, RIGHT_PROD)] {
        page.store_index(cons, page.load_index(prod));
    }
    let data: Vec<u8> = (0..100).collect();
    for (writer, reader) in [(Role::Client, Role::Server), (Role::Server, Role::Client)] {
        let written = page.write(writer, &data).map_err(|e| e.to_string())?;
        let mut out = [0u8; 100];
        let read = page.read(reader, &mut out).map_err(|e| e.to_string())?;
        if written != 100 || read != 100 || out[..] != data[..] {
            return Err(format!("wrote {written}, read {read}: {:?}", &out[..read]));
        }
    }
    Ok(())
}
