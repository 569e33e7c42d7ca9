//! A TUN file descriptor handed over by the OS (Android `ParcelFileDescriptor.detachFd()`,
//! iOS utun): owned, made non-blocking and read and written through tokio. On Apple
//! platforms every utun packet carries a 4-byte address-family header, removed on read and
//! added on write; Android's TUN has none.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::unix::AsyncFd;

/// Whether packets on this platform's TUN carry the utun address-family header.
pub(crate) const UTUN_HEADER: bool = cfg!(target_vendor = "apple");

/// Darwin's address families in the utun header.
const DARWIN_AF_INET: u32 = 2;
const DARWIN_AF_INET6: u32 = 30;

/// Takes ownership of `fd`: checks that it is open (without ever closing an fd that is not
/// ours to close) and makes it non-blocking.
pub(crate) fn adopt(fd: i32) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "negative fd"));
    }
    // SAFETY: only borrowed for the duplication, which fails with EBADF if `fd` is not open.
    let dup = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()?;
    // SAFETY: `fd` is open (it was just duplicated) and the caller hands it to us.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    set_nonblocking(dup.as_raw_fd())?;
    Ok(dup)
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An adopted TUN descriptor, read and written one packet at a time.
pub(crate) struct TunFd {
    fd: AsyncFd<OwnedFd>,
    utun_header: bool,
}

impl TunFd {
    /// Must be called inside a tokio runtime.
    pub(crate) fn new(fd: OwnedFd, utun_header: bool) -> io::Result<Self> {
        // SAFETY: `fd` is owned by the AsyncFd and closed only when it is dropped.
        let fd = unsafe { AsyncFd::register(fd)? };
        Ok(Self { fd, utun_header })
    }

    /// Reads one packet into `buf` (without the utun header); returns its length.
    pub(crate) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            let result = guard.try_io(|fd| {
                // SAFETY: reads at most buf.len() bytes into buf from an fd we own.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match result {
                Ok(Ok(n)) if self.utun_header => {
                    if n < 4 {
                        continue; // no packet behind the header: skip it
                    }
                    buf.copy_within(4..n, 0);
                    return Ok(n - 4);
                }
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes one packet (adding the utun header where needed).
    pub(crate) async fn write(&self, packet: &[u8]) -> io::Result<()> {
        let framed;
        let data = if self.utun_header {
            let af = match packet.first().map(|b| b >> 4) {
                Some(6) => DARWIN_AF_INET6,
                _ => DARWIN_AF_INET,
            };
            let mut v = Vec::with_capacity(packet.len() + 4);
            v.extend_from_slice(&af.to_be_bytes());
            v.extend_from_slice(packet);
            framed = v;
            &framed[..]
        } else {
            packet
        };
        loop {
            let mut guard = self.fd.writable().await?;
            let result = guard.try_io(|fd| {
                // SAFETY: writes data.len() bytes from data to an fd we own.
                let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            match result {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn refuses_closed_and_negative_fds() {
        assert!(adopt(-1).is_err());
        // A number far above any open fd.
        assert!(adopt(999_999).is_err());
    }

    #[tokio::test]
    async fn reads_and_writes_packets_with_and_without_the_utun_header() {
        for utun in [false, true] {
            let (ours, theirs) = UnixDatagram::pair().unwrap();
            let fd = adopt(OwnedFd::from(ours).into_raw_fd_for_test()).unwrap();
            let tun = TunFd::new(fd, utun).unwrap();
            let packet = [0x45u8, 0, 0, 20, 1, 2, 3, 4];
            let mut from_os = Vec::new();
            if utun {
                from_os.extend_from_slice(&DARWIN_AF_INET.to_be_bytes());
            }
            from_os.extend_from_slice(&packet);
            theirs.send(&from_os).unwrap();
            let mut buf = [0u8; 100];
            let n = tun.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &packet);
            tun.write(&packet).await.unwrap();
            let n = theirs.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &from_os[..]);
        }
    }

    trait IntoRawForTest {
        fn into_raw_fd_for_test(self) -> i32;
    }
    impl IntoRawForTest for OwnedFd {
        fn into_raw_fd_for_test(self) -> i32 {
            std::os::fd::IntoRawFd::into_raw_fd(self)
        }
    }
}
