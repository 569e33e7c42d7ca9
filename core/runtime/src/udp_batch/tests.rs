use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Writes `len` bytes of `fill` into the batch's free space and pushes them.
fn put(b: &mut TxBatch, local: &str, remote: &str, len: usize, fill: u8) {
    b.free()[..len].fill(fill);
    b.push(addr(local), addr(remote), len);
}

fn shape(b: &TxBatch) -> Vec<(String, usize, usize, Option<usize>)> {
    b.runs()
        .map(|(r, bytes)| (r.remote.to_string(), r.count, bytes.len(), r.gso()))
        .collect()
}

const L: &str = "192.0.2.1:4500";

#[test]
fn same_peer_same_size_is_one_gso_run() {
    let mut b = TxBatch::new(1 << 16, 8, 64);
    for i in 0..5 {
        put(&mut b, L, "198.51.100.1:4500", 1436, i);
    }
    assert_eq!(
        shape(&b),
        [("198.51.100.1:4500".into(), 5, 5 * 1436, Some(1436))]
    );
    let (_, bytes) = b.runs().next().unwrap();
    // The datagrams lie end to end, in order.
    for (i, range) in segments(bytes.len(), 1436).enumerate() {
        assert!(bytes[range].iter().all(|&x| x == i as u8));
    }
}

#[test]
fn mixed_destinations_split_into_runs() {
    let mut b = TxBatch::new(1 << 16, 8, 64);
    put(&mut b, L, "198.51.100.1:4500", 100, 1);
    put(&mut b, L, "198.51.100.1:4500", 100, 2);
    put(&mut b, L, "198.51.100.2:4500", 100, 3);
    put(&mut b, L, "198.51.100.1:4500", 100, 4);
    // Another local socket toward the same peer is another run too.
    put(&mut b, "[2001:db8::1]:4500", "198.51.100.1:4500", 100, 5);
    assert_eq!(
        shape(&b),
        [
            ("198.51.100.1:4500".into(), 2, 200, Some(100)),
            ("198.51.100.2:4500".into(), 1, 100, None),
            ("198.51.100.1:4500".into(), 1, 100, None),
            ("198.51.100.1:4500".into(), 1, 100, None),
        ]
    );
    assert_eq!(b.datagrams(), 5);
    let bytes: Vec<u8> = b.runs().map(|(_, d)| d[0]).collect();
    assert_eq!(bytes, [1, 3, 4, 5]);
}

#[test]
fn a_shorter_datagram_ends_a_run_and_a_longer_one_starts_another() {
    let mut b = TxBatch::new(1 << 16, 8, 64);
    let p = "198.51.100.1:4500";
    put(&mut b, L, p, 1000, 0);
    put(&mut b, L, p, 1000, 0);
    put(&mut b, L, p, 600, 0); // the last of the run may be shorter
    put(&mut b, L, p, 600, 0); // but nothing joins after it
    put(&mut b, L, p, 1200, 0); // longer than the segment: a new run
    put(&mut b, L, p, 1200, 0);
    assert_eq!(
        shape(&b),
        [
            (p.into(), 3, 2600, Some(1000)),
            (p.into(), 1, 600, None),
            (p.into(), 2, 2400, Some(1200)),
        ]
    );
    // The kernel sees segments of 1000, 1000 and 600 for the first run.
    let (run, bytes) = b.runs().next().unwrap();
    let sizes: Vec<usize> = segments(bytes.len(), run.segment)
        .map(|r| r.len())
        .collect();
    assert_eq!(sizes, [1000, 1000, 600]);
}

#[test]
fn runs_respect_the_segment_and_byte_limits() {
    let p = "198.51.100.1:4500";
    let mut b = TxBatch::new(1 << 18, 16, 4);
    for _ in 0..10 {
        put(&mut b, L, p, 100, 0);
    }
    let counts: Vec<usize> = b.runs().map(|(r, _)| r.count).collect();
    assert_eq!(counts, [4, 4, 2]);

    // No GSO at all (a platform without it): every datagram is its own run.
    let mut b = TxBatch::new(1 << 16, 16, 1);
    put(&mut b, L, p, 100, 0);
    put(&mut b, L, p, 100, 0);
    assert!(b.runs().all(|(r, _)| r.gso().is_none()));
    assert_eq!(b.runs().count(), 2);

    // 9000-byte datagrams: at most 7 fit under MAX_GSO_BYTES.
    let mut b = TxBatch::new(1 << 18, 16, 64);
    for _ in 0..10 {
        put(&mut b, L, p, 9000, 0);
    }
    let counts: Vec<usize> = b.runs().map(|(r, _)| r.count).collect();
    assert_eq!(counts, [7, 3]);
    assert!(b.runs().all(|(_, d)| d.len() <= MAX_GSO_BYTES));
}

