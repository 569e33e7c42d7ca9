//! The IKE SA as a sans-IO state machine: one task per exchange (`init`, `auth` with `eap`,
//! `info`, `liveness`, `mobike`, `rekey` with its `lifetime`s) under one task manager, for
//! the initiator; keys, message protection, NAT detection and CHILD SA negotiation shared
//! with the responder used by tests and demos.

pub mod auth;
pub mod child;
pub mod eap;
pub mod info;
pub mod init;
pub mod initiator;
pub mod intermediate;
pub mod keys;
pub mod lifetime;
pub mod liveness;
pub mod mobike;
pub mod natd;
pub mod params;
pub mod ppk;
pub mod protect;
pub mod rekey;
pub mod responder;
mod responder_auth;
pub mod task_manager;
mod transport;

#[cfg(test)]
pub(crate) mod test_clock {
    //! One real instant as the epoch of virtual clocks in tests.
    #[allow(clippy::disallowed_methods)]
    pub fn epoch() -> std::time::Instant {
        std::time::Instant::now()
    }
}
