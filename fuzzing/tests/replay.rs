//! Every kept fuzz input, run again: the seeds in `fuzz/seeds/TARGET/`
//! and what the fuzzer found in `fuzz/regressions/TARGET/` (each fixed,
//! and kept so it stays fixed).

use std::path::Path;

#[test]
fn every_kept_input_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut ran = 0;
    for target in peercall_fuzzing::TARGETS {
        for kind in ["seeds", "regressions"] {
            let dir = root.join(kind).join(target);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for file in files {
                let data = std::fs::read(&file).unwrap();
                let outcome = std::panic::catch_unwind(|| peercall_fuzzing::run(target, &data));
                assert!(outcome.is_ok(), "{target}: {} fails again", file.display());
                ran += 1;
            }
        }
        assert!(
            root.join("seeds").join(target).is_dir(),
            "{target} has no seeds in fuzz/seeds/{target}"
        );
    }
    assert!(ran > 0, "no kept inputs under {}", root.display());
    println!("replayed {ran} kept inputs");
}

#[test]
fn the_relay_seeds_carry_messages_between_peers() {
    // Otherwise the relay target's delivery checks would check nothing.
    let data =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/relay/ops.bin"))
            .unwrap();
    assert!(peercall_fuzzing::relay_steps(&data) > 0);
}
