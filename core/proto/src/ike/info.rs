//! INFORMATIONAL exchanges (RFC 7296 §1.4, §1.5): answering the server's liveness checks and
//! DELETEs, handing CREATE_CHILD_SA requests to the rekey task, and our own DELETE on close.

use std::time::Instant;

use log::{debug, info};

use crate::ike::initiator::{Initiator, Phase};
use crate::ike::task_manager::RequestKind;
use crate::session::DisconnectReason;
use crate::wire::{ExchangeType, Header, Payload, ProtocolId};

impl Initiator {
    /// Handles a request the server started (already matched to its window and decrypted).
    pub(super) fn process_request(&mut self, now: Instant, h: Header, p: &[Payload<'_>]) {
        match h.exchange {
            ExchangeType::INFORMATIONAL => self.process_informational(now, h.message_id, p),
            ExchangeType::CREATE_CHILD_SA => self.process_create_child_request(now, h, p),
            ExchangeType::IKE_FOLLOWUP_KE => self.process_followup_request(now, h, p),
            other => {
                debug!("ignoring {other} request");
                self.drops.unexpected += 1;
            }
        }
    }

    fn process_informational(&mut self, now: Instant, message_id: u32, p: &[Payload<'_>]) {
        self.take_additional_addresses(p);
        let mut delete_ike = false;
        let mut deleted_esp: Vec<u32> = Vec::new();
        for pl in p {
            if let Payload::Delete(d) = pl {
                match d.protocol {
                    ProtocolId::IKE => delete_ike = true,
                    ProtocolId::ESP if d.spi_size == 4 => {
                        deleted_esp.extend(
                            d.spis
                                .chunks_exact(4)
                                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])),
                        );
                    }
                    _ => {}
                }
            }
        }
        if delete_ike {
            info!("server deleted the IKE SA");
            self.send_response(ExchangeType::INFORMATIONAL, message_id, &[]);
            return self.finish(DisconnectReason::DeletedByPeer);
        }
        // CHILD SAs a rekey replaced are answered by the rekey task.
        if self.rekey_child_deleted(message_id, &deleted_esp) {
            return;
        }
        // Answer a DELETE of our CHILD SA with the DELETE of its inbound half.
        let ours: Option<u32> = self
            .child
            .as_ref()
            .filter(|c| deleted_esp.contains(&c.spi_out))
            .map(|c| c.spi_in);
        match ours {
            Some(spi_in) => {
                info!("server deleted CHILD SA {spi_in:08x}");
                let spi = spi_in.to_be_bytes();
                let d = [Payload::delete_esp(&spi)];
                self.send_response(ExchangeType::INFORMATIONAL, message_id, &d);
                self.child = None;
                // Without its only CHILD SA the tunnel carries nothing: end the IKE SA too.
                self.tm.abandon();
                self.phase = Phase::Deleting;
                self.send_delete(now);
            }
            None => {
                // An empty request is a liveness check; anything else is acknowledged empty.
                self.send_response(ExchangeType::INFORMATIONAL, message_id, &[]);
            }
        }
    }

    /// Sends the DELETE of the IKE SA (which takes its CHILD SAs with it).
    pub(super) fn send_delete(&mut self, now: Instant) {
        let d = [Payload::delete_ike()];
        self.send_request(now, RequestKind::Delete, ExchangeType::INFORMATIONAL, &d);
    }
}
