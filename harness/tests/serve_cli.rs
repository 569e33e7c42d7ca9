//! `roam serve` as a user runs it without root: a bad server profile exits 2 with one
//! `error: profile: <key>: ...` line and never echoes the PSK; an unreadable profile exits 2.

use std::path::Path;
use std::process::{Command, Output};

fn serve(profile: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roam"))
        .args(["serve", "--profile"])
        .arg(profile)
        .output()
        .unwrap()
}

const PROFILE: &str = r#"
[server]
listen = "127.0.0.1"
id = "vpn.example.org"
[auth]
method = "psk"
psk = "s3cret-psk-value"
[pool]
ipv4 = "198.18.0.0/24"
"#;

fn bad(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    std::fs::write(&path, text).unwrap();
    let out = serve(&path);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(!stderr.contains("s3cret"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn bad_profiles_exit_2_naming_the_key() {
    assert_eq!(
        bad(&PROFILE.replace("[pool]", "[pool]\nipv5 = \"x\"")),
        "error: profile: pool.ipv5: unknown key\n"
    );
    assert!(bad(&PROFILE.replace("198.18.0.0/24", "198.18.0.7/24"))
        .starts_with("error: profile: pool.ipv4: "));
    assert!(bad(&PROFILE.replace("psk = \"s3cret-psk-value\"", ""))
        .starts_with("error: profile: auth.psk: missing"));
    assert!(
        bad(&format!("{PROFILE}[tunnel]\ntun_name = \"no/slash\"\n"))
            .starts_with("error: profile: tunnel.tun_name: ")
    );
    assert!(
        bad(&PROFILE.replace("psk = \"s3cret-psk-value\"", "psk = 5"))
            .starts_with("error: profile: auth.psk: must be a string")
    );
}

#[test]
fn an_unreadable_profile_exits_2() {
    let out = serve(Path::new("/nonexistent/roam-server.toml"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: profile: cannot read /nonexistent/roam-server.toml"),
        "{stderr}"
    );
}
