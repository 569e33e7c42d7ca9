//! The DNS servers and search domains the server pushed, as a resolv.conf file: written only
//! to the path the user names, and put back as it was (or removed) when the tunnel closes.
//! Domains come from the network, so only plain domain names are written: anything that could
//! add a line or an option to the file is left out.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// resolv.conf honours at most this many `nameserver` lines (glibc's MAXNS).
const MAX_NAMESERVERS: usize = 3;
/// Most search domains written (glibc reads six).
const MAX_DOMAINS: usize = 6;

/// The file's text for `dns` and `domains`.
pub fn render(dns: &[IpAddr], domains: &[String]) -> String {
    let mut text = String::from("# written by roam for the VPN session\n");
    for ip in dns.iter().take(MAX_NAMESERVERS) {
        text.push_str(&format!("nameserver {ip}\n"));
    }
    let domains: Vec<&str> = domains
        .iter()
        .map(|d| d.trim_end_matches('.'))
        .filter(|d| is_domain(d))
        .take(MAX_DOMAINS)
        .collect();
    if !domains.is_empty() {
        text.push_str(&format!("search {}\n", domains.join(" ")));
    }
    text
}

/// A hostname-like domain: labels of letters, digits, `-` and `_`, 1 to 63 bytes each, 253 in
/// all.
fn is_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A resolv.conf we wrote, and what was there before.
#[derive(Debug)]
pub struct ResolvConf {
    path: PathBuf,
    previous: Option<Vec<u8>>,
}

impl ResolvConf {
    /// Writes `dns` and `domains` to `path`, remembering its old content.
    pub fn write(path: &Path, dns: &[IpAddr], domains: &[String]) -> io::Result<Self> {
        let previous = match std::fs::read(path) {
            Ok(old) => Some(old),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        std::fs::write(path, render(dns, domains))?;
        Ok(Self {
            path: path.to_path_buf(),
            previous,
        })
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Puts the old content back (or removes the file when there was none).
    pub fn restore(self) -> io::Result<()> {
        match self.previous {
            Some(old) => std::fs::write(&self.path, old),
            None => std::fs::remove_file(&self.path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_and_domains() {
        let dns: Vec<IpAddr> = vec![
            "203.0.113.53".parse().unwrap(),
            "2001:db8:203::53".parse().unwrap(),
        ];
        let text = render(&dns, &["corp.example.".into(), "lab.example".into()]);
        assert_eq!(
            text,
            "# written by roam for the VPN session\nnameserver 203.0.113.53\n\
             nameserver 2001:db8:203::53\nsearch corp.example lab.example\n"
        );
        assert_eq!(render(&[], &[]), "# written by roam for the VPN session\n");
    }

    #[test]
    fn hostile_domains_are_left_out() {
        let text = render(
            &[],
            &[
                "ok.example".into(),
                "evil.example\nnameserver 192.0.2.66".into(),
                "options ndots:15".into(),
                "a..b".into(),
                "x".repeat(64),
            ],
        );
        assert_eq!(text.lines().last(), Some("search ok.example"));
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn at_most_three_servers() {
        let dns: Vec<IpAddr> = (1..=5)
            .map(|i| format!("192.0.2.{i}").parse().unwrap())
            .collect();
        assert_eq!(render(&dns, &[]).matches("nameserver").count(), 3);
    }

    #[test]
    fn write_then_restore() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        let dns: Vec<IpAddr> = vec!["203.0.113.53".parse().unwrap()];
        let written = ResolvConf::write(&path, &dns, &[]).unwrap();
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("nameserver 203.0.113.53"));
        written.restore().unwrap();
        assert!(!path.exists(), "a file that was not there is removed");

        std::fs::write(&path, "nameserver 192.0.2.1\n").unwrap();
        let written = ResolvConf::write(&path, &dns, &[]).unwrap();
        assert_eq!(written.path(), path);
        written.restore().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "nameserver 192.0.2.1\n"
        );
    }
}