#[test]
fn room_runs_out_and_clear_starts_over() {
    let p = "198.51.100.1:4500";
    let mut b = TxBatch::new(3000, 2, 64);
    assert!(b.has_room(1500));
    put(&mut b, L, p, 1500, 0);
    assert!(b.has_room(1500));
    assert!(!b.has_room(1501));
    put(&mut b, "192.0.2.9:4500", p, 1500, 0);
    assert!(!b.has_room(1));
    // A push past the end is cut to what is there (nothing here), never a panic.
    b.push(addr(L), addr(p), 10);
    assert_eq!(b.datagrams(), 2);
    b.clear();
    assert!(b.is_empty());
    assert!(b.has_room(3000));
    assert_eq!(b.free().len(), 3000);
}

#[test]
fn gro_buffers_split_at_the_stride() {
    let r: Vec<Range<usize>> = segments(3500, 1400).collect();
    assert_eq!(r, [0..1400, 1400..2800, 2800..3500]);
    assert_eq!(segments(1400, 1400).count(), 1);
    assert_eq!(segments(0, 1400).count(), 0);
    // A stride of 0 (no GRO information) is one datagram.
    let r: Vec<Range<usize>> = segments(77, 0).collect();
    assert_eq!(r, vec![Range { start: 0, end: 77 }]);

    let mut rx = RxBatch::new();
    rx.fill(0, addr("198.51.100.1:4500"), &[7; 3000], 1000);
    rx.fill(1, addr("198.51.100.2:4500"), &[8; 10], 10);
    assert_eq!(rx.len(), 2);
    let (from, len, stride) = rx.slot(0).unwrap();
    assert_eq!(from, addr("198.51.100.1:4500"));
    assert_eq!(segments(len, stride).count(), 3);
    let (from, len, stride) = rx.slot(1).unwrap();
    assert_eq!(from, addr("198.51.100.2:4500"));
    assert_eq!(
        segments(len, stride).collect::<Vec<_>>(),
        vec![Range { start: 0, end: 10 }]
    );
    assert!(rx.slot(2).is_none());
    assert_eq!(rx.slot_mut(1).unwrap()[0], 8);
}

async fn pair() -> (BatchSocket, UdpSocket) {
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    (BatchSocket::new(a), b)
}

#[tokio::test]
async fn a_gso_run_arrives_as_separate_datagrams() {
    let (a, b) = pair().await;
    // Linux has had UDP GSO since 4.18: this is one sendmsg.
    #[cfg(target_os = "linux")]
    assert!(a.max_segments() > 1, "{}", a.max_segments());
    let to = b.local_addr().unwrap();
    let mut contents = Vec::new();
    for (i, len) in [(1u8, 1200), (2, 1200), (3, 1200), (4, 500)] {
        contents.extend(std::iter::repeat_n(i, len));
    }
    a.send(to, &contents, Some(1200)).await.unwrap();
    let mut buf = [0u8; 2000];
    for (i, len) in [(1u8, 1200), (2, 1200), (3, 1200), (4, 500)] {
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(from, a.socket().local_addr().unwrap());
        assert_eq!(n, len);
        assert!(buf[..n].iter().all(|&x| x == i));
    }
}

#[tokio::test]
async fn one_receive_takes_every_waiting_datagram() {
    let (a, b) = pair().await;
    let to = a.socket().local_addr().unwrap();
    for i in 0..5u8 {
        b.send_to(&[i; 700], to).await.unwrap();
    }
    b.send_to(&[9; 90], to).await.unwrap();
    let mut rx = RxBatch::new();
    let mut seen: Vec<(u8, usize)> = Vec::new();
    while seen.len() < 6 {
        std::future::poll_fn(|cx| a.poll_recv(cx, &mut rx))
            .await
            .unwrap();
        for i in 0..rx.len() {
            let (from, len, stride) = rx.slot(i).unwrap();
            assert_eq!(from, b.local_addr().unwrap());
            let slot = rx.slot_mut(i).unwrap();
            for r in segments(len, stride) {
                seen.push((slot[r.start], r.len()));
            }
        }
    }
    assert_eq!(
        seen,
        [(0, 700), (1, 700), (2, 700), (3, 700), (4, 700), (9, 90)]
    );
    // Nothing more: a try returns WouldBlock instead of waiting.
    let e = a.try_recv(&mut rx).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
}

#[tokio::test]
async fn an_unreachable_peer_fails_its_run_only() {
    let (a, b) = pair().await;
    let gso = a.max_segments();
    // IPv6 destination from an IPv4 socket: this datagram fails...
    let bad = a.send(addr("[2001:db8::1]:4500"), &[1; 100], None).await;
    assert!(bad.is_err());
    assert_eq!(a.max_segments(), gso, "GSO stays on");
    // ...and the socket goes on sending the next one.
    a.send(b.local_addr().unwrap(), &[2; 200], Some(100))
        .await
        .unwrap();
    let mut buf = [0u8; 500];
    let (n, _) = b.recv_from(&mut buf).await.unwrap();
    assert_eq!((n, buf[0]), (100, 2));
    let (n, _) = b.recv_from(&mut buf).await.unwrap();
    assert_eq!((n, buf[0]), (100, 2));
}
