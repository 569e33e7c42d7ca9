//! End-to-end tests of `VpnTunnel` against Roam's responder on loopback (the test fixture),
//! with a Rust implementation of the platform callbacks. Packets go through ESP to the
//! fixture's echo and come back. Tests own their clock (deadlines for waiting), hence the
//! clippy allowance.
#![allow(clippy::disallowed_methods)]

use std::os::unix::net::UnixDatagram;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use roam_runtime::echo::{probe, reply_tag, Kind};

use super::*;
use crate::config::{AuthConfig, SecretText, ServerConfig, VpnConfig};
use crate::testing::TestResponder;
use crate::types::NetworkKind;

const WAIT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<VpnEvent>>,
    settings: Mutex<Vec<NetworkSettings>>,
    protected: Mutex<Vec<i32>>,
    refuse_protect: bool,
    changed: Condvar,
}

impl PlatformCallbacks for Recorder {
    fn protect_socket(&self, fd: i32) -> bool {
        lock(&self.protected).push(fd);
        !self.refuse_protect
    }
    fn apply_network_settings(&self, settings: NetworkSettings) -> bool {
        lock(&self.settings).push(settings);
        true
    }
    fn on_event(&self, event: VpnEvent) {
        lock(&self.events).push(event);
        self.changed.notify_all();
    }
}

impl Recorder {
    /// Waits for an event matching `f`; returns it.
    fn wait_for(&self, what: &str, f: impl Fn(&VpnEvent) -> bool) -> VpnEvent {
        let mut events = lock(&self.events);
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(e) = events.iter().find(|e| f(e)) {
                return e.clone();
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "no {what} within {WAIT:?}: {:?}", *events);
            events = self.changed.wait_timeout(events, left).unwrap().0;
        }
    }
}

#[derive(Default)]
struct FlowRecorder(Mutex<Vec<Vec<u8>>>);

impl PacketFlow for FlowRecorder {
    fn write_packets(&self, packets: Vec<Vec<u8>>) {
        lock(&self.0).extend(packets);
    }
}

fn config(responder: &TestResponder, psk: &str) -> VpnConfig {
    VpnConfig {
        server: ServerConfig {
            address: responder.host(),
            port: responder.port(),
            id: Some(responder.server_id()),
            ca_pem: None,
        },
        auth: AuthConfig::Psk {
            local_id: "phone@roam.example".into(),
            psk: SecretText::new(psk.into()),
        },
        crypto: None,
        tunnel: None,
        ppk: None,
    }
}

/// An IPv4 UDP packet from `src` to 192.0.2.1:53.
fn udp_packet(src: [u8; 4]) -> Vec<u8> {
    let mut p = vec![
        0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0, src[0], src[1], src[2], src[3], 192, 0, 2, 1,
        0x30, 0x39, 0, 53, 0, 12, 0, 0, b'r', b'o', b'a', b'm',
    ];
    p.truncate(32);
    p
}

