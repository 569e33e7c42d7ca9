//! `roam import FILE [--dir DIR] [--p12-password PW] [--password PW]`: turns a strongSwan
//! `.sswan` or an Apple `.mobileconfig` into Roam's profile. Prints the TOML on stdout (the
//! findings head it as comments) and each finding on stderr as a `warning:` line; the
//! certificates and key it extracts go to DIR (default: the current directory) as
//! `<stem>-ca.pem`, `<stem>-cert.pem`, `<stem>-key.pem`, mode 0600, named by absolute path in
//! the TOML. Exit 0 when the profile loads as it is; 2 with `error: import: ...` when nothing
//! usable came out, or when the profile still lacks something (the TOML is printed all the
//! same, to be completed).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use roam_runtime::import::{self, FindingKind, ImportOptions, ImportedAuth, Kind, MAX_IMPORT_SIZE};
use roam_runtime::profile;
use zeroize::Zeroizing;

const EXIT_UNUSABLE: u8 = 2;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The .sswan or .mobileconfig file.
    file: PathBuf,
    /// Where the extracted certificates and key are written (created when missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// The password of an embedded PKCS#12 (a .sswan never carries it).
    #[arg(
        long,
        value_name = "PW",
        env = "ROAM_P12_PASSWORD",
        hide_env_values = true
    )]
    p12_password: Option<String>,
    /// The EAP password, when the file does not carry one (a .sswan never does).
    #[arg(long, value_name = "PW", env = "ROAM_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// The format, when neither the file name nor the content tells.
    #[arg(long, value_name = "KIND", value_parser = ["sswan", "mobileconfig"])]
    kind: Option<String>,
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: import: {message}");
    ExitCode::from(EXIT_UNUSABLE)
}

fn read_limited(path: &Path) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let file = std::fs::File::open(path)?;
    let mut buf = Zeroizing::new(Vec::new());
    file.take(MAX_IMPORT_SIZE as u64 + 1)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// The input's file stem, reduced to characters safe in a file name.
fn stem(path: &Path) -> String {
    let s: String = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "imported".into()
    } else {
        s
    }
}

/// Writes a file readable by its owner only (it may be a private key).
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode on open: narrow it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(contents)
}

#[inline(never)]
pub fn run(args: &Args) -> ExitCode {
    let bytes = match read_limited(&args.file) {
        Ok(b) => b,
        Err(e) => return fail(format!("cannot read {}: {e}", args.file.display())),
    };
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let kind = match args.kind.as_deref() {
        Some(k) => Kind::from_name(k),
        None => Kind::detect(name.as_deref(), &bytes),
    };
    let Some(kind) = kind else {
        return fail(import::ImportError::UnknownFormat);
    };
    let options = ImportOptions {
        p12_password: args.p12_password.clone().map(Zeroizing::new),
    };
    let mut imported = match import::import(&bytes, kind, &options) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if let (ImportedAuth::EapMschapv2 { password, .. }, Some(given)) =
        (&mut imported.auth, &args.password)
    {
        if password.is_none() {
            *password = Some(Zeroizing::new(given.clone()));
            imported
                .findings
                .retain(|f| !(f.kind == FindingKind::Missing && f.setting == "auth.password"));
        }
    }

    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        return fail(format!("cannot create {}: {e}", args.dir.display()));
    }
    let dir = match std::fs::canonicalize(&args.dir) {
        Ok(d) => d,
        Err(e) => return fail(format!("{}: {e}", args.dir.display())),
    };
    let rendered = imported.render(&stem(&args.file), &dir);
    for file in &rendered.files {
        let path = dir.join(&file.name);
        if let Err(e) = write_private(&path, &file.contents) {
            return fail(format!("cannot write {}: {e}", path.display()));
        }
    }
    for f in imported.findings.iter() {
        eprintln!("warning: {f}");
    }
    print!("{}", rendered.toml.as_str());
    let _ = std::io::stdout().flush();
    // Certificate validity is the connect's business; here: does the profile load as it is?
    match profile::from_str(&rendered.toml, &dir, None) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(format!("the profile is not complete yet: {e}")),
    }
}
