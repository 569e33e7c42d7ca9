//! The session's paths: which local address and server address a new attempt uses, what a
//! network change does (MOBIKE through IKE, make-before-break beside the current connection
//! when the server cannot move the SAs, or a new connection in its place), the switch to
//! the new connection and the server's resolved addresses.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::connection::{self, Connection};
use super::{esp_set, DisconnectReason, Event, Session, State};
use crate::ike::initiator::{IkeEvent, Initiator, Phase};
use crate::ike::mobike::PathChange;

impl Session {
    /// The path of a new attempt: the preferred local address the platform named, and the
    /// server's address of that family (the current one if it fits, else a resolved one).
    pub(super) fn pick_path(&mut self) {
        let Some(&local) = self.locals.first() else {
            return;
        };
        self.local = local;
        self.server = self.server_for(local);
    }

    /// The server's address for a path from `local`: the current one if the family fits,
    /// else a resolved one of that family (the profile's port either way).
    fn server_for(&self, local: SocketAddr) -> SocketAddr {
        if self.server.is_ipv4() == local.is_ipv4() {
            return self.server;
        }
        self.server_addresses
            .iter()
            .find(|ip| ip.is_ipv4() == local.is_ipv4())
            .map_or(self.server, |&ip| SocketAddr::new(ip, self.server.port()))
    }

    /// The platform's view of the network changed: `locals` are the local addresses we can
    /// send from now (one bound socket each, the preferred first; empty: no network). The
    /// session moves its SAs when the current path is gone or a better one appeared (MOBIKE),
    /// or makes a new connection when the server cannot move them: beside the current one
    /// while its local address is still offered (make-before-break: the state stays
    /// `Connected`, a new `Event::Connected` tells the switch), else in its place.
    pub fn network_changed(&mut self, now: Instant, locals: &[SocketAddr]) {
        let changed = self.locals.as_slice() != locals;
        self.locals = locals.to_vec();
        match self.state {
            State::Idle | State::Disconnected => return,
            State::Reconnecting => {
                // A new network is a reason to try now rather than after the backoff.
                if changed && !locals.is_empty() {
                    if let Some(b) = self.backoff.as_mut() {
                        b.hurry(now);
                    }
                }
                return;
            }
            _ => {}
        }
        let change = self.ike.network_changed(now, locals);
        if change == PathChange::NeedsNewSa {
            if self.can_make_before_break() {
                self.make_before_break(now);
            } else {
                self.path_lost_without_mobike(now);
            }
        } else if self.next.is_some() {
            // The current path is preferred again, or there is no network: no new connection.
            log::info!("the current path is preferred again: the new connection is dropped");
            self.abandon_next(now);
        }
        self.flush(now);
    }

    /// Whether a path change can be made before break: connected (a CHILD SA carries
    /// traffic), and the current local address is still one the platform offers.
    pub(super) fn can_make_before_break(&self) -> bool {
        let (local, _) = self.ike.path();
        self.state == State::Connected
            && self.ike.phase() == Phase::Established
            && self.esp.current().is_some()
            && self.locals.first().is_some_and(|&l| l != local)
            && self.locals.contains(&local)
    }

    /// The server cannot move the SAs but the old path still works: a new connection from
    /// the preferred path beside the current one, which carries traffic until the new CHILD
    /// SA is up (`switch_to_next`).
    pub(super) fn make_before_break(&mut self, now: Instant) {
        let Some(&local) = self.locals.first() else {
            return;
        };
        self.retry_next_at = None;
        if let Some(c) = self.next.as_mut() {
            if c.local == local {
                // Already being made from there.
                let _ = c.ike.network_changed(now, &self.locals);
                return;
            }
        }
        self.abandon_next(now);
        let server = self.server_for(local);
        log::info!(
            "the server cannot move the SAs: a new connection from {local} while {} still carries traffic",
            self.ike.path().0
        );
        let mut ike = Initiator::new(self.params.clone(), Box::new(self.rng.clone()));
        ike.omit_initial_contact();
        ike.set_transport(self.transport);
        ike.set_server_addresses(&self.server_addresses);
        self.next = Some(Box::new(Connection::start(
            ike,
            now,
            local,
            server,
            &self.locals,
        )));
    }

    /// Gives up the connection being made (DELETE sent once if it has keys).
    pub(super) fn abandon_next(&mut self, now: Instant) {
        if let Some(mut c) = self.next.take() {
            c.ike.close(now);
            c.drain(&mut self.transmits);
        }
    }