#[test]
fn connects_applies_settings_reports_the_network_and_stops() {
    let psk = "unit-test-psk-connects";
    let responder = TestResponder::start(psk.into()).unwrap();
    let platform = Arc::new(Recorder::default());
    let tunnel = VpnTunnel::new(config(&responder, psk), platform.clone()).unwrap();
    let flow = Arc::new(FlowRecorder::default());
    tunnel.set_packet_flow(flow.clone());
    assert_eq!(tunnel.status().state, TunnelState::Idle);
    tunnel.start().unwrap();
    assert!(matches!(tunnel.start(), Err(VpnError::State { .. })));

    let VpnEvent::Connected { info, at_unix_ms } =
        platform.wait_for("Connected", |e| matches!(e, VpnEvent::Connected { .. }))
    else {
        unreachable!()
    };
    assert!(
        info.virtual_ips
            .iter()
            .any(|ip| ip.starts_with("198.18.0.")),
        "{info:?}"
    );
    let wall = super::wall_clock_now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(wall.abs_diff(at_unix_ms) < 60_000, "{at_unix_ms} vs {wall}");
    // Settings come before Connected, on the same ordered thread.
    let settings = lock(&platform.settings).clone();
    assert_eq!(settings.len(), 1);
    let s = &settings[0];
    assert_eq!(s.server_address, "127.0.0.1");
    assert!(s
        .addresses
        .iter()
        .any(|a| a.address.starts_with("198.18.0.") && a.prefix_len == 32));
    assert_eq!(s.dns_servers, vec!["203.0.113.53"]);
    assert!(s
        .routes
        .iter()
        .any(|r| r.address == "0.0.0.0" && r.prefix_len == 0));
    assert_eq!(s.mtu, 1400);
    assert!(
        !lock(&platform.protected).is_empty(),
        "no socket was protected"
    );

    let status = tunnel.status();
    assert_eq!(status.state, TunnelState::Connected);
    assert_eq!(status.virtual_ips, info.virtual_ips);
    assert!(status.local_address.is_some());

    // The app's side of the packet path: packets are queued for the tunnel and counted.
    let vip: std::net::Ipv4Addr = info.virtual_ips[0].parse().unwrap();
    let queued = tunnel.send_packets(vec![udp_packet(vip.octets()); 3]);
    assert_eq!(queued, 3);
    assert_eq!(tunnel.status().packets_to_tunnel, 3);
    assert_eq!(tunnel.status().bytes_to_tunnel, 96);

    let wifi = NetworkInfo {
        kind: NetworkKind::Wifi,
        interface_name: Some("wlan0".into()),
        addresses: vec!["192.0.2.10".into()],
        expensive: false,
    };
    tunnel.network_changed(wifi.clone());
    let e = platform.wait_for("NetworkChanged", |e| {
        matches!(e, VpnEvent::NetworkChanged { .. })
    });
    assert_eq!(
        e,
        VpnEvent::NetworkChanged {
            network: wifi.clone(),
            roamed: false
        }
    );
    assert_eq!(tunnel.status().network, Some(wifi));
    tunnel.sleep();
    assert!(tunnel.status().asleep);
    tunnel.wake();
    assert!(!tunnel.status().asleep);

    tunnel.stop();
    let e = platform.wait_for("Disconnected", |e| {
        matches!(e, VpnEvent::Disconnected { .. })
    });
    let VpnEvent::Disconnected {
        reason,
        error,
        at_unix_ms: closed_at,
    } = e
    else {
        unreachable!()
    };
    assert_eq!((reason.as_str(), error), ("closed", None));
    assert!(closed_at >= at_unix_ms, "events carry their time in order");
    assert_eq!(responder.established_count(), 1);
    // Once the run has ended, the tunnel can start again.
    let deadline = std::time::Instant::now() + WAIT;
    while lock(&tunnel.shared.running).is_some() {
        assert!(std::time::Instant::now() < deadline, "the run did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(tunnel.status().state, TunnelState::Disconnected);
    assert_eq!(tunnel.send_packets(vec![udp_packet([1, 2, 3, 4])]), 0);
    assert_eq!(tunnel.status().packets_dropped, 1);
}

#[test]
fn a_refused_protect_fails_the_start() {
    let psk = "unit-test-psk-refused";
    let responder = TestResponder::start(psk.into()).unwrap();
    let platform = Arc::new(Recorder {
        refuse_protect: true,
        ..Recorder::default()
    });
    let tunnel = VpnTunnel::new(config(&responder, psk), platform.clone()).unwrap();
    tunnel.start().unwrap();
    let e = platform.wait_for("Disconnected", |e| {
        matches!(e, VpnEvent::Disconnected { .. })
    });
    let VpnEvent::Disconnected {
        error: Some(error), ..
    } = e
    else {
        panic!("{e:?}")
    };
    assert!(error.contains("protect"), "{error}");
    assert_eq!(responder.established_count(), 0);
    assert!(tunnel.status().last_error.is_some());
}

#[test]
fn a_bad_config_is_refused_at_construction_with_its_key() {
    let responder = TestResponder::start("x".into()).unwrap();
    let mut c = config(&responder, "");
    c.server.port = 0;
    match VpnTunnel::new(c, Arc::new(Recorder::default())) {
        Err(VpnError::Config { key, .. }) => assert_eq!(key, "server.port"),
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn packets_through_an_adopted_tun_fd_come_back_from_the_echo() {
    let psk = "unit-test-psk-fd";
    let responder = TestResponder::start(psk.into()).unwrap();
    let platform = Arc::new(Recorder::default());
    let tunnel = VpnTunnel::new(config(&responder, psk), platform.clone()).unwrap();
    assert!(matches!(
        tunnel.set_tun_fd(-1),
        Err(VpnError::Platform { .. })
    ));
    let (ours, os_side) = UnixDatagram::pair().unwrap();
    tunnel
        .set_tun_fd(std::os::fd::IntoRawFd::into_raw_fd(
            std::os::fd::OwnedFd::from(ours),
        ))
        .unwrap();
    tunnel.start().unwrap();
    let vip = connected_vip4(&platform);
    let mut packet = Vec::new();
    if tun_fd::UTUN_HEADER {
        packet.extend_from_slice(&2u32.to_be_bytes());
    }
    packet.extend_from_slice(&udp_packet(vip.octets()));
    os_side.send(&packet).unwrap();
    // The echo's answer comes back through the fd: 192.0.2.1:53 -> vip:12345.
    os_side.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 2048];
    let n = os_side.recv(&mut buf).expect("no echo through the TUN fd");
    let header = if tun_fd::UTUN_HEADER { 4 } else { 0 };
    let reply = &buf[header..n];
    assert_eq!(reply.len(), 32);
    assert_eq!(reply[12..16], [192, 0, 2, 1]);
    assert_eq!(reply[16..20], vip.octets());
    assert_eq!(reply[20..24], [0, 53, 0x30, 0x39]);
    assert_eq!(&reply[28..], b"roam");
    // The fd paths count after their read and write: the echo may be back first.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let s = tunnel.status();
        let counted = (
            s.packets_to_tunnel,
            s.bytes_to_tunnel,
            s.packets_from_tunnel,
            s.bytes_from_tunnel,
        );
        if counted == (1, 32, 1, 32) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "counters: {counted:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    tunnel.stop();
    platform.wait_for("Disconnected", |e| {
        matches!(e, VpnEvent::Disconnected { .. })
    });
}

/// Waits for `Connected`; returns the tunnel's virtual IPv4 address.
fn connected_vip4(platform: &Recorder) -> std::net::Ipv4Addr {
    let VpnEvent::Connected { info, .. } =
        platform.wait_for("Connected", |e| matches!(e, VpnEvent::Connected { .. }))
    else {
        unreachable!()
    };
    info.virtual_ips
        .iter()
        .find_map(|ip| ip.parse().ok())
        .expect("no virtual IPv4 address")
}

#[test]
fn probes_through_the_packet_flow_come_back_from_the_echo() {
    let psk = "unit-test-psk-echo";
    let responder = TestResponder::start(psk.into()).unwrap();
    let platform = Arc::new(Recorder::default());
    let tunnel = VpnTunnel::new(config(&responder, psk), platform.clone()).unwrap();
    let flow = Arc::new(FlowRecorder::default());
    tunnel.set_packet_flow(flow.clone());
    tunnel.start().unwrap();
    let vip4 = connected_vip4(&platform);
    let vip6: std::net::Ipv6Addr = tunnel
        .status()
        .virtual_ips
        .iter()
        .find_map(|ip| ip.parse().ok())
        .expect("no virtual IPv6 address");
    let (t4, t6): (std::net::IpAddr, std::net::IpAddr) =
        ([203, 0, 113, 1].into(), "2001:db8:203::1".parse().unwrap());
    let mut sent = Vec::new();
    for tag in 1..=12u32 {
        let (kind, src, dst) = match tag % 3 {
            0 => (Kind::Icmp, vip4.into(), t4),
            1 => (Kind::Udp, vip4.into(), t4),
            _ => (Kind::Icmp6, vip6.into(), t6),
        };
        sent.push((kind, tag, probe(kind, src, dst, tag, 24).unwrap()));
    }
    let bytes: u64 = sent.iter().map(|(_, _, p)| p.len() as u64).sum();
    let queued = tunnel.send_packets(sent.iter().map(|(_, _, p)| p.clone()).collect());
    assert_eq!(queued, 12);

    let deadline = std::time::Instant::now() + WAIT;
    while lock(&flow.0).len() < sent.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "echoes: {} of {}",
            lock(&flow.0).len(),
            sent.len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut got: Vec<(Kind, u32)> = lock(&flow.0).iter().filter_map(|p| reply_tag(p)).collect();
    got.sort_by_key(|&(_, tag)| tag);
    let want: Vec<(Kind, u32)> = sent.iter().map(|&(k, t, _)| (k, t)).collect();
    assert_eq!(got, want);
    let s = tunnel.status();
    assert_eq!((s.packets_to_tunnel, s.bytes_to_tunnel), (12, bytes));
    assert_eq!((s.packets_from_tunnel, s.bytes_from_tunnel), (12, bytes));
    assert_eq!(s.packets_dropped, 0);
    tunnel.stop();
    platform.wait_for("Disconnected", |e| {
        matches!(e, VpnEvent::Disconnected { .. })
    });
}

#[derive(Default)]
struct LogCapture(Mutex<Vec<String>>);

impl crate::logging::LogSink for LogCapture {
    fn log(&self, level: crate::logging::LogLevel, target: String, message: String) {
        lock(&self.0).push(format!("{level:?} {target}: {message}"));
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn trace_logs_of_a_whole_session_hold_no_secret() {
    let psk = "Trace-Log-PSK-must-never-appear";
    let capture = Arc::new(LogCapture::default());
    crate::logging::set_log_sink(Some(capture.clone()));
    crate::logging::set_log_level(crate::logging::LogLevel::Trace);

    let responder = TestResponder::start(psk.into()).unwrap();
    let platform = Arc::new(Recorder::default());
    let tunnel = VpnTunnel::new(config(&responder, psk), platform.clone()).unwrap();
    tunnel.start().unwrap();
    platform.wait_for("Connected", |e| matches!(e, VpnEvent::Connected { .. }));
    tunnel.stop();
    platform.wait_for("Disconnected", |e| {
        matches!(e, VpnEvent::Disconnected { .. })
    });
    // A profile with a password and a bad key: validation errors are logged by apps.
    let profile = "[server]\naddress = \"192.0.2.1\"\n[auth]\nmethod = \"eap-mschapv2\"\nusername = \"alice\"\npassword = 12345\n";
    let err = VpnTunnel::from_profile(profile.into(), ".".into(), platform.clone())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    log::error!("profile error: {err}");
    crate::logging::set_log_sink(None);
    crate::logging::set_log_level(crate::logging::LogLevel::Info);

    let lines = lock(&capture.0).clone();
    assert!(
        lines.iter().any(|l| l.starts_with("Trace")),
        "no trace line captured"
    );
    assert!(lines.len() > 10, "too few lines: {lines:?}");
    let needles = [psk.to_string(), hex(psk.as_bytes()), "12345".to_string()];
    for line in &lines {
        for needle in &needles {
            assert!(
                !line.contains(needle.as_str()),
                "secret in a log line: {line}"
            );
        }
    }
}
