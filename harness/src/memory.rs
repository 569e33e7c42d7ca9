//! The command's resident memory (Linux). Big allocations are mapped on demand
//! ([`map_big_allocations`]): a buffer's pages count only once something is written to them.
//! And the start-up working set is dropped once the tunnel is up and settled
//! ([`trim_after_start_up`], [`SETTLE`]):
//! parsing the profile, the handshake, the TUN and route set-up run once, but the code and
//! constants they touched would stay mapped for as long as the tunnel runs. The trim unmaps the
//! clean, file-backed, read-only pages of every mapping (the binary's code and constants, and
//! its libraries') with `madvise(MADV_DONTNEED)`: nothing is lost (they are still in the page
//! cache), and what still runs maps its pages again at the next touch. Mappings that hold
//! private copies (relocated data, RELRO) are left alone. Elsewhere both do nothing.

/// glibc serves allocations from this size up with their own mapping (its default starts at
/// 128 KB and grows): the data path's 64 KB and 128 KB buffers (a TUN super-packet, GRO
/// receives, GSO sends) and a netlink socket's reads then take memory only for the bytes
/// written into them, and give it back when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_FROM: libc::c_int = 64 * 1024;

/// Maps big allocations on demand (see [`MMAP_FROM`]); call first thing.
pub fn map_big_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation policy; called before any thread starts.
    if unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_FROM) } != 1 {
        log::debug!("mallopt(M_MMAP_THRESHOLD) refused");
    }
}

/// How long after the tunnel came up to trim: by then the network changes that our own routes
/// and address set off (reported after the watcher's debounce) have been handled, and what
/// runs from then on is the tunnel's steady state.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Trims the start-up pages (once the tunnel is up and settled), unless `ROAM_TRIM=0` (to
/// measure without it).
pub fn trim_after_start_up() {
    if std::env::var_os("ROAM_TRIM").is_some_and(|v| v == "0") {
        return;
    }
    let t = start_up_pages();
    log::debug!(
        "start-up pages dropped: {} KB resident in {} mappings",
        t.resident_kb,
        t.mappings
    );
}

/// What a trim did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Trimmed {
    pub mappings: usize,
    pub resident_kb: u64,
}

/// Unmaps the clean read-only file pages of this process (see the module doc).
#[cfg(target_os = "linux")]
pub fn start_up_pages() -> Trimmed {
    // Read line by line through a small buffer: the whole text (tens of KB) would add to the
    // very peak the trim is there to end.
    let smaps = match std::fs::File::open("/proc/self/smaps") {
        Ok(f) => std::io::BufReader::with_capacity(4096, f),
        Err(e) => {
            log::debug!("no trim: /proc/self/smaps: {e}");
            return Trimmed::default();
        }
    };
    let mut trimmed = Trimmed::default();
    for m in clean_read_only(smaps) {
        // SAFETY: the range is a whole mapping of this process that is read-only, file-backed
        // and holds no private (anonymous) page: MADV_DONTNEED only drops page-table entries,
        // and the next access maps the same file page again.
        let rc = unsafe { libc::madvise(m.start as *mut libc::c_void, m.len, libc::MADV_DONTNEED) };
        if rc == 0 {
            trimmed.mappings += 1;
            trimmed.resident_kb += m.rss_kb;
        }
    }
    trimmed
}

#[cfg(not(target_os = "linux"))]
pub fn start_up_pages() -> Trimmed {
    Trimmed::default()
}

/// One mapping that may be trimmed.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    len: usize,
    rss_kb: u64,
}

/// The mappings of an smaps text that are file-backed, readable, never writable (`r-xp` or
/// `r--p`), resident, and say they hold no anonymous page (a mapping whose `Anonymous:` line
/// was not read is not trimmed).
fn clean_read_only(mut smaps: impl std::io::BufRead) -> Vec<Mapping> {
    let mut out = Vec::new();
    let mut current: Option<Candidate> = None;
    let mut line = String::new();
    loop {
        line.clear();
        if !matches!(smaps.read_line(&mut line), Ok(n) if n > 0) {
            break;
        }
        if let Some(next) = header(&line) {
            out.extend(current.replace(next).and_then(Candidate::trimmable));
            continue;
        }
        let Some(c) = current.as_mut() else {
            continue;
        };
        let mut fields = line.split_whitespace();
        match (
            fields.next(),
            fields.next().and_then(|v| v.parse::<u64>().ok()),
        ) {
            (Some("Rss:"), Some(kb)) => c.mapping.rss_kb = kb,
            (Some("Anonymous:"), Some(kb)) => c.anonymous_kb = Some(kb),
            _ => {}
        }
    }
    out.extend(current.and_then(Candidate::trimmable));
    out
}

