//! `ff engine`'s configuration through the real binary: file < FF_<FIELD>
//! environment < flags over the defaults, and bad input refused with a
//! message naming the source and the field (`--print-config` stops before
//! connecting, so no server is needed).

use std::process::{Command, Output};

fn ff(args: &[&str], env: &[(&str, &str)], file: Option<&str>) -> Output {
    let dir = std::env::temp_dir().join(format!("ff-cli-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ff"));
    cmd.env_clear()
        .arg("engine")
        .args(args)
        .envs(env.iter().copied());
    if let Some(text) = file {
        // One file per content: tests run in parallel.
        let path = dir.join(format!(
            "{:x}.toml",
            text.len() * 31 + text.bytes().map(usize::from).sum::<usize>()
        ));
        std::fs::write(&path, text).unwrap();
        cmd.arg("--config").arg(path);
    }
    cmd.output().unwrap()
}

/// The printed configuration's value of `key`.
fn value(out: &Output, key: &str) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let prefix = format!("{key} = ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .trim_matches('"')
        .to_owned()
}

fn error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "expected a refusal");
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn defaults_then_file_then_env_then_flags() {
    let p = ["--print-config"];
    assert_eq!(value(&ff(&p, &[], None), "batch_size"), "200");
    assert_eq!(value(&ff(&p, &[], None), "lease_expiry_interval"), "1500ms");
    let file = "batch_size = 10\nlease_expiry_interval = \"3s\"\nnamespace = \"from-file\"\n";
    let out = ff(&p, &[], Some(file));
    assert_eq!(value(&out, "batch_size"), "10");
    assert_eq!(value(&out, "lease_expiry_interval"), "3s");
    let env = [("FF_BATCH_SIZE", "20"), ("FF_LEASE_EXPIRY_INTERVAL", "4s")];
    let out = ff(&p, &env, Some(file));
    assert_eq!(value(&out, "batch_size"), "20");
    assert_eq!(value(&out, "lease_expiry_interval"), "4s");
    assert_eq!(
        value(&out, "namespace"),
        "from-file",
        "the file holds where env is silent"
    );
    let flags = ["--print-config", "--batch-size", "30"];
    let out = ff(&flags, &env, Some(file));
    assert_eq!(value(&out, "batch_size"), "30");
    assert_eq!(value(&out, "lease_expiry_interval"), "4s");
}

#[test]
fn an_unknown_key_is_refused_by_name() {
    let e = error(&ff(
        &["--print-config"],
        &[],
        Some("batch_size = 10\nbatch = 3\n"),
    ));
    assert!(e.contains("unknown key `batch`"), "{e}");
}

#[test]
fn a_bad_value_names_its_source_and_field() {
    let p = ["--print-config"];
    let e = error(&ff(&p, &[], Some("rescan_interval = 60\n")));
    assert!(
        e.contains(".toml: rescan_interval: expected a duration"),
        "{e}"
    );
    let e = error(&ff(&p, &[("FF_BATCH_SIZE", "many")], None));
    assert!(
        e.contains("FF_BATCH_SIZE: batch_size: expected an integer"),
        "{e}"
    );
    let e = error(&ff(
        &["--print-config", "--flow-partitions=70000"],
        &[],
        None,
    ));
    assert!(
        e.contains("--flow-partitions: flow_partitions: expected an integer"),
        "{e}"
    );
    let e = error(&ff(&p, &[], Some("batch_size = [1]\n")));
    assert!(
        e.contains("batch_size: expected a string or an integer, got a array"),
        "{e}"
    );
    let e = error(&ff(&p, &[], Some("batch_size = \n")));
    assert!(e.contains("TOML parse error"), "{e}");
}

#[test]
fn validation_names_the_field() {
    let e = error(&ff(&["--print-config", "--batch-size", "0"], &[], None));
    assert!(e.contains("batch_size must be in 1..="), "{e}");
    let e = error(&ff(
        &["--print-config"],
        &[("FF_RESCAN_INTERVAL", "5ms")],
        None,
    ));
    assert!(e.contains("rescan_interval must be at least 10 ms"), "{e}");
    let e = error(&ff(
        &["--print-config", "--flow-partitions", "0"],
        &[],
        None,
    ));
    assert!(e.contains("flow_partitions"), "{e}");
}

#[test]
fn the_engine_needs_a_server() {
    let e = error(&ff(&[], &[], None));
    assert!(e.contains("--redis <URL>"), "{e}");
}
