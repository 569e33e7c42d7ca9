//! TEST FIXTURES ONLY (cargo feature `test-fixture`, never in an app build): Roam's own
//! responder on loopback for the binding tests, and a counter of live Rust objects for leak
//! tests. The responder uses a fixed, public PSK-style setup and protects nothing; behind it,
//! `roam_runtime::echo` answers ICMP/ICMPv6 echo requests and UDP datagrams sent through the
//! tunnel, so the binding tests see packets come back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roam_proto::config::Retransmit;
use roam_proto::crypto::proposal::{default_esp, default_ike, ProposalSpec};
use roam_proto::crypto::Secret;
use roam_proto::identity::Identity;
use roam_proto::ike::child::ts_any;
use roam_proto::ike::responder::{Responder, ResponderAuth, ResponderConfig, ResponderEvent};
use roam_runtime::echo::echo;
use roam_runtime::packet_io::ChannelPackets;
use roam_runtime::rng::OsRng;
use roam_runtime::serve::Server;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use crate::error::VpnError;
use crate::tunnel::LIVE_OBJECTS;

/// The responder's identity (what a client's `server.id` may name).
pub const TEST_SERVER_ID: &str = "test-server.roam.example";
/// Packets queued each way between the responder and its echo.
const ECHO_QUEUE: usize = 256;

/// TEST FIXTURE: Roam's responder serving PSK clients on 127.0.0.1 (a free port), handing out
/// 198.18.0.0/24 and 2001:db8:ffff::/112 addresses and DNS 203.0.113.53. Every address
/// behind it echoes: an ICMP or ICMPv6 echo request is answered with its reply, a UDP datagram
/// comes back with its ports swapped; anything else is dropped.
#[derive(uniffi::Object)]
pub struct TestResponder {
    runtime: Option<Runtime>,
    address: SocketAddr,
    established: Arc<AtomicU32>,
    closed: Arc<AtomicU32>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

#[uniffi::export]
impl TestResponder {
    /// Starts a responder accepting clients that know `psk`.
    #[uniffi::constructor]
    pub fn start(psk: String) -> Result<Arc<Self>, VpnError> {
        crate::logging::install();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("roam-test-responder")
            .enable_all()
            .build()
            .map_err(VpnError::internal)?;
        let responder = Responder::new(config(psk.as_bytes())?, Box::new(OsRng));
        let bind: SocketAddr = ([127, 0, 0, 1], 0).into();
        let (server_packets, echo_app) = ChannelPackets::new(ECHO_QUEUE);
        let mut server = runtime
            .block_on(Server::start_with_packets(responder, bind, server_packets))
            .map_err(|e| VpnError::internal(format!("test responder: {e}")))?;
        // The echo ends when the server (the other end of its packet path) stops.
        {
            let _guard = runtime.enter();
            drop(echo(echo_app, 0));
        }
        let address = server.local_addr();
        let established = Arc::new(AtomicU32::new(0));
        let closed = Arc::new(AtomicU32::new(0));
        let (stop, mut stop_rx) = oneshot::channel::<()>();
        let (est, clo) = (established.clone(), closed.clone());
        runtime.spawn(async move {
            loop {
                tokio::select! {
                    event = server.next_event() => match event {
                        Some(ResponderEvent::Established { .. }) => { est.fetch_add(1, Ordering::SeqCst); }
                        Some(ResponderEvent::Closed { .. }) => { clo.fetch_add(1, Ordering::SeqCst); }
                        None => break,
                    },
                    _ = &mut stop_rx => break,
                }
            }
            let _ = server.stop().await;
        });
        LIVE_OBJECTS.fetch_add(1, Ordering::SeqCst);
        Ok(Arc::new(Self {
            runtime: Some(runtime),
            address,
            established,
            closed,
            stop: Mutex::new(Some(stop)),
        }))
    }

    pub fn host(&self) -> String {
        self.address.ip().to_string()
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn server_id(&self) -> String {
        TEST_SERVER_ID.to_string()
    }

    /// Clients that authenticated and got their CHILD SA.
    pub fn established_count(&self) -> u32 {
        self.established.load(Ordering::SeqCst)
    }

    /// IKE SAs that ended (deleted by a client, failed).
    pub fn closed_count(&self) -> u32 {
        self.closed.load(Ordering::SeqCst)
    }

    /// Stops answering.
    pub fn stop(&self) {
        if let Some(s) = self.stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = s.send(());
        }
    }
}

impl Drop for TestResponder {
    fn drop(&mut self) {
        self.stop();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
        LIVE_OBJECTS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// TEST FIXTURE: Rust objects of this library alive now (tunnels, their shared state, test
/// responders). A leak test drops its references, runs the GC and expects this to fall.
#[uniffi::export]
pub fn live_object_count() -> u64 {
    LIVE_OBJECTS.load(Ordering::SeqCst)
}

fn config(psk: &[u8]) -> Result<ResponderConfig, VpnError> {
    let parse = |list: Vec<String>, esp: bool| {
        list.iter()
            .map(|s| {
                if esp {
                    ProposalSpec::parse_esp(s, &[])
                } else {
                    ProposalSpec::parse_ike(s, &[])
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(VpnError::internal)
    };
    Ok(ResponderConfig {
        id: Identity::parse(TEST_SERVER_ID).map_err(VpnError::internal)?,
        auth: ResponderAuth::Psk(Secret::from_slice(psk)),
        ca: Vec::new(),
        eap_users: Vec::new(),
        ike: parse(default_ike(), false)?,
        esp: parse(default_esp(), true)?,
        pool4: Some(([198, 18, 0, 1].into(), 254)),
        pool6: Some((
            "2001:db8:ffff::1".parse().map_err(VpnError::internal)?,
            1000,
        )),
        dns: vec![[203, 0, 113, 53].into()],
        subnets: vec![ts_any(false), ts_any(true)],
        mobike: true,
        require_cookie: false,
        retransmit: Retransmit::default(),
        fragment_size: 1280,
        unix_time: None,
    })
}