    /// The new connection's CHILD SA is up: outbound moves to it, the old connection is
    /// deleted on its own path and keeps receiving for a grace time.
    fn switch_to_next(&mut self, now: Instant) {
        let Some(mut c) = self.next.take() else {
            return;
        };
        if let Some(spi_in) = c.ike.child().map(|ch| ch.spi_in) {
            connection::install_child(&mut c.ike, &mut c.esp, spi_in);
            c.esp.make_current(spi_in);
        }
        if c.esp.current().is_none() {
            c.ike.close(now);
            c.drain(&mut self.transmits);
            return self.next_failed(now, DisconnectReason::NegotiationFailed("ESP keys".into()));
        }
        self.swap_current(&mut c);
        // `c` is the old connection now.
        log::info!(
            "new connection from {} is up: traffic moved, deleting the old one on {}",
            self.local,
            c.local
        );
        self.volume_rekey_asked = false;
        c.ike.close(now);
        c.receive_until = Some(now + esp_set::RETIRE_GRACE);
        c.drain(&mut self.transmits);
        if let Some(prev) = self.replaced.replace(c) {
            self.esp.carry(&prev.esp.counters());
        }
        if let Some(b) = self.backoff.as_mut() {
            b.reset();
        }
        let info = self.connected_info();
        self.push_event(now, Event::Connected(info));
    }

    /// The new connection failed: the current one keeps carrying traffic; try again after
    /// the reconnect backoff (or at the next network change).
    fn next_failed(&mut self, now: Instant, reason: DisconnectReason) {
        self.next = None;
        match self.backoff.as_mut() {
            Some(b) => {
                let (attempt, delay) = b.schedule(now, &mut self.rng);
                self.retry_next_at = Some(now + delay);
                log::warn!(
                    "new connection failed ({reason}): staying on {}, attempt {attempt} in {delay:?}",
                    self.ike.path().0
                );
            }
            None => log::warn!(
                "new connection failed ({reason}): staying on {} until the network changes",
                self.ike.path().0
            ),
        }
    }

    /// Exchanges the current connection with `c`.
    pub(super) fn swap_current(&mut self, c: &mut Connection) {
        std::mem::swap(&mut self.ike, &mut c.ike);
        std::mem::swap(&mut self.esp, &mut c.esp);
        std::mem::swap(&mut self.natt, &mut c.natt);
        std::mem::swap(&mut self.local, &mut c.local);
        std::mem::swap(&mut self.server, &mut c.server);
    }

    /// Moves out what the other connections produced, and acts on their events.
    pub(super) fn flush_others(&mut self, now: Instant) {
        if let Some(c) = self.replaced.as_mut() {
            c.drain(&mut self.transmits);
            while let Some(e) = c.ike.poll_event() {
                log::debug!("replaced connection: {e:?}");
            }
        }
        let Some(c) = self.next.as_mut() else {
            return;
        };
        c.drain(&mut self.transmits);
        let mut outcome = None;
        while let Some(e) = c.ike.poll_event() {
            match e {
                IkeEvent::ChildEstablished => {
                    outcome = Some(Ok(()));
                    break;
                }
                IkeEvent::Down(reason) => {
                    outcome = Some(Err(reason));
                    break;
                }
                e => log::debug!("new connection: {e:?}"),
            }
        }
        match outcome {
            Some(Ok(())) => self.switch_to_next(now),
            Some(Err(reason)) => self.next_failed(now, reason),
            None => {}
        }
    }

    /// The path changed and the IKE SA cannot move: a new connection from the new path, at
    /// once. An attempt in progress simply starts over there; an established IKE SA is
    /// deleted (from the new path: the server may still know it) before the new one starts.
    fn path_lost_without_mobike(&mut self, now: Instant) {
        self.abandon_next(now);
        self.retry_next_at = None;
        if self.ike.phase() == Phase::Established {
            log::info!("the server cannot move the SAs: a new connection from the new path");
            // The DELETE leaves from the new path: the old one is gone.
            if let Some(&local) = self.locals.first() {
                let (_, remote) = self.ike.path();
                self.ike.set_path(local, remote);
                self.local = local;
            }
            self.ike.close(now);
            self.flush(now);
        }
        self.start_attempt(now);
    }

    /// Every address the server's name resolves to now (the caller resolves it again before
    /// each reconnect attempt and after a network change). Candidates for MOBIKE and for the
    /// next connection attempt.
    pub fn set_server_addresses(&mut self, now: Instant, addresses: &[IpAddr]) {
        let _ = now;
        self.server_addresses = addresses.iter().take(16).copied().collect();
        self.ike.set_server_addresses(&self.server_addresses);
    }
}
