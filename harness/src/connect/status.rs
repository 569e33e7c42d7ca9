//! The state lines `roam connect` prints on stdout (the contract the lab tests read):
//! `connecting server=…`, `ike-sa-established`, `connected vip=… dns=… ike=… esp=… nat=… spi=…`,
//! `closing`, `disconnected reason=…`.

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

use roam_proto::session::{ConnectedInfo, DisconnectReason, Event, RekeyKind, State, Transport};

/// Turns events into lines, one per state change (repeats are dropped).
pub struct StatusLines {
    server: SocketAddr,
    last: Option<State>,
}

impl StatusLines {
    pub fn new(server: SocketAddr) -> Self {
        Self { server, last: None }
    }

    /// The first line, printed once the driver runs.
    pub fn connecting(&mut self) -> String {
        self.last = Some(State::Connecting);
        format!("connecting server={}", self.server)
    }

    pub fn disconnected(&mut self, reason: &DisconnectReason) -> String {
        self.last = Some(State::Disconnected);
        format!("disconnected reason={reason}")
    }

    /// The line for `event`, if it is a state change worth one.
    pub fn event(&mut self, event: &Event) -> Option<String> {
        match event {
            Event::StateChanged(state) => {
                if self.last == Some(*state) {
                    return None;
                }
                let line = match state {
                    State::Connecting => format!("connecting server={}", self.server),
                    State::IkeSaEstablished => "ike-sa-established".to_string(),
                    State::Closing => "closing".to_string(),
                    State::Roaming => "roaming".to_string(),
                    State::Reconnecting => return None,
                    // These two have their own event with the details.
                    State::Connected | State::Disconnected | State::Idle => return None,
                };
                self.last = Some(*state);
                Some(line)
            }
            Event::Connected(info) => {
                self.last = Some(State::Connected);
                Some(connected_line(info))
            }
            Event::Disconnected(reason) => Some(self.disconnected(reason)),
            Event::Roamed { local, remote } => {
                Some(format!("roamed local={local} remote={remote}"))
            }
            Event::Rekeyed(RekeyKind::Child { spi_in, spi_out }) => Some(format!(
                "rekeyed child spi_in={spi_in:08x} spi_out={spi_out:08x}"
            )),
            Event::Rekeyed(RekeyKind::Ike { spi_i, spi_r }) => {
                Some(format!("rekeyed ike spi={spi_i:016x}_{spi_r:016x}"))
            }
            Event::Reconnecting {
                attempt,
                delay,
                reason,
            } => {
                self.last = Some(State::Reconnecting);
                Some(format!(
                    "reconnecting attempt={attempt} delay_ms={} reason={reason}",
                    delay.as_millis()
                ))
            }
        }
    }
}

fn connected_line(info: &ConnectedInfo) -> String {
    let mut line = String::from("connected");
    let _ = write!(
        line,
        " vip={} dns={} ike={} esp={} nat={} encap={} spi={:016x}_{:016x}",
        addresses(&info.virtual_ips),
        addresses(&info.dns),
        info.ike_proposal,
        info.esp_proposal,
        if info.nat_detected { "yes" } else { "no" },
        match (info.transport, info.udp_encapsulation) {
            (Transport::Tcp, _) => "tcp",
            (Transport::Udp, true) => "udp",
            (Transport::Udp, false) => "none",
        },
        info.spi_i,
        info.spi_r,
    );
    line
}

/// `a,b`, or `none`.
fn addresses(list: &[IpAddr]) -> String {
    if list.is_empty() {
        return "none".to_string();
    }
    list.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ConnectedInfo {
        ConnectedInfo {
            virtual_ips: vec![
                "198.18.0.1".parse().unwrap(),
                "2001:db8:ffff::1".parse().unwrap(),
            ],
            dns: vec![
                "203.0.113.53".parse().unwrap(),
                "2001:db8:203::53".parse().unwrap(),
            ],
            dns_domains: vec![],
            ike_proposal: "aes256gcm16-prfsha384-ecp384".into(),
            esp_proposal: "aes256gcm16".into(),
            local_ts: vec![],
            remote_ts: vec![],
            spi_i: 0x1a2b_3c4d_5e6f_7081,
            spi_r: 0x8192_a3b4_c5d6_e7f8,
            esp_spi_in: 1,
            esp_spi_out: 2,
            nat_detected: true,
            udp_encapsulation: true,
            transport: Transport::Udp,
        }
    }

    #[test]
    fn the_contract_example() {
        let mut lines = StatusLines::new("198.51.100.1:500".parse().unwrap());
        let mut out = vec![lines.connecting()];
        let events = [
            Event::StateChanged(State::Connecting),
            Event::StateChanged(State::IkeSaEstablished),
            Event::StateChanged(State::Connected),
            Event::Connected(info()),
            Event::StateChanged(State::Disconnected),
            Event::Disconnected(DisconnectReason::Closed),
        ];
        out.extend(events.iter().filter_map(|e| lines.event(e)));
        assert_eq!(
            out,
            [
                "connecting server=198.51.100.1:500",
                "ike-sa-established",
                "connected vip=198.18.0.1,2001:db8:ffff::1 dns=203.0.113.53,2001:db8:203::53 \
                 ike=aes256gcm16-prfsha384-ecp384 esp=aes256gcm16 nat=yes encap=udp spi=1a2b3c4d5e6f7081_8192a3b4c5d6e7f8",
                "disconnected reason=closed",
            ]
        );
    }

    #[test]
    fn no_addresses_and_no_nat() {
        let mut i = info();
        i.virtual_ips.clear();
        i.dns.clear();
        i.nat_detected = false;
        i.udp_encapsulation = false;
        i.spi_i = 1;
        i.spi_r = 0xff;
        let line = StatusLines::new("[2001:db8::1]:500".parse().unwrap())
            .event(&Event::Connected(i))
            .unwrap();
        assert_eq!(
            line,
            "connected vip=none dns=none ike=aes256gcm16-prfsha384-ecp384 esp=aes256gcm16 nat=no encap=none \
             spi=0000000000000001_00000000000000ff"
        );
        let mut i = info();
        i.transport = Transport::Tcp;
        let line = StatusLines::new("192.0.2.1:4500".parse().unwrap())
            .event(&Event::Connected(i))
            .unwrap();
        assert!(line.contains(" encap=tcp "), "{line}");
    }

    #[test]
    fn closing_and_failure_reasons() {
        let mut lines = StatusLines::new("[2001:db8::1]:4500".parse().unwrap());
        assert_eq!(lines.connecting(), "connecting server=[2001:db8::1]:4500");
        assert_eq!(
            lines.event(&Event::StateChanged(State::Closing)).as_deref(),
            Some("closing")
        );
        assert_eq!(lines.event(&Event::StateChanged(State::Closing)), None);
        let e = Event::Disconnected(DisconnectReason::AuthenticationFailed(
            "AUTHENTICATION_FAILED".into(),
        ));
        assert_eq!(
            lines.event(&e).as_deref(),
            Some("disconnected reason=authentication-failed: AUTHENTICATION_FAILED")
        );
        assert_eq!(
            lines
                .event(&Event::Disconnected(DisconnectReason::Timeout))
                .as_deref(),
            Some("disconnected reason=timeout")
        );
    }
}