/// A mapping being read from smaps.
struct Candidate {
    mapping: Mapping,
    /// File-backed, `r-xp` or `r--p`.
    eligible: bool,
    anonymous_kb: Option<u64>,
}

impl Candidate {
    fn trimmable(self) -> Option<Mapping> {
        (self.eligible && self.anonymous_kb == Some(0) && self.mapping.rss_kb > 0)
            .then_some(self.mapping)
    }
}

/// A mapping's header line: its range, and whether its permissions and path allow a trim.
fn header(line: &str) -> Option<Candidate> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    if perms.len() != 4 || end <= start {
        return None;
    }
    let path = fields.nth(3).unwrap_or("");
    Some(Candidate {
        mapping: Mapping {
            start,
            len: end - start,
            rss_kb: 0,
        },
        eligible: matches!(perms, "r-xp" | "r--p") && path.starts_with('/'),
        anonymous_kb: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0000000-55d0c012e000 r--p 00000000 fe:00 10175747                   /usr/bin/roam
Size:               1208 kB
Rss:                 640 kB
Anonymous:             0 kB
VmFlags: rd mr mw me dw sd
55d0c012e000-55d0c062c000 r-xp 0012d000 fe:00 10175747                   /usr/bin/roam
Size:               5112 kB
Rss:                1464 kB
Anonymous:             0 kB
55d0c062c000-55d0c0645000 r--p 0062a000 fe:00 10175747                   /usr/bin/roam
Size:                100 kB
Rss:                 100 kB
Anonymous:            96 kB
55d0c0645000-55d0c065a000 rw-p 00642000 fe:00 10175747                   /usr/bin/roam
Rss:                  64 kB
Anonymous:            20 kB
55d0c1000000-55d0c1100000 rw-p 00000000 00:00 0                          [heap]
Rss:                 684 kB
Anonymous:           684 kB
7f0000000000-7f0000001000 r--p 00000000 fe:00 77                         /usr/lib/libc.so.6
Rss:                   0 kB
Anonymous:             0 kB
7ffc00000000-7ffc00002000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   4 kB
Anonymous:             0 kB
";

    #[test]
    fn only_clean_read_only_file_mappings_are_trimmed() {
        let found = clean_read_only(SMAPS.as_bytes());
        assert_eq!(
            found,
            vec![
                Mapping {
                    start: 0x55d0_c000_0000,
                    len: 0x12_e000,
                    rss_kb: 640
                },
                Mapping {
                    start: 0x55d0_c012_e000,
                    len: 0x4f_e000,
                    rss_kb: 1464
                },
            ],
            "constants and code only: not RELRO (private copies), data, heap, an empty \
             mapping or the vDSO"
        );
    }

    #[test]
    fn a_mapping_cut_off_before_its_anonymous_line_is_kept() {
        let cut = "7f00-7f10 r--p 00000000 fe:00 9 /usr/lib/libx.so\nRss:  64 kB\n";
        assert!(clean_read_only(cut.as_bytes()).is_empty());
    }

    #[test]
    fn garbage_trims_nothing() {
        assert!(clean_read_only("".as_bytes()).is_empty());
        assert!(
            clean_read_only("Rss: 12 kB\nnot a header\n-\nffff-0 r-xp 0 0 0 /x\n".as_bytes())
                .is_empty()
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_stays_whole() {
        let t = start_up_pages();
        assert!(t.mappings > 0, "a test binary has code to trim");
        // what was dropped maps again: code runs, constants read
        assert_eq!(clean_read_only(SMAPS.as_bytes()).len(), 2);
        assert_eq!(format!("{:x}", 0xabc), "abc");
    }
}
